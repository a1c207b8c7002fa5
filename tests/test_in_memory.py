"""`distances`: the job of `run` on data in memory (pandas, Polars, pyarrow, lists, streams of
record batches), with the same rows as `run` on the same data written to Parquet."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import batchembed
from batchembed.io.schema import read_metadata

pd = pytest.importorskip("pandas")
pl = pytest.importorskip("polars")

# an ok pair, a word missing from the tiny GloVe (a status naming the model), an empty and a null
# sentence, a repeated sentence, a pair with nothing in common
SENTENCE1 = ["the light was bright", "the zebra saw light", "  ", None, "the light was bright", "happy dog"]
SENTENCE2 = ["she saw light", "a zebra in the light", "x", "my bank", "the light in the room", "sad cat"]
LABELS = [1, 0, 1, 0, 1, 0]
# what run's output depends on; pair_id and source_file name the file, or the data in memory
COMPARED = [
    "source_row",
    "word_1",
    "word_2",
    "token_index_1",
    "token_index_2",
    "char_start_1",
    "char_end_1",
    "char_start_2",
    "char_end_2",
    "glove_euclidean",
    "glove_cosine",
    "bert_euclidean",
    "bert_cosine",
    "status",
]


@pytest.fixture(scope="module")
def embedder(tiny_glove_file: Path, tiny_bert_dir: Path) -> batchembed.Embedder:
    return batchembed.Embedder(str(tiny_glove_file), str(tiny_bert_dir), device="cpu", token_budget=256)


@pytest.fixture
def tmpdir_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Temporary files go here, so a test sees what is left behind."""
    directory = tmp_path / "tmp"
    directory.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(directory))
    return directory


def frame() -> pa.Table:
    return pa.table({"sentence1": SENTENCE1, "sentence2": SENTENCE2, "label": LABELS})


def run_on_parquet(embedder: batchembed.Embedder, table: pa.Table, tmp_path: Path, **options: Any) -> pa.Table:
    pq.write_table(table, tmp_path / "pairs.parquet")
    embedder.run(tmp_path / "pairs.parquet", tmp_path / "out", tokenize_workers=0, **options)
    return batchembed.read_output(tmp_path / "out")


CONVERSIONS: dict[str, Callable[[pa.Table], Any]] = {
    "pyarrow Table": lambda t: t,
    "pyarrow RecordBatch": lambda t: t.combine_chunks().to_batches()[0],
    "pyarrow RecordBatchReader": lambda t: pa.RecordBatchReader.from_batches(t.schema, t.to_batches(max_chunksize=2)),
    "pandas DataFrame": lambda t: t.to_pandas().set_index(pd.Index(range(10, 16))),  # an index of its own
    "Polars DataFrame": lambda t: pl.from_arrow(t),
    "list of dicts": lambda t: t.to_pylist(),
}


@pytest.mark.parametrize("kind", sorted(CONVERSIONS))
def test_distances_gives_the_rows_run_gives_on_the_same_data_in_parquet(
    embedder: batchembed.Embedder, tmp_path: Path, tmpdir_here: Path, kind: str
) -> None:
    expected = run_on_parquet(embedder, frame(), tmp_path, keep_columns=["label", "sentence1"])
    result = embedder.distances(CONVERSIONS[kind](frame()), keep_columns=["label", "sentence1"], tokenize_workers=0)
    assert isinstance(result, pa.Table)
    assert result.select(COMPARED).equals(expected.select(COMPARED))  # distances and statuses equal
    assert set(result.column("status").to_pylist()) >= {"ok", "empty_sentence", "null_sentence", "no_shared_words"}
    assert "glove_oov" in set(result.column("status").to_pylist())
    rows = result.to_pylist()
    assert [(r["label"], r["sentence1"]) for r in rows] == [
        (LABELS[r["source_row"] - 1], SENTENCE1[r["source_row"] - 1]) for r in rows
    ]
    assert result.column("source_file").unique().to_pylist() == ["<memory>"]
    assert result.column("pair_id").to_pylist() == [str(r["source_row"]) for r in rows]  # no id: the row number
    assert read_metadata(result.schema)["inputs"] == ["<memory>"]
    assert list(tmpdir_here.iterdir()) == []  # the spooled file and the output are gone


def test_a_list_of_tuples_is_pairs_of_sentences(embedder: batchembed.Embedder, tmp_path: Path) -> None:
    expected = run_on_parquet(embedder, frame().select(["sentence1", "sentence2"]), tmp_path)
    result = embedder.distances(list(zip(SENTENCE1, SENTENCE2)), tokenize_workers=0)
    assert result.equals(result.select(expected.schema.names))  # no other column
    assert result.select(COMPARED).equals(expected.select(COMPARED))


def test_pandas_and_polars_read_the_result_in_one_call(embedder: batchembed.Embedder) -> None:
    result = embedder.distances(frame().to_pandas(), keep_columns="label", tokenize_workers=0)
    assert list(result.to_pandas().columns) == result.schema.names
    assert pl.from_arrow(result).shape == (result.num_rows, len(result.schema.names))


def test_target_modes_and_ids_come_from_the_data(embedder: batchembed.Embedder, tmp_path: Path) -> None:
    data = pa.table(
        {
            "a": ["the light was bright", "the bank of the river"],
            "b": ["she saw the light", "my bank"],
            "target": ["light", "bank"],
            "key": [17, None],
        }
    )
    options = {"sentence1_column": "a", "sentence2_column": "b", "word_column": "target", "id_column": "key"}
    result = embedder.distances(data, tokenize_workers=0, **options)
    assert result.column("word_1").to_pylist() == ["light", "bank"]  # word mode: only the target
    assert result.column("pair_id").to_pylist() == ["17", "2"]  # the id, else the row number
    expected = run_on_parquet(embedder, data, tmp_path, **options)
    assert result.select(COMPARED).equals(expected.select(COMPARED))


def test_a_stream_of_record_batches_gives_record_batches_through_the_prepare_workers(
    embedder: batchembed.Embedder, tmpdir_here: Path
) -> None:
    table = embedder.distances(frame(), keep_columns=["label"], tokenize_workers=0)

    def batches() -> Iterator[pa.RecordBatch]:
        for k in range(0, len(SENTENCE1), 2):
            yield frame().slice(k, 2).to_batches()[0]

    streamed = embedder.distances(batches(), keep_columns=["label"], tokenize_workers=1)
    assert isinstance(streamed, Iterator) and not isinstance(streamed, pa.Table)
    parts = list(streamed)
    assert all(isinstance(b, pa.RecordBatch) for b in parts)
    assert pa.Table.from_batches(parts).equals(table)  # the same rows, in input order
    assert list(tmpdir_here.iterdir()) == []


def test_a_stream_left_unread_removes_its_temporary_files(embedder: batchembed.Embedder, tmpdir_here: Path) -> None:
    streamed = embedder.distances(iter(frame().to_batches(max_chunksize=1)), tokenize_workers=0)
    assert len(list(tmpdir_here.iterdir())) == 1  # the job ran: its output waits to be read
    next(streamed)
    streamed.close()
    assert list(tmpdir_here.iterdir()) == []
    assert list(embedder.distances(iter([]), tokenize_workers=0)) == []


def test_no_pairs_give_an_empty_table_with_the_output_schema(embedder: batchembed.Embedder) -> None:
    result = embedder.distances([], tokenize_workers=0)
    assert result.num_rows == 0
    assert result.schema.names == run_names()


def run_names() -> list[str]:
    from batchembed.io.schema import output_schema

    return output_schema(["glove", "bert"]).names


# -- what to call instead ---------------------------------------------------------------------


def test_data_in_memory_given_to_run_says_to_call_distances(tmp_path: Path) -> None:
    for data in (frame().to_pandas(), frame(), list(zip(SENTENCE1, SENTENCE2))):
        with pytest.raises(batchembed.UsageError) as caught:
            batchembed.run(data, tmp_path / "out", glove="/nowhere/glove.txt")  # refused before any model loads
        assert str(caught.value).startswith("run reads files, but inputs is a ")
        assert "call batchembed.distances(data, ...)" in str(caught.value)
    assert not (tmp_path / "out").exists()


def test_series_given_to_compare_says_to_call_distances() -> None:
    series = pd.Series(SENTENCE1)
    with pytest.raises(batchembed.UsageError) as caught:
        batchembed.compare(series, pd.Series(SENTENCE2), glove="/nowhere/glove.txt")  # before any model loads
    assert str(caught.value) == (
        "compare takes two sentences (text), but sentence1 is a pandas Series; for many pairs call "
        "batchembed.distances(pairs) (or Embedder.distances), e.g. with list(zip(series1, series2))"
    )
    with pytest.raises(batchembed.UsageError, match="but sentence2 is a polars Series"):
        batchembed.compare("the light", pl.Series(SENTENCE2), glove="/nowhere/glove.txt")


def test_a_path_or_a_series_given_to_distances_says_what_to_give() -> None:
    with pytest.raises(batchembed.UsageError, match=r"^distances takes data in memory, but pairs is a str; for files"):
        batchembed.distances("pairs.csv", glove="/nowhere/glove.txt")
    with pytest.raises(batchembed.UsageError, match=r"^pairs is a pandas Series \(one column\)"):
        batchembed.distances(pd.Series(SENTENCE1), glove="/nowhere/glove.txt")
    with pytest.raises(batchembed.UsageError, match=r"^pairs\[1\] is 'just one'; give every pair as a"):
        batchembed.distances([("a", "b"), "just one"], glove="/nowhere/glove.txt")
    with pytest.raises(batchembed.UsageError, match=r"^pairs: a column mixes types \(.*\); give text sentences"):
        batchembed.distances([("a", 3), ("b", "c")], glove="/nowhere/glove.txt")
    with pytest.raises(batchembed.UsageError, match=r"^pairs is a int; give a DataFrame"):
        batchembed.distances(3, glove="/nowhere/glove.txt")


def test_missing_columns_are_named_before_any_model_loads() -> None:
    data = pd.DataFrame({"text_a": ["x"], "text_b": ["y"]})
    with pytest.raises(batchembed.InputError) as caught:
        batchembed.distances(data, glove="/nowhere/glove.txt")
    assert str(caught.value) == (
        "pairs: missing column 'sentence1' (columns: text_a, text_b); name the sentence columns with "
        "sentence1_column/sentence2_column"
    )
    with pytest.raises(batchembed.InputError, match="^pairs: missing column 'label' named by keep_columns"):
        batchembed.distances(frame().drop_columns(["label"]), keep_columns=["label"], glove="/nowhere/glove.txt")


# -- evaluate on graded pairs in memory -------------------------------------------------------

GRADED = {
    "word1": ["car", "bank", "light"],
    "word2": ["automobile", "shore", "light"],
    "sentence1": ["the car would not start", "we walked along the bank", "the light was bright"],
    "sentence2": ["an automobile stood there", "the boat drifted to the shore", "she saw light"],
    "score": [9.0, 4.0, 7.0],
}


def test_evaluate_takes_graded_pairs_in_a_dataframe(embedder: batchembed.Embedder, tmp_path: Path) -> None:
    pq.write_table(pa.table(GRADED), tmp_path / "graded.parquet")
    from_file = embedder.evaluate(similarity=str(tmp_path / "graded.parquet"))
    from_frame = embedder.evaluate(similarity=pd.DataFrame(GRADED))
    assert from_frame.graded == from_file.graded
    assert from_frame.similarity is not None and from_frame.similarity["files"] == ["<memory>"]
    with pytest.raises(batchembed.InputError, match=r"^similarity: missing score column 'rating'"):
        batchembed.evaluate(similarity=pl.DataFrame(GRADED), score_column="rating", glove="/nowhere/glove.txt")


def test_the_spooled_file_has_one_row_group_per_shard(tmp_path: Path) -> None:
    """Each task of the job then decodes its own row group only."""
    from batchembed.config import Columns
    from batchembed.io.memory_source import arrow_data, spool

    stream = iter(pa.table({"sentence1": ["a"] * 21, "sentence2": ["b"] * 21}).to_batches(max_chunksize=3))
    data = arrow_data(stream, Columns())
    assert data is not None
    path, rows = spool(data, Columns(), str(tmp_path), group_rows=5)
    metadata = pq.ParquetFile(path).metadata
    assert rows == 21
    assert [metadata.row_group(k).num_rows for k in range(metadata.num_row_groups)] == [5, 5, 5, 5, 1]
