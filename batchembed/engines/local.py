"""The default engine: the stages of batchembed/stages/ as processes and threads on one machine.

    reader thread    reads the next shards (job.py) and hands them to the prepare workers
    prepare workers  processes (spawned): tokenize, subword-encode, targets, rows -> arrays
    model thread     embed: only the model forward, gathers and distances, on the arrays
    this thread      assemble the output table, then job.py writes the part and its marker

So the thread that drives the model never tokenizes or writes: while it runs shard n,
the workers prepare shards n+1.., and this thread writes shard n-1 (pyarrow and torch
release the GIL). How many workers and torch threads: batchembed/hardware.py.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import Future

import pyarrow as pa

from batchembed.config import RunConfig
from batchembed.embedders.base import Embedder, Preparer
from batchembed.engines.job import FileRead, ShardCallback, run_job
from batchembed.engines.job import read_output as read_output
from batchembed.hardware import choose_layout
from batchembed.io.reader import InputShard
from batchembed.models import choose_device
from batchembed.prefetch import ahead
from batchembed.stages.assemble import ShardResult, assemble
from batchembed.stages.embed import EmbeddedShard, embed
from batchembed.stages.prepare import PreparedShard, prepare
from batchembed.summary import RunSummary
from batchembed.tokenize import TokenizerName, get_tokenizer, many
from batchembed.workers import PreparePool

Submit = Callable[[InputShard], "Future[PreparedShard] | PreparedShard"]


def run(config: RunConfig, embedders: Sequence[Embedder], on_shard: ShardCallback | None = None) -> RunSummary:
    """Process all inputs into `config.output` on this machine, resuming what an earlier run left."""
    return run_job(config, embedders, LocalRunner(config, embedders), on_shard)


class LocalRunner:
    def __init__(self, config: RunConfig, embedders: Sequence[Embedder]) -> None:
        self.config, self.embedders = config, embedders

    def __call__(
        self, items: Iterator[InputShard | FileRead], schema: pa.Schema
    ) -> Generator[tuple[InputShard, ShardResult] | FileRead, None, None]:
        options = self.config.embed
        layout = choose_layout(choose_device(options.device), options.tokenize_workers, options.threads)
        if layout.threads is not None:
            import torch

            torch.set_num_threads(layout.threads)
        preparers = [e.preparer() for e in self.embedders]
        with _preparing(self.config.tokenizer, preparers, layout.workers) as submit:
            prepared = ahead(_in_order(items, submit, depth=layout.workers + 1))
            embedded = ahead(_embedded(prepared, self.embedders))  # the model thread
            # closed in reverse: the model thread stops before the reader, the reader before the workers
            with contextlib.closing(prepared), contextlib.closing(embedded):
                for item in embedded:
                    if isinstance(item, FileRead):
                        yield item
                    else:
                        shard, ready, vectors = item
                        yield shard, assemble(ready, vectors, schema)


@contextlib.contextmanager
def _preparing(tokenizer: TokenizerName, preparers: Sequence[Preparer], workers: int) -> Iterator[Submit]:
    if not workers:
        tokenize_many = many(get_tokenizer(tokenizer))
        yield lambda shard: prepare(shard, tokenize_many, preparers)
        return
    with PreparePool(tokenizer, preparers, workers) as pool:
        yield pool.submit


def _in_order(
    items: Iterator[InputShard | FileRead], submit: Submit, depth: int
) -> Iterator[tuple[InputShard, PreparedShard] | FileRead]:
    """Submit up to `depth` shards ahead; hand them back prepared, in input order."""
    pending: deque[tuple[InputShard | FileRead, Future[PreparedShard] | PreparedShard | None]] = deque()

    def first() -> tuple[InputShard, PreparedShard] | FileRead:
        item, work = pending.popleft()
        if isinstance(item, FileRead):
            return item
        return item, work.result() if isinstance(work, Future) else work  # type: ignore[return-value]

    for item in items:
        pending.append((item, None if isinstance(item, FileRead) else submit(item)))
        while len(pending) > depth:
            yield first()
    while pending:
        yield first()


def _embedded(
    prepared: Iterator[tuple[InputShard, PreparedShard] | FileRead], embedders: Sequence[Embedder]
) -> Iterator[tuple[InputShard, PreparedShard, EmbeddedShard] | FileRead]:
    for item in prepared:
        if isinstance(item, FileRead):
            yield item
        else:
            shard, ready = item
            yield shard, ready, embed(ready, embedders)
