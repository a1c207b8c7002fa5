"""The usage report: words ranked by APD, the top words' pairwise distances, statuses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from batchembed.errors import OutputError
from batchembed.usage.measures import usage_table, word_rows
from batchembed.usage.report import is_usage_table, measured, ranked, write_usage_report
from batchembed.usage.sampling import pair_distances, sample_pairs

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def corpus() -> tuple[pa.Table, pa.Table]:
    """Words whose second grouping moves further and further away, and their sampled pairs."""
    rng = np.random.default_rng(0)
    rows, pairs = [], {"lemma": [], "bert_euclidean": [], "bert_cosine": []}
    for n, lemma in enumerate(["calm", "drift", "shift", "leap"]):
        first, second = rng.normal(size=(5, 4)), rng.normal(size=(6, 4)) + n
        vectors = np.concatenate([first, second]).astype(np.float32)
        rows += word_rows(lemma, {"bert": vectors}, ["1"] * 5 + ["2"] * 6, ["1", "2"])
        i, j = sample_pairs(5, 6, 20, 0, lemma, ("1", "2"))
        pairs["lemma"] += [lemma] * len(i)
        for metric in ("euclidean", "cosine"):
            pairs[f"bert_{metric}"] += pair_distances(vectors[:5], i, j, metric, other=vectors[5:]).tolist()
    rows += word_rows("lone", {"bert": rng.normal(size=(1, 4)).astype(np.float32)}, ["1"], ["1", "2"])
    return usage_table(rows, ["bert"]), pa.table(pairs)


def test_a_uses_table_is_recognised_with_its_models_and_metrics() -> None:
    table, pairs = corpus()
    assert is_usage_table(table.schema)
    assert measured(table.schema) == (["bert"], ["euclidean", "cosine"])
    assert not is_usage_table(pairs.schema)


def test_words_are_ranked_by_apd_largest_first_without_the_null_ones() -> None:
    table, _ = corpus()
    assert [row["lemma"] for row in ranked(table, "bert_euclidean_apd", 10)] == ["leap", "shift", "drift", "calm"]


def test_the_report_writes_a_page_and_a_png_per_plot(tmp_path: Path) -> None:
    table, pairs = corpus()
    page = write_usage_report(table, tmp_path / "report", pairs=pairs, title="dwug-en-uses")
    text = page.read_text()
    assert "dwug-en-uses" in text and "5 words" in text
    assert text.index("<td>leap</td>") < text.index("<td>calm</td>")
    assert sorted(p.name for p in (tmp_path / "report").glob("*.png")) == [
        "distributions.png",
        "ranking.png",
        "statuses.png",
    ]
    assert all(p.read_bytes().startswith(PNG_MAGIC) for p in (tmp_path / "report").glob("*.png"))


def test_without_pairs_the_report_leaves_out_the_distributions(tmp_path: Path) -> None:
    table, _ = corpus()
    write_usage_report(table, tmp_path)
    assert not (tmp_path / "distributions.png").exists()
    assert (tmp_path / "ranking.png").exists()


def test_a_table_that_is_not_a_uses_output_is_refused(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="not a uses output"):
        write_usage_report(pa.table({"word_1": ["a"]}), tmp_path)
