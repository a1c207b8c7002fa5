"""The default engine: the stages of batchembed/stages/ as processes and threads on one machine.

    reader thread    reads the next shards (job.py) and hands them to the workers
    workers          processes (spawned), stage 1: tokenize, subword-encode, targets, rows -> arrays
    model thread     stage 2, embed: only the model forward, gathers and distances, on the arrays
    workers          stage 4: assemble each shard's table, compress and write its part
    this thread      job.py writes each part's done marker, in input order

So the process that drives the model never tokenizes, builds tables or writes Parquet:
while it runs shard n, the workers prepare shards n+1.. and write shard n-1.
Without workers (--tokenize-workers 0) every stage runs in this process and the job
writes the parts. How many workers and torch threads: batchembed/hardware.py.

The job (job.py) plans the tasks and reads their pieces (stages/task.py `task_pieces`:
at most PIECE_PAIRS pairs, never spanning two shards, the same pieces whatever the number
of workers, so the same batches and the same numbers); this engine places the task's
stages: the workers share the first shard at once instead of one worker preparing it
while the rest of the machine waits, and the model starts after one piece, not one shard.
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
from batchembed.io.layout import OutputLayout
from batchembed.io.reader import InputShard
from batchembed.io.storage import locate
from batchembed.models import choose_device
from batchembed.prefetch import ahead
from batchembed.stages.assemble import ShardResult
from batchembed.stages.embed import EmbeddedShard, embed
from batchembed.stages.prepare import PreparedShard, prepare
from batchembed.stages.task import PIECE_PAIRS, ShardSpan
from batchembed.stages.write import ShardWriters
from batchembed.summary import RunSummary
from batchembed.tokenize import TokenizerName, get_tokenizer, remembering
from batchembed.workers import StagePool
from batchembed.writer_process import Writer, WriterProcess

Submit = Callable[[InputShard], "Future[PreparedShard] | PreparedShard"]

WRITES_AHEAD = 4  # shards handed to the workers to write before the driver waits for the oldest
__all__ = ["PIECE_PAIRS", "run"]


def run(config: RunConfig, embedders: Sequence[Embedder], on_shard: ShardCallback | None = None) -> RunSummary:
    """Process all inputs into `config.output` on this machine, resuming what an earlier run left."""
    return run_job(config, embedders, LocalRunner(config, embedders), on_shard)


class LocalRunner:
    def __init__(self, config: RunConfig, embedders: Sequence[Embedder]) -> None:
        self.config, self.embedders = config, embedders

    def __call__(
        self, items: Iterator[InputShard | FileRead], schema: pa.Schema, check: Callable[[], None]
    ) -> Generator[tuple[ShardSpan, ShardResult] | FileRead, None, None]:
        options = self.config.embed
        device = choose_device(options.device)
        layout = choose_layout(device, options.tokenize_workers, options.threads)
        with _torch_threads(layout.threads):
            import torch

            # A model thread keeps the driver's own bookkeeping off the model's path. On a CPU with
            # several torch threads it costs more than it saves: OpenMP runs a parallel region
            # entered from a thread other than the first ~5% slower (measured: embed 11.0 s in a
            # thread, 10.5 s in the main thread, same arrays).
            model_thread = device.type == "cuda" or torch.get_num_threads() == 1
            yield from self._run(items, schema, layout.workers, model_thread, check)

    def _run(
        self,
        items: Iterator[InputShard | FileRead],
        schema: pa.Schema,
        workers: int,
        model_thread: bool,
        check: Callable[[], None],
    ) -> Generator[tuple[ShardSpan, ShardResult] | FileRead, None, None]:
        preparers = [e.preparer() for e in self.embedders]
        output = OutputLayout.of(locate(self.config.output))
        # The model's process prepares the first piece itself when it runs the model in this thread
        # (a CPU): a worker takes ~0.5 s to start, 4% of a 1,000-pair job there, and a CPU-bound
        # model process is not the one to keep lean. Feeding a GPU, every piece goes to the workers.
        first_here = not model_thread
        with _stages(self.config.tokenizer, preparers, workers, output, schema, first_here) as (submit, writer):
            prepared = ahead(_in_order(items, submit, depth=2 * workers + 1))
            embedded: Generator[tuple[InputShard, bool, PreparedShard, EmbeddedShard] | FileRead, None, None]
            embedded = _embedded(prepared, self.embedders)
            if model_thread:
                embedded = ahead(embedded)
            # closed in reverse: the model thread stops before the reader, the reader before the workers
            with contextlib.closing(prepared), contextlib.closing(embedded):
                yield from _written(embedded, writer, check)


@contextlib.contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    """torch's intra-op threads for the run, restored after it (the process may go on)."""
    if threads is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def _stages(
    tokenizer: TokenizerName,
    preparers: Sequence[Preparer],
    workers: int,
    output: OutputLayout,
    schema: pa.Schema,
    first_here: bool = False,
) -> Iterator[tuple[Submit, Writer]]:
    """Where the CPU stages run: preparing in worker processes (but the first piece here if
    `first_here`) and writing in a writer process of its own; without workers, all here."""
    tokenize_many = remembering(get_tokenizer(tokenizer))

    def here(shard: InputShard) -> PreparedShard:
        return prepare(shard, tokenize_many, preparers)

    if not workers:
        writers = ShardWriters(output, schema)
        try:
            yield here, writers
        finally:
            writers.close()
        return
    with StagePool(tokenizer, preparers, workers, output, schema) as pool, WriterProcess(output, schema) as writer:
        if not first_here:
            yield pool.prepare, writer
            return
        pool.start()  # the workers start while this process prepares the first piece
        submitted = 0

        def submit(shard: InputShard) -> Future[PreparedShard] | PreparedShard:
            nonlocal submitted
            submitted += 1
            return here(shard) if submitted == 1 else pool.prepare(shard)

        yield submit, writer


def _in_order(
    items: Iterator[InputShard | FileRead], submit: Submit, depth: int
) -> Iterator[tuple[InputShard, bool, PreparedShard] | FileRead]:
    """Submit up to `depth` pieces ahead; hand them back prepared, in input order, each with
    whether it is its shard's last piece."""
    pending: deque[tuple[InputShard, bool, Future[PreparedShard] | PreparedShard] | FileRead] = deque()

    def first() -> tuple[InputShard, bool, PreparedShard] | FileRead:
        item = pending.popleft()
        if isinstance(item, FileRead):
            return item
        shard, last, work = item
        return shard, last, work.result() if isinstance(work, Future) else work

    for item in items:
        if isinstance(item, FileRead):
            pending.append(item)
            continue
        pending.append((item, item.ends_shard, submit(item)))
        while len(pending) > depth:
            yield first()
    while pending:
        yield first()


def _written(
    embedded: Iterator[tuple[InputShard, bool, PreparedShard, EmbeddedShard] | FileRead],
    writer: Writer,
    check: Callable[[], None],
) -> Generator[tuple[ShardSpan, ShardResult] | FileRead, None, None]:
    """Each piece handed to the writer as soon as it is embedded (a part is streamed, never held
    whole); each shard's result handed on in input order once its part is in place, waiting only
    when WRITES_AHEAD shards are being finished."""
    pending: deque[tuple[ShardSpan, Future[ShardResult] | ShardResult] | FileRead] = deque()
    first_piece: InputShard | None = None
    pairs = 0

    def first() -> tuple[ShardSpan, ShardResult] | FileRead:
        item = pending.popleft()
        if isinstance(item, FileRead):
            return item
        shard, work = item
        return shard, work.result() if isinstance(work, Future) else work

    def head_ready() -> bool:
        head = pending[0]
        return isinstance(head, FileRead) or not isinstance(head[1], Future) or head[1].done()

    try:
        for item in embedded:
            if isinstance(item, FileRead):
                pending.append(item)
            else:
                piece, last, ready, vectors = item
                first_piece = first_piece or piece
                pairs += ready.pairs
                writer.append(piece.shard_id, ready, vectors)
                if last:
                    check()  # never put a part in place after another run took the output over
                    span = ShardSpan(piece.file, piece.index, first_piece.first_row, pairs, piece.last)
                    pending.append((span, writer.finish(piece.shard_id)))
                    first_piece, pairs = None, 0
            while pending and (head_ready() or len(pending) > WRITES_AHEAD):
                yield first()
        while pending:
            yield first()
    finally:  # stopped early: parts finished ahead get no marker, so they must not stay
        if first_piece is not None:
            writer.discard(first_piece.shard_id)
        for ahead_item in pending:
            if isinstance(ahead_item, FileRead):
                continue
            written_shard, work = ahead_item
            if isinstance(work, Future):
                with contextlib.suppress(Exception):
                    work.result()
            writer.remove(written_shard.shard_id)


def _embedded(
    prepared: Iterator[tuple[InputShard, bool, PreparedShard] | FileRead], embedders: Sequence[Embedder]
) -> Generator[tuple[InputShard, bool, PreparedShard, EmbeddedShard] | FileRead, None, None]:
    for item in prepared:
        if isinstance(item, FileRead):
            yield item
        else:
            shard, last, ready = item
            yield shard, last, ready, embed(ready, embedders)
