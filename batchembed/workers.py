"""The CPU stages in worker processes, so the process that drives the model only runs it:
preparing before the model (stage 1), assembling and writing after it (stage 4).

Workers are spawned (never forked: the parent holds torch's threads and possibly a
CUDA context) and import neither flair nor torch: each gets the tokenizer's name and
the models' Preparers (picklable: a fast tokenizer's Rust backend, a GloVe vocabulary)
once, at start-up, then turns InputShards into PreparedShards (numpy arrays, cheap to
pickle back).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, replace

import pyarrow as pa

from batchembed.embedders.base import Preparer
from batchembed.io.layout import OutputLayout
from batchembed.io.reader import InputShard
from batchembed.stages.assemble import ShardResult
from batchembed.stages.embed import EmbeddedShard
from batchembed.stages.prepare import PreparedShard, prepare
from batchembed.stages.write import write_shard
from batchembed.tokenize import TokenizeMany, TokenizerName, get_tokenizer, remembering

log = logging.getLogger(__name__)


class StagePool:
    """The CPU stages in `workers` processes: prepare(shard) before the model, and
    write_shard(...) after it. One pool for both: no process sits idle waiting for the other
    stage's work, and a small run starts no more processes than it has workers."""

    def __init__(
        self,
        tokenizer: TokenizerName,
        preparers: Sequence[Preparer],
        workers: int,
        output: OutputLayout,
        schema: pa.Schema,
    ) -> None:
        import multiprocessing

        self.workers = workers
        self._executor = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(_WorkerState(tokenizer, list(preparers), output, schema),),
        )
        log.info("preparing and writing shards in %d worker processes", workers)

    def start(self) -> None:
        """Start the worker processes now rather than at the first task."""
        for _ in range(self.workers):
            self._executor.submit(_started)

    def prepare(self, shard: InputShard) -> Future[PreparedShard]:
        return self._executor.submit(_prepare_in_worker, shard)

    def write(self, shard_id: str, pieces: list[tuple[PreparedShard, EmbeddedShard]]) -> Future[ShardResult]:
        # the model's inputs stay behind: writing needs the rows and the distances only
        light = [(replace(prepared, model_inputs={}), embedded) for prepared, embedded in pieces]
        return self._executor.submit(_write_in_worker, shard_id, light)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> StagePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class _WorkerState:
    tokenizer: TokenizerName
    preparers: list[Preparer]
    layout: OutputLayout
    schema: pa.Schema
    tokenize_many: TokenizeMany | None = None


_worker_state: _WorkerState | None = None


def _start_worker(state: _WorkerState) -> None:
    global _worker_state
    state.tokenize_many = remembering(get_tokenizer(state.tokenizer))
    _worker_state = state


def _started() -> None:
    pass


def _prepare_in_worker(shard: InputShard) -> PreparedShard:
    assert _worker_state is not None and _worker_state.tokenize_many is not None, "worker not started by StagePool"
    return prepare(shard, _worker_state.tokenize_many, _worker_state.preparers)


def _write_in_worker(shard_id: str, pieces: list[tuple[PreparedShard, EmbeddedShard]]) -> ShardResult:
    assert _worker_state is not None and _worker_state.layout is not None, "worker not started by StagePool"
    return write_shard(_worker_state.layout, shard_id, pieces, _worker_state.schema)
