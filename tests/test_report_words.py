"""The report's per-word plots: function words left out by default (and said so), labels that do
not collide, and an all-zero model that says so instead of drawing an empty axis."""

from __future__ import annotations

import itertools
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from batchembed.config import RunConfig
from batchembed.engines.local import run as run_local
from batchembed.results.report import (
    STOPWORDS_NOTE,
    _figure,
    label_points,
    per_word,
    plot_distributions,
    read_result,
    write_report,
)


@pytest.fixture
def result_dir(tmp_path: Path, fake_embedders: list) -> Path:
    pairs = {
        "sentence1": ["the bank of the river", "the bank raised the rate", "a light in the dark", "the light"],
        "sentence2": ["the bank was closed", "they fished from the bank", "the light of day", "a light and the joy"],
    }
    pacsv.write_csv(pa.table(pairs), tmp_path / "pairs.csv")
    run_local(RunConfig((str(tmp_path / "pairs.csv"),), tmp_path / "out", tokenizer="whitespace"), fake_embedders)
    return tmp_path / "out"


def test_per_word_plots_leave_out_function_words_by_default(result_dir: Path) -> None:
    result = read_result(result_dir)
    assert "the" in per_word(result.table, ["ctx_cosine"]).column("key").to_pylist()
    keys = per_word(result.word_rows(), ["ctx_cosine"]).column("key").to_pylist()
    assert "the" not in keys and {"bank", "light"} <= set(keys)
    result.keep_stopwords = True
    assert "the" in per_word(result.word_rows(), ["ctx_cosine"]).column("key").to_pylist()


def test_the_page_says_function_words_are_left_out_unless_kept(result_dir: Path, tmp_path: Path) -> None:
    page = write_report(result_dir, tmp_path / "default").read_text(encoding="utf-8")
    assert page.count("report --keep-stopwords keeps them.") == 2  # the two per-word plots
    kept = write_report(result_dir, tmp_path / "kept", keep_stopwords=True).read_text(encoding="utf-8")
    assert STOPWORDS_NOTE.strip()[:20] not in kept


def test_labels_never_overlap_even_for_points_in_one_place() -> None:
    fig = _figure(6, 4)
    ax = fig.subplots()
    points = [(f"word{k}", 0.1, 0.1 + k * 1e-3) for k in range(10)]  # within a pixel or two of each other
    ax.scatter([x for _, x, _ in points] + [1.0], [y for _, _, y in points] + [1.0])
    placed = label_points(fig, ax, points)
    assert 1 <= placed < len(points)
    fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()
    boxes = [text.get_window_extent(renderer) for text in ax.texts]
    assert len(boxes) == placed
    assert not any(a.overlaps(b) for a, b in itertools.combinations(boxes, 2))


def test_labels_of_spread_points_are_all_placed() -> None:
    fig = _figure(6, 4)
    ax = fig.subplots()
    points = [(f"w{k}", float(k), float(k)) for k in range(5)]
    ax.scatter([p[1] for p in points], [p[2] for p in points])
    assert label_points(fig, ax, points) == 5


def test_an_all_zero_model_says_all_distances_0(result_dir: Path) -> None:
    result = read_result(result_dir)
    result.table = result.table.filter(pa.compute.equal(result.table.column("word_1"), "bank"))
    texts = [t.get_text() for ax in plot_distributions(result).axes for t in ax.texts]
    static_zero = [t for t in texts if t.startswith("all distances 0")]
    assert static_zero == ["all distances 0 (2 pairs)"] * 2  # the static model, both metrics
