"""The DWUG/DURel layout, read as published, from the hand-made corpus in tests/data/dwug."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from batchembed.io.dwug import (
    CANONICAL,
    CONVERT_OPTIONS,
    PARSE_OPTIONS,
    dwug_uses,
    find_dwug_files,
    is_dwug_header,
    read_dwug_file,
)

CORPUS = Path(__file__).parent / "data" / "dwug"
WORDS = ["harbour", "lantern", "orbit"]


def test_a_corpus_directory_of_data_word_folders_is_found_word_by_word() -> None:
    assert find_dwug_files(CORPUS) == [str(CORPUS / "data" / word / "uses.csv") for word in WORDS]


def test_a_directory_of_word_folders_a_word_folder_and_one_file_are_found_too(tmp_path: Path) -> None:
    shutil.copytree(CORPUS / "data", tmp_path / "words")
    assert find_dwug_files(tmp_path / "words") == [str(tmp_path / "words" / w / "uses.csv") for w in WORDS]
    assert find_dwug_files(tmp_path / "words" / "orbit") == [str(tmp_path / "words" / "orbit" / "uses.csv")]
    renamed = tmp_path / "orbit.tsv"
    shutil.copy(CORPUS / "data" / "orbit" / "uses.csv", renamed)
    assert find_dwug_files(renamed) == [str(renamed)]


def test_anything_else_is_not_a_dwug_corpus(tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("sentence1,sentence2\na,b\n")
    assert find_dwug_files(pairs) is None
    assert find_dwug_files(tmp_path) is None
    assert find_dwug_files(tmp_path / "missing") is None
    (tmp_path / "word").mkdir()
    (tmp_path / "word" / "uses.csv").write_text("lemma\tsentence\nbank\tBy the bank.\n")  # not DWUG's columns
    assert find_dwug_files(tmp_path) is None


def test_a_dwug_header_is_recognised_by_its_columns_in_any_order() -> None:
    assert is_dwug_header(["context", "identifier", "grouping", "lemma", "indexes_target_token", "extra"])
    assert not is_dwug_header(["lemma", "grouping", "identifier", "context"])
    assert not is_dwug_header(["sentence1", "sentence2"])


def test_the_files_are_read_as_published_unquoted_with_every_column_as_text() -> None:
    table = pa.concat_tables(read_dwug_file(f) for f in find_dwug_files(CORPUS) or [])
    assert table.num_rows == 12
    assert table.column("grouping").type == pa.string()
    assert set(table.column("grouping").to_pylist()) == {"1", "2"}
    contexts = table.column("context").to_pylist()
    assert '"Our start-up now lives in the orbit of a larger company," she said.' in contexts  # starts with "
    assert 'He called the old library a "lantern" for the whole town.' in contexts


def test_dwug_columns_become_the_canonical_uses_with_spans_on_the_target() -> None:
    uses = dwug_uses(read_dwug_file(CORPUS / "data" / "lantern" / "uses.csv"))
    assert uses.schema == CANONICAL
    rows = uses.to_pylist()
    assert [r["use_id"] for r in rows] == [f"lantern_0{n}" for n in range(1, 6)]
    assert [r["grouping"] for r in rows] == ["1", "1", "2", "2", "2"]
    assert {r["lemma"] for r in rows} == {"lantern"}
    assert [r["sentence"][r["start"] : r["end"]] for r in rows] == ["lantern"] * 3 + ["lanterns", "lantern"]


def test_a_malformed_target_becomes_a_null_span_for_the_job_to_report() -> None:
    values = ["0:3", "x:y", None, "3:1", "2:2", " 1 : 2 ", "99999999999:100000000000", "1-2", "1:2:3"]
    table = pa.table(
        {
            "lemma": ["a"] * len(values),
            "grouping": [1] * len(values),
            "identifier": [str(n) for n in range(len(values))],
            "context": ["abcdef"] * len(values),
            "indexes_target_token": values,
        }
    )
    uses = dwug_uses(table)
    assert uses.column("start").to_pylist() == [0, None, None, None, None, 1, None, None, None]
    assert uses.column("end").to_pylist() == [3, None, None, None, None, 2, None, None, None]
    assert uses.column("grouping").to_pylist() == ["1"] * len(values)


def test_a_table_without_dwug_columns_is_refused_naming_what_is_missing() -> None:
    with pytest.raises(ValueError, match=r"no column\(s\) \['identifier', 'indexes_target_token'\]"):
        dwug_uses(pa.table({"lemma": ["a"], "grouping": ["1"], "context": ["x"]}))


def test_the_options_stream_a_uses_file_batch_by_batch() -> None:
    """What a streaming reader passes to pyarrow.csv.open_csv."""
    reader = pacsv.open_csv(
        CORPUS / "data" / "orbit" / "uses.csv", parse_options=PARSE_OPTIONS, convert_options=CONVERT_OPTIONS
    )
    table = reader.read_all()
    assert table.num_rows == 4
    assert dwug_uses(table).column("start").null_count == 0
