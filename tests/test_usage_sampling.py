"""Pair sampling for the pairs output: every pair under the cap, a reproducible uniform draw above it."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import examples
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import cdist

from batchembed.usage.sampling import _within_rows, pair_count, pair_distances, sample_pairs

REPO = Path(__file__).resolve().parent.parent


def pairs(i: np.ndarray, j: np.ndarray) -> list[tuple[int, int]]:
    return list(zip(i.tolist(), j.tolist(), strict=True))


def test_under_the_cap_every_pair_comes_in_row_major_order() -> None:
    assert pairs(*sample_pairs(5, None, 10, 0, "w")) == list(itertools.combinations(range(5), 2))
    assert pairs(*sample_pairs(3, 4, 100, 0, "w")) == list(itertools.product(range(3), range(4)))
    assert pairs(*sample_pairs(3, 4, None, 0, "w")) == list(itertools.product(range(3), range(4)))


def test_words_with_too_few_uses_for_a_pair_have_none() -> None:
    for counts in ((0, None), (1, None), (0, 5), (5, 0)):
        i, j = sample_pairs(*counts, 10, 0, "w")
        assert len(i) == len(j) == 0


@pytest.mark.parametrize("count", [2, 3, 7, 64, 301])
def test_pair_numbers_map_back_to_the_pairs_they_number(count: int) -> None:
    i, j = _within_rows(np.arange(pair_count(count), dtype=np.int64), count)
    assert pairs(i, j) == list(itertools.combinations(range(count), 2))


def test_pair_numbers_of_a_word_with_100000_uses_map_back_exactly_at_every_row_boundary() -> None:
    count = 100_000
    rows = np.array([0, 1, 2, 50_000, 99_997, 99_998], dtype=np.int64)
    starts = rows * count - rows * (rows + 1) // 2
    numbers = np.concatenate([starts, starts + (count - rows - 2), [pair_count(count) - 1]])
    i, j = _within_rows(numbers, count)
    assert i.tolist() == [*rows.tolist(), *rows.tolist(), count - 2]
    assert j.tolist() == [*(rows + 1).tolist(), *[count - 1] * len(rows), count - 1]


@settings(max_examples=examples(200), deadline=None)
@given(st.integers(2, 400), st.one_of(st.none(), st.integers(1, 400)), st.integers(0, 500), st.integers(0, 2**63))
def test_a_draw_is_distinct_pairs_in_range_and_row_major_order(
    count_1: int, count_2: int | None, cap: int, seed: int
) -> None:
    i, j = sample_pairs(count_1, count_2, cap, seed, "bank", ("1", "2"))
    assert len(i) == min(cap, pair_count(count_1, count_2))
    got = pairs(i, j)
    assert len(set(got)) == len(got)
    assert got == sorted(got)
    assert (i >= 0).all() and (i < count_1).all() and (j >= 0).all()
    assert (i < j).all() if count_2 is None else (j < count_2).all()


def test_the_same_seed_word_and_groupings_give_the_same_pairs_and_any_change_other_pairs() -> None:
    first = pairs(*sample_pairs(1000, 800, 50, 7, "bank", ("1", "2")))
    assert first == pairs(*sample_pairs(1000, 800, 50, 7, "bank", ("1", "2")))
    assert first != pairs(*sample_pairs(1000, 800, 50, 8, "bank", ("1", "2")))
    assert first != pairs(*sample_pairs(1000, 800, 50, 7, "banks", ("1", "2")))
    assert first != pairs(*sample_pairs(1000, 800, 50, 7, "bank", ("1", "3")))


def test_the_pairs_are_pinned_so_a_change_of_machine_or_version_shows() -> None:
    """Golden values: the pairs a documented seed gives must never change silently."""
    assert pairs(*sample_pairs(1000, None, 4, 0, "plane", ("1", "1"))) == GOLDEN_WITHIN
    assert pairs(*sample_pairs(1000, 800, 4, 0, "plane", ("1", "2"))) == GOLDEN_ACROSS


GOLDEN_WITHIN = [(100, 684), (117, 341), (159, 415), (811, 841)]
GOLDEN_ACROSS = [(229, 530), (355, 597), (704, 710), (886, 718)]


def test_another_process_with_another_hash_seed_draws_the_same_pairs() -> None:
    code = (
        "import json; from batchembed.usage.sampling import sample_pairs; "
        "i, j = sample_pairs(5000, 3000, 20, 3, 'Zeit', ('1', '2')); print(json.dumps([i.tolist(), j.tolist()]))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    i, j = json.loads(done.stdout)
    assert pairs(np.array(i), np.array(j)) == pairs(*sample_pairs(5000, 3000, 20, 3, "Zeit", ("1", "2")))


@pytest.mark.parametrize(("count_1", "count_2", "cap"), [(4, 5, 3), (4, 5, 10), (7, None, 5), (7, None, 15)])
def test_every_pair_is_drawn_equally_often_over_many_seeds(count_1: int, count_2: int | None, cap: int) -> None:
    """Both ways of drawing (rejection, and one key per pair when the cap is a large share)."""
    total = pair_count(count_1, count_2)
    seen: dict[tuple[int, int], int] = {}
    draws = 3000
    for seed in range(draws):
        for pair in pairs(*sample_pairs(count_1, count_2, cap, seed, "w")):
            seen[pair] = seen.get(pair, 0) + 1
    assert len(seen) == total
    expected = draws * cap / total
    sd = np.sqrt(draws * (cap / total) * (1 - cap / total))
    assert max(abs(n - expected) for n in seen.values()) < 5 * sd


def test_pair_distances_are_the_runs_distances_of_the_indexed_vectors() -> None:
    rng = np.random.default_rng(0)
    first, second = rng.normal(size=(30, 8)).astype(np.float32), rng.normal(size=(20, 8)).astype(np.float32)
    i, j = sample_pairs(30, None, 50, 0, "w")
    for metric in ("euclidean", "cosine"):
        expected = cdist(first.astype(np.float64), first.astype(np.float64), metric)[i, j]
        got = pair_distances(first, i, j, metric)
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    i, j = sample_pairs(30, 20, 100, 0, "w", ("a", "b"))
    expected = cdist(first.astype(np.float64), second.astype(np.float64), "cosine")[i, j]
    np.testing.assert_allclose(pair_distances(first, i, j, "cosine", other=second), expected, rtol=1e-5, atol=1e-6)


def test_a_sample_of_100000_among_10_billion_pairs_is_distinct_without_listing_them() -> None:
    """100,000 x 100,000 uses: 10^10 pairs, a cap of 10^5; nothing of size 10^10 is built."""
    i, j = sample_pairs(100_000, 100_000, 100_000, 0, "w", ("a", "b"))
    assert len(set(zip(i.tolist(), j.tolist(), strict=True))) == 100_000
    i, j = sample_pairs(100_000, None, 100_000, 0, "w")
    assert (i < j).all() and len(np.unique(i * 100_000 + j)) == 100_000
