"""The default engine: every shard embedded in this process, one after another.

While the model embeds shard n, a background thread reads and tokenizes shard
n+1 (torch releases the GIL inside its kernels); with tokenizer worker
processes (--tokenize-workers, by default only on a GPU) that thread fans the
tokenizing out to them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator, Iterator, Sequence

import pyarrow as pa

from batchembed.config import RunConfig
from batchembed.embedders.base import Embedder
from batchembed.engines.job import FileRead, ShardCallback, run_job
from batchembed.engines.job import read_output as read_output
from batchembed.io.reader import InputShard
from batchembed.models import choose_device
from batchembed.pipeline import ShardResult, embed_plan, plan_shard
from batchembed.prefetch import ahead
from batchembed.summary import RunSummary
from batchembed.tokenize import TokenizeMany, get_tokenizer, many
from batchembed.workers import TokenizerPool, automatic_workers


def run(config: RunConfig, embedders: Sequence[Embedder], on_shard: ShardCallback | None = None) -> RunSummary:
    """Process all inputs into `config.output` in this process, resuming what an earlier run left."""
    return run_job(config, embedders, LocalRunner(config, embedders), on_shard)


class LocalRunner:
    def __init__(self, config: RunConfig, embedders: Sequence[Embedder]) -> None:
        self.config, self.embedders = config, embedders

    def __call__(
        self, items: Iterator[InputShard | FileRead], schema: pa.Schema
    ) -> Generator[tuple[InputShard, ShardResult] | FileRead, None, None]:
        with _tokenizer(self.config) as tokenize_many:
            planned = ahead(item if isinstance(item, FileRead) else plan_shard(item, tokenize_many) for item in items)
            with contextlib.closing(planned):  # stop the reader thread before the workers go
                for item in planned:
                    if isinstance(item, FileRead):
                        yield item
                    else:
                        yield item.shard, embed_plan(item, self.embedders, schema)


@contextlib.contextmanager
def _tokenizer(config: RunConfig) -> Iterator[TokenizeMany]:
    """In this process, or in a pool of worker processes (--tokenize-workers; by default
    only on a GPU, where Python tokenization would otherwise keep the model waiting)."""
    workers = config.embed.tokenize_workers
    if workers is None:
        workers = automatic_workers(choose_device(config.embed.device))
    if not workers:
        yield many(get_tokenizer(config.tokenizer))
        return
    with TokenizerPool(config.tokenizer, workers) as pool:
        yield pool
