"""The CPU stage in worker processes, so the process that drives the model only runs it.

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

from batchembed.embedders.base import Preparer
from batchembed.io.reader import InputShard
from batchembed.stages.prepare import PreparedShard, prepare
from batchembed.tokenize import Tokenized, TokenizerName, get_tokenizer, many

log = logging.getLogger(__name__)

MIN_TEXTS_PER_TASK = 64


class PreparePool:
    """prepare(shard) in `workers` processes."""

    def __init__(self, tokenizer: TokenizerName, preparers: Sequence[Preparer], workers: int) -> None:
        import multiprocessing

        self.workers = workers
        self._executor = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(tokenizer, list(preparers)),
        )
        log.info("preparing shards in %d worker processes", workers)

    def submit(self, shard: InputShard) -> Future[PreparedShard]:
        return self._executor.submit(_prepare_in_worker, shard)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> PreparePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_worker_state: tuple[TokenizerName, list[Preparer]] | None = None


def _start_worker(tokenizer: TokenizerName, preparers: list[Preparer]) -> None:
    global _worker_state
    _worker_state = (tokenizer, preparers)


def _prepare_in_worker(shard: InputShard) -> PreparedShard:
    assert _worker_state is not None, "worker not started by PreparePool"
    tokenizer, preparers = _worker_state
    return prepare(shard, many(get_tokenizer(tokenizer)), preparers)


class TokenizerPool:
    """A callable like `many(get_tokenizer(name))`, spread over `workers` processes, same
    results in the same order (word tokenization only; evaluation and tools use it)."""

    def __init__(self, name: TokenizerName, workers: int) -> None:
        import multiprocessing

        self.name = name
        self.workers = workers
        self._executor = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))

    def __call__(self, texts: Sequence[str]) -> list[Tokenized]:
        if len(texts) < MIN_TEXTS_PER_TASK:
            return many(get_tokenizer(self.name))(texts)
        size = max(MIN_TEXTS_PER_TASK, -(-len(texts) // (4 * self.workers)))  # ~4 tasks a worker: even load
        chunks = [list(texts[i : i + size]) for i in range(0, len(texts), size)]
        names = [self.name] * len(chunks)
        return [token for chunk in self._executor.map(_tokenize_chunk, names, chunks) for token in chunk]

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> TokenizerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _tokenize_chunk(name: TokenizerName, texts: list[str]) -> list[Tokenized]:
    return many(get_tokenizer(name))(texts)
