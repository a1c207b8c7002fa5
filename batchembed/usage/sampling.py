"""Which use pairs the pairs output lists for a word, and their distances.

A word with N uses has N(N-1)/2 pairs within a grouping and N1·N2 across two: the pairs output caps
them per word (`max_pairs`). Below the cap every pair is listed; above it, `max_pairs` distinct pairs
are drawn uniformly without replacement. The draw is a function of (seed, lemma, groupings) only:

- the generator is seeded from SHA-256 of those values (never Python's `hash()`, which changes per
  process), so the same pairs come out on every machine, process and engine, in any order of words;
- it uses only PCG64's raw 64-bit stream, whose values numpy documents as fixed, not the samplers
  built on it (`choice`, `integers`), whose algorithms numpy may change between versions;
- pairs are numbered in row-major order (within a grouping: (0,1), (0,2), ..., (1,2), ...; across:
  (0,0), (0,1), ...) and returned in that order, sampled or not.

A pair's number is drawn uniformly by rejection (raw values past the largest multiple of the pair
count are drawn again), and repeats are dropped keeping the first draw, until `max_pairs` are found.
When the cap is more than a quarter of the pairs, the draw is instead "the `max_pairs` pairs with the
smallest random keys", one key per pair, so the loop never chases the last few unseen pairs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from batchembed.embedders.distances import DISTANCES

if TYPE_CHECKING:
    import torch

DEFAULT_SEED = 0
_KEYED_DRAW = 4  # pairs / max_pairs at or under which one random key per pair is drawn
_CHUNK = 65536  # pairs whose vectors are gathered at once in pair_distances


def pair_count(count_1: int, count_2: int | None = None) -> int:
    """Pairs within one grouping of count_1 uses (count_2 None), or across two."""
    if count_2 is None:
        return count_1 * (count_1 - 1) // 2
    return count_1 * count_2


def generator(seed: int, lemma: str, groupings: Sequence[str | None]) -> np.random.PCG64:
    """The bit generator of one word and pair of groupings: the same on every machine and process."""
    key = json.dumps([seed, lemma, list(groupings)], ensure_ascii=False).encode()
    return np.random.PCG64(int.from_bytes(hashlib.sha256(key).digest()[:16], "little"))


def _uniform(bits: np.random.PCG64, total: int, size: int) -> np.ndarray:
    """`size` independent uniform integers in [0, total), by rejection from the raw 64-bit stream."""
    limit = (2**64 // total) * total  # raw values at or past it would favour the small numbers
    out = np.empty(0, dtype=np.uint64)
    while len(out) < size:
        raw = np.asarray(bits.random_raw(size - len(out) + 16), dtype=np.uint64)
        if limit < 2**64:
            raw = raw[raw < np.uint64(limit)]
        out = np.concatenate([out, raw % np.uint64(total)])
    return out[:size]


def _draw(bits: np.random.PCG64, total: int, size: int) -> np.ndarray:
    """`size` distinct pair numbers in [0, total), uniformly without replacement, sorted."""
    if total <= _KEYED_DRAW * size:
        keys = np.asarray(bits.random_raw(total), dtype=np.uint64)
        return np.sort(np.argsort(keys, kind="stable")[:size]).astype(np.int64)
    found = np.empty(0, dtype=np.uint64)
    while len(found) < size:
        drawn = np.concatenate([found, _uniform(bits, total, size - len(found))])
        _, first = np.unique(drawn, return_index=True)
        found = drawn[np.sort(first)]  # the distinct numbers, in the order they were drawn
    return np.sort(found[:size]).astype(np.int64)


def _within_rows(numbers: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Row-major numbers of the pairs i < j of `count` uses -> (i, j)."""

    # pair (i, j) has number start(i) + j - i - 1, start(i) = i·count - i(i+1)/2; invert, then correct
    # the float estimate by one step either way (exact integers decide)
    def start(i: np.ndarray) -> np.ndarray:
        return i * count - i * (i + 1) // 2

    b = 2 * count - 1
    i = np.floor((b - np.sqrt(np.maximum(b * b - 8.0 * numbers, 0.0))) / 2).astype(np.int64)
    i = np.clip(i, 0, max(count - 2, 0))
    i -= start(i) > numbers
    i += (i + 1 <= count - 2) & (start(i + 1) <= numbers)
    return i, numbers - start(i) + i + 1


def sample_pairs(
    count_1: int,
    count_2: int | None,
    max_pairs: int | None,
    seed: int,
    lemma: str,
    groupings: Sequence[str | None] = (),
) -> tuple[np.ndarray, np.ndarray]:
    """Index arrays (i, j) of at most `max_pairs` distinct pairs of a word's uses, in row-major order.

    Within one grouping (count_2 None): pairs i < j of count_1 uses. Across two: i indexes the first
    grouping's uses, j the second's. `max_pairs` None lists every pair. The pairs depend only on
    (seed, lemma, groupings) and the counts (see the module docstring).
    """
    total = pair_count(count_1, count_2)
    if max_pairs is not None and max_pairs < 0:
        raise ValueError(f"max_pairs must be 0 or more, got {max_pairs}")
    if max_pairs is None or total <= max_pairs:
        numbers = np.arange(total, dtype=np.int64)
    else:
        numbers = _draw(generator(seed, lemma, groupings), total, max_pairs)
    if count_2 is None:
        return _within_rows(numbers, count_1)
    return numbers // count_2, numbers % count_2


def pair_distances(
    vectors: np.ndarray,
    i: np.ndarray,
    j: np.ndarray,
    metric: str,
    other: np.ndarray | None = None,
    device: torch.device | str | None = None,
) -> np.ndarray:
    """float32 distances of the pairs (vectors[i], other[j]) (other defaults to vectors), computed
    in chunks on the torch device with the run's distance functions (embedders/distances.py), so a
    pair in the pairs output has the distance `batchembed run` gives the same two vectors."""
    import torch

    if metric not in DISTANCES:
        raise ValueError(f"unknown metric {metric!r}; expected one of {sorted(DISTANCES)}")
    second = vectors if other is None else other
    left = torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32)).to(device or "cpu")
    right = left if other is None else torch.from_numpy(np.ascontiguousarray(second, dtype=np.float32)).to(left.device)
    out = np.empty(len(i), dtype=np.float32)
    for start in range(0, len(i), _CHUNK):
        rows = torch.from_numpy(np.asarray(i[start : start + _CHUNK], dtype=np.int64)).to(left.device)
        cols = torch.from_numpy(np.asarray(j[start : start + _CHUNK], dtype=np.int64)).to(left.device)
        out[start : start + len(rows)] = DISTANCES[metric](left[rows], right[cols]).cpu().numpy()
    return out
