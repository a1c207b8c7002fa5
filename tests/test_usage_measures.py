"""The per-word usage measures against a float64 reference computed here pair by pair (scipy's cdist)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from conftest import examples
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import cdist

from batchembed.usage.measures import measure_columns, status_counts, usage_schema, usage_table, word_rows
from batchembed.usage.pairwise import block_size, euclidean_apd_across, euclidean_apd_within

RTOL = 1e-5
TINY_BUDGET = 16 * 16 * 8 * 2  # blocks of 16 x 16: many blocks, ragged edges


def within(vectors: np.ndarray, metric: str) -> float:
    x = vectors.astype(np.float64)
    d = cdist(x, x, metric)
    return float(d[np.triu_indices(len(x), 1)].mean())


def across(first: np.ndarray, second: np.ndarray, metric: str) -> float:
    return float(cdist(first.astype(np.float64), second.astype(np.float64), metric).mean())


def prt(first: np.ndarray, second: np.ndarray, metric: str) -> float:
    means = [first.astype(np.float64).mean(axis=0), second.astype(np.float64).mean(axis=0)]
    return float(cdist(means[0][None], means[1][None], metric)[0, 0])


def spread(vectors: np.ndarray, metric: str) -> float:
    x = vectors.astype(np.float64)
    return float(cdist(x, x.mean(axis=0)[None], metric).mean())


def assert_pair_row(row: dict, model: str, first: np.ndarray, second: np.ndarray) -> None:
    """Within 1e-5 relative; abs 1e-12 is the reference's own floor (cdist's 1 - cos in float64 for
    nearly parallel uses, whose cosine distance can be 1e-13)."""
    for metric in ("euclidean", "cosine"):
        prefix = f"{model}_{metric}_"
        assert row[prefix + "apd"] == pytest.approx(across(first, second, metric), rel=RTOL, abs=1e-12)
        assert row[prefix + "apd_1"] == pytest.approx(within(first, metric), rel=RTOL, abs=1e-12)
        assert row[prefix + "apd_2"] == pytest.approx(within(second, metric), rel=RTOL, abs=1e-12)
        assert row[prefix + "prt"] == pytest.approx(prt(first, second, metric), rel=RTOL, abs=1e-12)
        assert row[prefix + "spread"] is None


def two_groupings(first: np.ndarray, second: np.ndarray, budget: int = TINY_BUDGET) -> dict:
    vectors = np.concatenate([first, second])
    order = np.random.default_rng(1).permutation(len(vectors))  # uses of both groupings interleaved
    groups = np.array(["1800"] * len(first) + ["1900"] * len(second), dtype=object)
    (row,) = word_rows("plane", {"m": vectors[order]}, list(groups[order]), ["1900", "1800"], memory_budget=budget)
    return row


def test_random_uses_match_the_pairwise_float64_reference_in_every_measure() -> None:
    rng = np.random.default_rng(0)
    first = rng.normal(size=(53, 24)).astype(np.float32)
    second = (rng.normal(size=(37, 24)) + 0.5).astype(np.float32)
    row = two_groupings(first, second)
    assert (row["grouping_1"], row["grouping_2"], row["uses_1"], row["uses_2"]) == ("1800", "1900", 53, 37)
    assert row["status"] == "ok"
    assert_pair_row(row, "m", first, second)


def test_every_model_gets_its_own_columns_from_its_own_vectors() -> None:
    rng = np.random.default_rng(2)
    bert, glove = rng.normal(size=(30, 16)).astype(np.float32), rng.normal(size=(30, 5)).astype(np.float32)
    groups = ["a"] * 12 + ["b"] * 18
    (row,) = word_rows("w", {"bert": bert, "glove": glove}, groups, ["a", "b"], memory_budget=TINY_BUDGET)
    assert_pair_row(row, "bert", bert[:12], bert[12:])
    assert_pair_row(row, "glove", glove[:12], glove[12:])


def test_nearly_identical_uses_keep_their_small_distances() -> None:
    """1e-4 apart at norm ~30: float32 products would lose the squared distances to rounding."""
    rng = np.random.default_rng(3)
    centre = rng.normal(size=48) * 5
    first = (centre + rng.normal(size=(40, 48)) * 1e-4).astype(np.float32)
    second = (centre + rng.normal(size=(40, 48)) * 1e-4 + 3e-5).astype(np.float32)
    assert across(first, second, "euclidean") < 1e-2
    assert_pair_row(two_groupings(first, second), "m", first, second)


def test_a_far_outlier_does_not_drown_the_small_distances_of_the_many_close_uses() -> None:
    """Centring cannot help here (the outlier moves the centre): float32 products drift by 1e-4."""
    rng = np.random.default_rng(13)
    centre = rng.normal(size=32)
    close = centre + rng.normal(size=(300, 32)) * 1e-5
    first = np.concatenate([close, centre[None] + 100]).astype(np.float32)
    second = (centre + rng.normal(size=(5, 32)) * 1e-5).astype(np.float32)
    assert_pair_row(two_groupings(first, second), "m", first, second)


def test_duplicated_uses_count_once_per_use_and_add_exact_zeros() -> None:
    rng = np.random.default_rng(4)
    distinct = rng.normal(size=(5, 8)).astype(np.float32)
    first = distinct[rng.integers(0, 5, size=60)]
    second = np.concatenate([distinct[:2], distinct[:2], rng.normal(size=(3, 8)).astype(np.float32)])
    assert_pair_row(two_groupings(first, second), "m", first, second)


def test_a_word_whose_uses_all_share_one_vector_has_apd_and_spread_exactly_0() -> None:
    """GloVe gives every use of a word the same vector: the measures say "no variation", exactly."""
    vector = np.random.default_rng(5).normal(size=(1, 50)).astype(np.float32)
    (row,) = word_rows("light", {"glove": np.repeat(vector, 400, axis=0)}, [None] * 400, [])
    assert row["glove_euclidean_apd"] == 0.0
    assert row["glove_euclidean_spread"] == 0.0
    assert row["glove_cosine_apd"] == pytest.approx(0.0, abs=1e-15)
    assert row["glove_cosine_spread"] == pytest.approx(0.0, abs=1e-15)


def test_two_far_apart_tight_clusters_are_measured_within_and_across() -> None:
    rng = np.random.default_rng(6)
    first = (rng.normal(size=(30, 12)) * 1e-3 + 100).astype(np.float32)
    second = (rng.normal(size=(30, 12)) * 1e-3 - 100).astype(np.float32)
    assert_pair_row(two_groupings(first, second), "m", first, second)


def test_blocked_products_give_the_same_mean_whatever_the_block_size() -> None:
    rng = np.random.default_rng(7)
    first, second = rng.normal(size=(101, 10)).astype(np.float32), rng.normal(size=(67, 10)).astype(np.float32)
    assert block_size(TINY_BUDGET) == 16
    for budget in (TINY_BUDGET, 40 * 40 * 16, 10**9):
        assert euclidean_apd_within(first, memory_budget=budget) == pytest.approx(within(first, "euclidean"), rel=1e-12)
        assert euclidean_apd_across(first, second, memory_budget=budget) == pytest.approx(
            across(first, second, "euclidean"), rel=1e-12
        )


vectors_scale = st.sampled_from([1e-3, 1.0, 1e3])


@settings(max_examples=examples(100), deadline=None)
@given(
    st.integers(2, 40),
    st.integers(2, 40),
    st.integers(1, 20),
    vectors_scale,
    st.sampled_from([0.0, 1e-3, 1.0]),
    st.integers(0, 2**32 - 1),
)
def test_any_uses_match_the_reference(n1: int, n2: int, dims: int, scale: float, offset: float, seed: int) -> None:
    """Random sizes, scales, offsets from the origin (offset/scale up to 1000: nearly parallel uses)."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=dims) * offset * 1e3
    first = (base + rng.normal(size=(n1, dims)) * scale).astype(np.float32)
    second = (base + rng.normal(size=(n2, dims)) * scale).astype(np.float32)
    if not np.any(first, axis=1).all() or not np.any(second, axis=1).all():
        return  # a zero vector has no cosine: the job gives such a use a status before this point
    assert_pair_row(two_groupings(first, second), "m", first, second)


def test_a_grouping_with_one_use_has_a_null_own_apd_and_says_so() -> None:
    rng = np.random.default_rng(8)
    vectors = rng.normal(size=(6, 4)).astype(np.float32)
    (row,) = word_rows("w", {"m": vectors}, ["a"] * 5 + ["b"], ["a", "b"])
    assert row["status"] == "one_use_2"
    assert (row["uses_1"], row["uses_2"]) == (5, 1)
    for metric in ("euclidean", "cosine"):
        assert row[f"m_{metric}_apd_2"] is None
        assert row[f"m_{metric}_apd_1"] == pytest.approx(within(vectors[:5], metric), rel=RTOL)
        assert row[f"m_{metric}_apd"] == pytest.approx(across(vectors[:5], vectors[5:], metric), rel=RTOL)
        assert row[f"m_{metric}_prt"] == pytest.approx(prt(vectors[:5], vectors[5:], metric), rel=RTOL)


def test_a_word_without_a_use_in_one_grouping_gets_its_row_with_null_cross_measures() -> None:
    vectors = np.random.default_rng(9).normal(size=(4, 3)).astype(np.float32)
    rows = word_rows("w", {"m": vectors}, ["b"] * 4, ["a", "b", "c"])
    assert [(r["grouping_1"], r["grouping_2"]) for r in rows] == [("a", "b"), ("a", "c"), ("b", "c")]
    assert [r["status"] for r in rows] == ["no_uses_1", "no_uses_1;no_uses_2", "no_uses_2"]
    assert [(r["uses_1"], r["uses_2"]) for r in rows] == [(0, 4), (0, 0), (4, 0)]
    for row in rows:
        for metric in ("euclidean", "cosine"):
            assert row[f"m_{metric}_apd"] is None
            assert row[f"m_{metric}_prt"] is None
    assert rows[0]["m_cosine_apd_2"] == pytest.approx(within(vectors, "cosine"), rel=RTOL)
    assert status_counts(r["status"] for r in rows) == {"no_uses_1": 2, "no_uses_2": 2}


def test_a_corpus_without_groupings_gives_one_row_with_the_apd_and_spread_of_all_uses() -> None:
    vectors = np.random.default_rng(10).normal(size=(25, 6)).astype(np.float32)
    (row,) = word_rows("w", {"m": vectors}, [None] * 25, [])
    assert (row["grouping_1"], row["grouping_2"], row["uses_1"], row["uses_2"], row["status"]) == (
        None,
        None,
        25,
        None,
        "ok",
    )
    for metric in ("euclidean", "cosine"):
        assert row[f"m_{metric}_apd"] == pytest.approx(within(vectors, metric), rel=RTOL)
        assert row[f"m_{metric}_apd_1"] == row[f"m_{metric}_apd"]
        assert row[f"m_{metric}_spread"] == pytest.approx(spread(vectors, metric), rel=RTOL)
        assert row[f"m_{metric}_apd_2"] is None and row[f"m_{metric}_prt"] is None


def test_a_corpus_with_one_grouping_names_it_on_the_single_row() -> None:
    vectors = np.random.default_rng(11).normal(size=(3, 6)).astype(np.float32)
    (row,) = word_rows("w", {"m": vectors}, ["news"] * 3, ["news"])
    assert (row["grouping_1"], row["grouping_2"], row["status"]) == ("news", None, "ok")


@pytest.mark.parametrize(("uses", "status"), [(1, "one_use"), (0, "no_uses")])
def test_a_word_with_too_few_uses_for_a_pair_has_null_apd_and_spread(uses: int, status: str) -> None:
    vectors = np.ones((uses, 4), dtype=np.float32)
    (row,) = word_rows("w", {"m": vectors}, [None] * uses, [])
    assert (row["uses_1"], row["status"]) == (uses, status)
    assert all(row[column] is None for column in measure_columns(["m"]))


def test_a_side_whose_mean_vector_is_zero_has_a_null_cosine_prt_and_a_status() -> None:
    vectors = np.array([[1, 0], [-1, 0], [1, 1], [2, 1]], dtype=np.float32)
    (row,) = word_rows("w", {"m": vectors}, ["a", "a", "b", "b"], ["a", "b"])
    assert row["m_cosine_prt"] is None
    assert row["m_euclidean_prt"] == pytest.approx(prt(vectors[:2], vectors[2:], "euclidean"))
    assert row["status"] == "m_zero_mean"


def test_rows_that_break_the_contract_are_refused_with_the_word_named() -> None:
    good = np.ones((2, 3), dtype=np.float32)
    with pytest.raises(ValueError, match="'w': m vectors hold NaN"):
        word_rows("w", {"m": np.array([[1, np.nan, 0], [1, 1, 1]], dtype=np.float32)}, [None, None], [])
    with pytest.raises(ValueError, match="zero vector"):
        word_rows("w", {"m": np.zeros((2, 3), dtype=np.float32)}, [None, None], [])
    with pytest.raises(ValueError, match=r"groupings \['c'\] are not among"):
        word_rows("w", {"m": good}, ["a", "c"], ["a", "b"])
    with pytest.raises(ValueError, match=r"shape \(2, 3\), expected \(3, D\)"):
        word_rows("w", {"m": good}, ["a", "a", "a"], ["a", "b"])


def test_a_zero_vector_is_fine_for_euclidean_alone() -> None:
    vectors = np.array([[0, 0], [3, 4]], dtype=np.float32)
    (row,) = word_rows("w", {"m": vectors}, [None, None], [], metrics=("euclidean",))
    assert row["m_euclidean_apd"] == pytest.approx(5.0)
    assert "m_cosine_apd" not in row


def test_the_schema_is_float32_measures_and_int32_counts_and_takes_the_rows_as_they_are() -> None:
    schema = usage_schema(["bert", "glove"], ("euclidean", "cosine"))
    assert schema.names[:5] == ["lemma", "grouping_1", "grouping_2", "uses_1", "uses_2"]
    assert schema.names[-1] == "status"
    assert schema.field("uses_1").type == pa.int32() and schema.field("uses_2").type == pa.int32()
    assert {schema.field(c).type for c in measure_columns(["bert", "glove"])} == {pa.float32()}
    assert "bert_cosine_apd_1" in schema.names and "glove_euclidean_spread" in schema.names
    rng = np.random.default_rng(12)
    rows = word_rows("a", {"bert": rng.normal(size=(3, 4)).astype(np.float32)}, ["x", "y", "y"], ["x", "y"])
    rows += word_rows("b", {"bert": rng.normal(size=(1, 4)).astype(np.float32)}, ["y"], ["x", "y"])
    table = usage_table(rows, ["bert"])
    assert table.schema == usage_schema(["bert"])
    assert table.column("status").to_pylist() == ["one_use_1", "no_uses_1;one_use_2"]
    assert table.column("bert_euclidean_apd").null_count == 1
