"""Input defects: nothing wrong is ever written silently. Each class of input defect through the
command line: the exit code, the one-line message, and the rows written."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_cli import invoke
from test_reader import corrupt_row_groups


@pytest.fixture
def tiny_models(tiny_glove_file: Path, tiny_bert_dir: Path) -> list[str]:
    return ["--glove", str(tiny_glove_file), "--transformer", str(tiny_bert_dir)]


def run(tmp_path: Path, tiny_models: list[str], *args: str):
    return invoke("run", *args, "-o", str(tmp_path / "out"), *tiny_models)


def errors(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("Error: ")]


# -- 1. target columns named but absent, or only part of a mode's ---------------------------------------


@pytest.mark.parametrize(
    "header,options,message",
    [
        ("sentence1,sentence2", ["--word-column", "target"],
         "missing column 'target' named by --word-column (columns: sentence1, sentence2); check the name, "
         "or leave --word-column out"),
        ("sentence1,sentence2,start1,end1,start2,end2", ["--span-columns", "s1,e1,s2,e2"],
         "missing columns 's1', 'e1', 's2', 'e2' named by --span-columns"),
        ("sentence1,sentence2,w1", ["--word-columns", "w1,w2"], "missing column 'w2' named by --word-columns"),
        ("sentence1,sentence2", ["--index-columns", "i1,i2"], "missing columns 'i1', 'i2' named by --index-columns"),
        ("sentence1,sentence2,start1,end1,start2", [],
         "has spans target columns 'start1', 'end1', 'start2' but not 'end2' (columns: sentence1, sentence2, start1, "
         "end1, start2); add the missing column, or name the 4 columns with --span-columns"),
        ("sentence1,sentence2,word1", [], "has words target column 'word1' but not 'word2'"),
        ("index1,sentence1,sentence2", [], "has indices target column 'index1' but not 'index2'"),
    ],
)  # fmt: skip
def test_missing_target_columns_are_input_errors(
    tmp_path: Path, tiny_models: list[str], header: str, options: list[str], message: str
) -> None:
    src = tmp_path / "pairs.csv"
    src.write_text(header + "\n" + ",".join(["1"] * len(header.split(","))) + "\n")
    result = run(tmp_path, tiny_models, str(src), *options)
    assert result.exit_code == 3, result.output
    (line,) = errors(result.output)
    assert line.startswith(f"Error: {src}: {message}"), line
    assert not (tmp_path / "out").exists(), "checked before the models load: nothing is created"


def test_named_target_columns_are_checked_in_every_file(tmp_path: Path, tiny_models: list[str]) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.csv").write_text("sentence1,sentence2,target\nthe light,light,light\n")
    (tmp_path / "in" / "b.csv").write_text("sentence1,sentence2\nthe light,light\n")
    result = run(tmp_path, tiny_models, str(tmp_path / "in"), "--word-column", "target")
    assert result.exit_code == 3, result.output
    assert errors(result.output) == [
        f"Error: {tmp_path / 'in' / 'b.csv'}: missing column 'target' named by --word-column (columns: sentence1, "
        "sentence2); check the name, or leave --word-column out"
    ]
    assert pq.read_table(tmp_path / "out").column("pair_id").to_pylist() == ["a.csv:1"]


# -- 2. a corrupt Parquet row group ---------------------------------------------------------------------


@pytest.mark.parametrize("groups", [[2], [0, 4]])
def test_a_corrupt_row_group_costs_its_rows_only(
    tmp_path: Path, tiny_models: list[str], groups: list[int], caplog: pytest.LogCaptureFixture
) -> None:
    src = tmp_path / "pairs.parquet"
    corrupt_row_groups(src, groups)
    result = run(tmp_path, tiny_models, str(src), "--shard-rows", "30")
    assert result.exit_code == 6, result.output  # finished with bad rows: the others are all written
    table = pq.read_table(tmp_path / "out").to_pydict()
    lost = {r for r in range(1, 101) if (r - 1) // 20 in groups}
    assert sorted(set(table["source_row"])) == list(range(1, 101))
    assert {r for r, s in zip(table["source_row"], table["status"]) if s == "unreadable_row_group"} == lost
    for group in groups:
        first = group * 20 + 1
        assert f"its data rows {first}-{first + 19} are written as unreadable_row_group" in caplog.text
    assert f"unreadable_row_group {len(lost)}" in result.output
    assert not errors(result.output)


# -- 3. an unterminated quote ---------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ['"the light,light', 'the light,"light'])
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_an_unterminated_quote_costs_one_row(
    tmp_path: Path, tiny_models: list[str], damage: str, newline: str, caplog: pytest.LogCaptureFixture
) -> None:
    lines = ["sentence1,sentence2", "the light,light", damage, "the light,light", "the room,room"]
    src = tmp_path / "pairs.csv"
    src.write_bytes(newline.join(lines).encode() + newline.encode())
    result = run(tmp_path, tiny_models, str(src))
    assert result.exit_code == 6, result.output
    table = pq.read_table(tmp_path / "out").to_pydict()
    assert table["source_row"] == [1, 2, 3, 4]
    assert table["status"] == ["ok", "malformed_record", "ok", "ok"]
    assert table["word_1"] == ["light", None, "light", "room"]
    assert (
        f"{src}: row 2 (line 3) is malformed (a quoted field is not closed by the end of the file; reading resumes "
        "on the next line); written as malformed_record" in caplog.text
    )


# -- 4. messages ----------------------------------------------------------------------------------------


def test_a_readme_txt_beside_the_data_is_not_an_input(tmp_path: Path, tiny_models: list[str]) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "README.txt").write_text("Pairs collected in 2024, one per line.\n")
    result = run(tmp_path, tiny_models, str(tmp_path / "in"))
    assert result.exit_code == 3
    assert errors(result.output) == [
        f"Error: {tmp_path / 'in'}: the directory holds no .csv, .tsv, .parquet or .pq file (.txt files are read as "
        "CSV only when named: give their paths or a glob ending in .txt)"
    ]
    (tmp_path / "in" / "pairs.csv").write_text("sentence1,sentence2\nthe light,light\n")
    result = run(tmp_path, tiny_models, str(tmp_path / "in"))
    assert result.exit_code == 0, result.output
    (tmp_path / "in" / "more.txt").write_text("sentence1\tsentence2\nthe room\troom\n")
    result = invoke("run", str(tmp_path / "in" / "more.txt"), "-o", str(tmp_path / "out2"), *tiny_models)
    assert result.exit_code == 0, result.output  # named: read as CSV, its delimiter found from the header
    assert pq.read_table(tmp_path / "out2").column("word_1").to_pylist() == ["room"]


@pytest.mark.parametrize(
    "codec,name", [("utf-16-le", "UTF-16"), ("utf-16-be", "UTF-16"), ("utf-32-le", "UTF-32"), ("utf-32-be", "UTF-32")]
)
def test_wide_encodings_without_a_bom_are_named(tmp_path: Path, tiny_models: list[str], codec: str, name: str) -> None:
    src = tmp_path / "pairs.csv"
    src.write_bytes("sentence1,sentence2\r\nthe light,light\r\n".encode(codec))
    result = run(tmp_path, tiny_models, str(src))
    assert result.exit_code == 3
    assert errors(result.output) == [f"Error: {src}: the file looks {name} (no byte-order mark); save it as UTF-8"]


@pytest.mark.parametrize("where", ["same", "glob"])
def test_the_output_directory_as_the_input_is_named(tmp_path: Path, tiny_models: list[str], where: str) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "pairs.csv").write_text("sentence1,sentence2\nthe light,light\n")
    spec = str(tmp_path / "data") if where == "same" else str(tmp_path / "data" / "*.csv")
    result = invoke("run", spec, "-o", str(tmp_path / "data"), *tiny_models)
    # the output rules come first: a directory holding the user's own files is no output (exit 5)
    assert result.exit_code == 5
    assert errors(result.output) == [
        f"Error: {tmp_path / 'data'}: holds files batchembed did not write (pairs.csv), so it would not read as "
        "one table; move them away, or choose another --output (an empty or new directory)"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # nothing written, nothing beside it


def thrift_damage() -> bytes:
    """A Parquet file whose damage makes Arrow copy a raw control byte into its message."""
    sink = io.BytesIO()
    pq.write_table(pa.table({"sentence1": ["the light"] * 9, "sentence2": ["light"] * 9}), sink, row_group_size=3)
    valid = sink.getvalue()
    for position in range(4, len(valid) - 8):
        for value in (0x0F, 0x0E):
            data = valid[:position] + bytes([value]) + valid[position + 1 :]
            try:
                pq.read_table(io.BytesIO(data))
            except (OSError, pa.ArrowException) as exc:
                if re.search(r"[\x00-\x08\x0e-\x1f]", str(exc)):
                    return data
    raise AssertionError("no single byte made Arrow's message carry a control character")


def test_error_text_from_exceptions_has_control_characters_escaped(
    tmp_path: Path, tiny_models: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    src = tmp_path / "pairs.parquet"
    src.write_bytes(thrift_damage())
    result = run(tmp_path, tiny_models, str(src))
    assert result.exit_code in (3, 6), result.output
    said = result.output.replace("\r", "") + caplog.text  # \r: the progress bar's own
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", said), repr(said)
    assert re.search(r"don't know what type: \\x0[ef]", said), said
