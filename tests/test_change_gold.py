"""Graded change: the gold file in DWUG's layout or as a plain CSV/TSV, and Spearman per measure."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from batchembed.errors import InputError, UsageError
from batchembed.evaluation.change import read_change_gold, score_change
from batchembed.usage.measures import usage_table, word_rows

STATS = Path(__file__).parent / "data" / "dwug" / "stats" / "opt" / "stats_groupings.csv"


def test_dwugs_stats_groupings_gives_each_lemmas_change_graded() -> None:
    assert read_change_gold(STATS) == {"lantern": 0.62, "orbit": 0.35, "harbour": 0.05}


@pytest.mark.parametrize(
    "text",
    [
        "word,score\nbank,0.5\nplane,0.25\n",
        "Target\tGraded\nbank\t0.5\nplane\t0.25\n",
        "id;Lemma;Change;note\n1;bank;0.5;x\n2;plane;0.25;y\n",
        '"word","change_graded","change"\n"bank","0.5","9"\n"plane",".25","9"\n',
    ],
)
def test_a_plain_csv_or_tsv_with_a_word_and_a_score_column_is_read(tmp_path: Path, text: str) -> None:
    gold = tmp_path / "gold.txt"
    gold.write_text(text)
    assert read_change_gold(gold) == {"bank": 0.5, "plane": 0.25}


def test_a_file_without_the_columns_says_which_columns_it_has(tmp_path: Path) -> None:
    gold = tmp_path / "gold.csv"
    gold.write_text("term,value\nbank,1\n")
    with pytest.raises(InputError) as caught:
        read_change_gold(gold)
    assert str(caught.value) == (
        f"{gold}: a change gold file needs a word column (lemma, word, target) and a score column "
        "(change_graded, change, score, graded); it has term, value"
    )


def test_a_score_that_is_not_a_number_is_named_with_its_line(tmp_path: Path) -> None:
    gold = tmp_path / "gold.tsv"
    gold.write_text("lemma\tchange_graded\nbank\t0.5\nplane\thigh\n")
    with pytest.raises(InputError, match=r"gold.tsv:3: needs a word in 'lemma' and a number in 'change_graded'"):
        read_change_gold(gold)


def test_a_word_with_two_different_scores_is_refused(tmp_path: Path) -> None:
    gold = tmp_path / "gold.csv"
    gold.write_text("word,score\nbank,0.5\nbank,0.7\n")
    with pytest.raises(InputError, match="'bank' has two scores"):
        read_change_gold(gold)


def test_a_missing_gold_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read the gold file"):
        read_change_gold(tmp_path / "nope.csv")


def two_grouping_word(lemma: str, shift: float, rng: np.random.Generator) -> list[dict]:
    """A word whose second grouping's uses lie `shift` away along one axis: APD and PRT grow with it."""
    first = rng.normal(size=(6, 3)) * 0.01
    second = rng.normal(size=(6, 3)) * 0.01
    second[:, 0] += shift
    vectors = np.concatenate([first, second]).astype(np.float32) + np.float32(5)
    return word_rows(lemma, {"m": vectors}, ["1"] * 6 + ["2"] * 6, ["1", "2"], metrics=("euclidean",))


def test_spearman_on_a_hand_computable_ranking() -> None:
    """Measures rank a < b < c < d; gold ranks a < b < d < c: rho = 1 - 6·2 / (4·15) = 0.8."""
    rng = np.random.default_rng(0)
    rows = [r for n, w in enumerate("abcd") for r in two_grouping_word(w, 0.1 * (n + 1), rng)]
    rows += word_rows("e", {"m": np.ones((2, 3), np.float32)}, ["1", "1"], ["1", "2"], metrics=("euclidean",))
    table = usage_table(rows, ["m"], ("euclidean",))
    gold = {"a": 1.0, "b": 2.0, "c": 4.0, "d": 3.0, "e": 9.0, "not-in-the-output": 0.0}
    records = score_change(table, gold, ["m"], ["euclidean"])
    assert records == [
        {"model": "m", "metric": "euclidean", "measure": "apd", "spearman": pytest.approx(0.8), "words": 4},
        {"model": "m", "metric": "euclidean", "measure": "prt", "spearman": pytest.approx(0.8), "words": 4},
    ]


def test_fewer_than_two_words_or_a_constant_measure_has_no_spearman() -> None:
    rng = np.random.default_rng(1)
    table = usage_table(two_grouping_word("a", 1.0, rng), ["m"], ("euclidean",))
    (apd, _) = score_change(table, {"a": 1.0}, ["m"], ["euclidean"])
    assert (apd["spearman"], apd["words"]) == (None, 1)


def test_a_corpus_with_three_groupings_must_say_which_pair_to_score() -> None:
    rng = np.random.default_rng(2)
    rows = []
    for lemma, shift in (("a", 0.1), ("b", 0.2), ("c", 0.3)):
        vectors = rng.normal(size=(9, 3)) * 0.01 + np.repeat([[0, 0, 0], [shift, 0, 0], [1, 1, 1]], 3, axis=0)
        rows += word_rows(lemma, {"m": vectors.astype(np.float32)}, list("xxxyyyzzz"), ["x", "y", "z"])
    table = usage_table(rows, ["m"])
    with pytest.raises(UsageError, match="several pairs of groupings"):
        score_change(table, {"a": 1, "b": 2, "c": 3}, ["m"], ["euclidean"])
    records = score_change(table, {"a": 1, "b": 2, "c": 3}, ["m"], ["euclidean", "cosine"], groupings=("y", "x"))
    assert [(r["metric"], r["measure"], r["words"]) for r in records] == [
        ("euclidean", "apd", 3),
        ("euclidean", "prt", 3),
        ("cosine", "apd", 3),
        ("cosine", "prt", 3),
    ]
    assert records[1]["spearman"] == pytest.approx(1.0)
