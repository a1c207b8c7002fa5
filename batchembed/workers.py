"""Tokenize sentences in worker processes, so the model is not kept waiting for Python.

Word tokenization (segtok) is pure Python and holds the GIL: one thread manages
a few thousand sentences a second, while a GPU embeds far more. A pool of
processes multiplies that. Workers are spawned (never forked: the parent holds
torch's threads and possibly a CUDA context) and import only
`batchembed.tokenize`, not flair or torch, so they start in well under a second.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import TYPE_CHECKING

from batchembed.tokenize import Tokenized, TokenizerName, get_tokenizer, many

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

MAX_AUTO_WORKERS = 8
MIN_TEXTS_PER_TASK = 64


def automatic_workers(device: torch.device) -> int:
    """0 on CPU, where every core already runs the model's matmuls (a worker would
    only take cores from it); on a GPU, the spare cores, up to MAX_AUTO_WORKERS."""
    if device.type != "cuda":
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(0, min(MAX_AUTO_WORKERS, cores - 2))  # one core for the main loop, one for the reader


class TokenizerPool:
    """A callable like `many(get_tokenizer(name))`, spread over `workers` processes, same results in the same order."""

    def __init__(self, name: TokenizerName, workers: int) -> None:
        import multiprocessing

        self.name = name
        self.workers = workers
        self._executor = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
        log.info("tokenizing in %d worker processes", workers)

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
