"""Give freed memory back to the operating system between shards.

A shard's Python objects, numpy arrays and Arrow buffers are all freed once it is
written, but glibc's malloc and Arrow's memory pool keep the pages for reuse,
and with each shard's allocations landing in slightly different places the
resident size crept up by ~20% over 20 shards. Trimming after every shard
keeps it flat (measured in BENCHMARKS.md): the cost is a few milliseconds a shard.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import cache


@cache
def _malloc_trim() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name).malloc_trim  # glibc only; musl and macOS have none
    except (OSError, AttributeError):
        return None


def release_free_memory() -> None:
    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
