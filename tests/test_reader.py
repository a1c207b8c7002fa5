"""Input discovery and shard reading: exact row numbers, hostile bytes, hostile names."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batchembed.config import Columns
from batchembed.errors import InputError
from batchembed.io import reader, sources
from batchembed.io.reader import InputFile, discover, discover_all, read_shards, safe_name
from batchembed.io.sources import MALFORMED
from batchembed.io.writer import part_path


def shards_of(path: Path, rows: int = 5, columns: Columns | None = None, extent: int | None = None) -> list:
    fmt = "parquet" if path.suffix == ".parquet" else "csv"
    return list(read_shards(InputFile(path, fmt, extent), columns or Columns(), rows))


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def csv_lines(n: int, header: str = "id,sentence1,sentence2") -> bytes:
    return (header + "\n" + "".join(f"p{i},first {i},second {i}\n" for i in range(1, n + 1))).encode()


@pytest.mark.parametrize("n,sizes", [(12, [5, 5, 2]), (10, [5, 5]), (3, [3]), (0, [])])
def test_shards_are_numbered_and_the_last_says_so(tmp_path: Path, n: int, sizes: list[int]) -> None:
    shards = shards_of(write(tmp_path / "p.csv", csv_lines(n)))
    assert [len(s) for s in shards] == sizes
    assert [s.first_row for s in shards] == [1 + 5 * k for k in range(len(sizes))]
    assert [s.last for s in shards] == [k == len(sizes) - 1 for k in range(len(sizes))]
    assert [s.shard_id for s in shards] == [
        f"{InputFile(tmp_path / 'p.csv', 'csv').key}-{k:06d}" for k in range(len(sizes))
    ]
    if shards:
        assert shards[0].ids[0] == "p1" and shards[-1].sentence1[-1] == f"first {n}"


def test_bom_crlf_quotes_and_blank_lines(tmp_path: Path) -> None:
    data = b'\xef\xbb\xbfsentence1,sentence2\r\n"a, quoted ""one""",b\r\n\r\n"multi\nline",c\r\n'
    (shard,) = shards_of(write(tmp_path / "p.csv", data))
    assert shard.sentence1 == ['a, quoted "one"', "multi\nline"]
    assert shard.sentence2 == ["b", "c"]
    assert shard.ids == ["p.csv:1", "p.csv:2"]  # the blank line is not a row


@pytest.mark.parametrize("delimiter", [";", "|", "\t"])
def test_other_delimiters_are_recognized_from_the_header(tmp_path: Path, delimiter: str) -> None:
    data = f"sentence1{delimiter}sentence2\nthe light{delimiter}a light\n".encode()
    (shard,) = shards_of(write(tmp_path / "p.csv", data))
    assert (shard.sentence1, shard.sentence2) == (["the light"], ["a light"])


def test_invalid_utf8_cells_stay_bytes_and_ids_stay_readable(tmp_path: Path) -> None:
    data = b"id,sentence1,sentence2\nx\xff,caf\xe9,fine\n"
    (shard,) = shards_of(write(tmp_path / "p.csv", data))
    assert shard.sentence1 == [b"caf\xe9"]  # the pipeline writes invalid_encoding
    assert shard.sentence2 == ["fine"]
    assert shard.ids == ["x\\xff"]


def test_empty_fields_are_null(tmp_path: Path) -> None:
    (shard,) = shards_of(write(tmp_path / "p.csv", b'sentence1,sentence2\n,"  "\n'))
    assert shard.sentence1 == [None] and shard.sentence2 == ["  "]


def test_malformed_records_are_rows_and_are_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = b'sentence1,sentence2\na,b\nc,d,e\nf\n"unterminated,g\nh,i\n'
    with caplog.at_level(logging.WARNING):
        (shard,) = shards_of(write(tmp_path / "p.csv", data))
    assert shard.sentence1 == ["a", MALFORMED, MALFORMED, MALFORMED, "h"]
    assert shard.sentence2 == ["b", MALFORMED, MALFORMED, MALFORMED, "i"]
    assert shard.ids == [f"p.csv:{k}" for k in range(1, 6)]
    assert "row 2 (line 3) is malformed (3 fields, the header has 2); written as malformed_record" in caplog.text
    assert "row 3 (line 4) is malformed (1 field, the header has 2)" in caplog.text
    assert "row 4 (line 5) is malformed (a quoted field is not closed by the end of the file; reading resumes" in (
        caplog.text
    )
    assert "invalid_sentence" not in caplog.text


def numbered(n: int, newline: str = "\n") -> list[str]:
    """Data lines whose first field says which row they are."""
    return [f"r{k},s{k}{newline}" for k in range(1, n + 1)]


def check_true_rows(shard_list: list, lines: list[str], damaged: set[int]) -> None:
    """One row per data line, damaged rows malformed, every other row at its own number."""
    sentence1 = [v for s in shard_list for v in s.sentence1]
    ids = [v for s in shard_list for v in s.ids]
    assert len(sentence1) == len(lines)
    for k, value in enumerate(sentence1, start=1):
        assert ids[k - 1] == f"p.csv:{k}"
        assert (value is MALFORMED) if k in damaged else (value == f"r{k}"), (k, value)


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
@pytest.mark.parametrize("where", [1, 7, 20])  # first row, mid-file, last row
@pytest.mark.parametrize(
    "damage",
    [
        '"r{k},s{k}',  # quote at the start of the first field, never closed
        'r{k},"s{k}',  # ... of the last field
        '"r{k}"",s{k}',  # an escaped quote keeps it open
        '"r{k},s{k},extra',
    ],
)
def test_a_runaway_quote_costs_one_row_and_row_numbers_stay_true(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, newline: str, where: int, damage: str
) -> None:
    lines = numbered(20, newline)
    lines[where - 1] = damage.format(k=where) + newline
    with caplog.at_level(logging.WARNING):
        got = shards_of(write(tmp_path / "p.csv", ("sentence1,sentence2" + newline + "".join(lines)).encode()), 6)
    check_true_rows(got, lines, {where})
    assert f"row {where} (line {where + 1}) is malformed (a quoted field is not closed" in caplog.text


def test_a_stray_quote_closed_later_costs_only_its_line(tmp_path: Path) -> None:
    lines = numbered(12)
    lines[2] = '"r3,s3\n'  # opens; the quote on row 9 closes it, giving 1 field over 7 lines
    lines[8] = 'r9,"s9\n'  # opens again, runs to the end of the file
    got = shards_of(write(tmp_path / "p.csv", ("sentence1,sentence2\n" + "".join(lines)).encode()), 5)
    check_true_rows(got, lines, {3, 9})


@pytest.mark.parametrize("limit", ["lines", "chars"])
def test_a_quote_open_past_the_bounds_resyncs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limit: str) -> None:
    """The bounds stop a quote long before the end of the file; the lines it held are read again."""
    if limit == "lines":
        monkeypatch.setattr(sources, "MAX_RECORD_LINES", 3)
    else:
        monkeypatch.setattr(sources, "MAX_RECORD_CHARS", 30)
    lines = numbered(40)
    lines[4] = '"r5,s5\n'
    lines[30] = 'r31,"s31\n'
    got = shards_of(write(tmp_path / "p.csv", ("sentence1,sentence2\n" + "".join(lines)).encode()), 7)
    check_true_rows(got, lines, {5, 31})


def test_multiline_quoted_fields_within_the_bounds_stay_one_row(tmp_path: Path) -> None:
    data = 'sentence1,sentence2\n"one\ntwo\r\nthree",x\nr2,"a ""quoted""\nword"\n'
    (shard,) = shards_of(write(tmp_path / "p.csv", data.encode()))
    assert shard.sentence1 == ["one\ntwo\r\nthree", "r2"]
    assert shard.sentence2 == ["x", 'a "quoted"\nword']


def test_oversized_line_costs_one_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "MAX_RECORD_CHARS", 20)
    lines = numbered(6)
    lines[1] = "r2," + "x" * 100 + "\n"  # one huge line
    lines[3] = '"r4,' + "y" * 15 + "\n"  # a quote whose second line overflows the record
    lines[4] = "r5," + "z" * 50 + "\n"
    got = shards_of(write(tmp_path / "p.csv", ("sentence1,sentence2\n" + "".join(lines)).encode()), 4)
    check_true_rows(got, lines, {2, 4, 5})


@pytest.mark.parametrize(
    "data,message",
    [
        (b"", "empty file or empty first line"),
        (b"\n\nsentence1,sentence2\n", "empty file or empty first line"),
        ("sentence1,sentence2\na,b\n".encode("utf-16"), "UTF-16"),
        (b"text_a,text_b\na,b\n", "missing column 'sentence1' (columns: text_a, text_b)"),
        (b"sentence1,sentence2,sentence1\na,b,c\n", "column 'sentence1' appears 2 times"),
    ],
)
def test_file_level_csv_errors(tmp_path: Path, data: bytes, message: str) -> None:
    with pytest.raises(InputError, match=re.escape(message)):
        shards_of(write(tmp_path / "p.csv", data))


def test_header_only_file_has_no_shards(tmp_path: Path) -> None:
    assert shards_of(write(tmp_path / "p.csv", b"sentence1,sentence2\n")) == []


def test_extent_stops_reading_at_the_recorded_size(tmp_path: Path) -> None:
    data = csv_lines(6)
    cut = data.index(b"p4,")
    shards = shards_of(write(tmp_path / "p.csv", data), extent=cut)
    assert [s.ids for s in shards] == [["p1", "p2", "p3"]]
    # a cut in the middle of a line gives that partial row (a later append redoes the last shard)
    (shard,) = shards_of(tmp_path / "p.csv", extent=cut + len(b"p4,first 4,se"))
    assert shard.sentence2[-1] == "se"
    (shard,) = shards_of(tmp_path / "p.csv", extent=cut + len(b"p4,fi"))
    assert shard.sentence1[-1] is MALFORMED


def test_parquet_values_are_checked_per_cell(tmp_path: Path) -> None:
    table = pa.table(
        {
            "id": pa.array([10, None, 12]),
            "sentence1": pa.array([b"ok", b"bad \xff", None], type=pa.binary()),
            "sentence2": pa.array([1, 2, 3]),
        }
    )
    pq.write_table(table, tmp_path / "p.parquet")
    (shard,) = shards_of(tmp_path / "p.parquet")
    assert shard.ids == ["10", "p.parquet:2", "12"]
    assert shard.sentence1 == ["ok", b"bad \xff", None]
    assert shard.sentence2 == [1, 2, 3]  # not text: the pipeline writes invalid_sentence


def test_parquet_strings_with_invalid_utf8_do_not_crash(tmp_path: Path) -> None:
    # Arrow does not validate UTF-8 when reading Parquet strings; a hostile file can hold anything
    bad = pa.Array.from_buffers(
        pa.string(), 1, [None, pa.py_buffer(b"\x00\x00\x00\x00\x02\x00\x00\x00"), pa.py_buffer(b"\xff\xfe")]
    )
    table = pa.table({"sentence1": bad, "sentence2": pa.array(["fine"])})
    pq.write_table(table, tmp_path / "p.parquet")
    (shard,) = shards_of(tmp_path / "p.parquet")
    assert shard.sentence1 == [b"\xff\xfe"]


@pytest.mark.parametrize("cut", [0, 4, 100, -9])
def test_truncated_parquet_is_a_file_error(tmp_path: Path, cut: int) -> None:
    pq.write_table(pa.table({"sentence1": ["a"] * 50, "sentence2": ["b"] * 50}), tmp_path / "whole.parquet")
    data = (tmp_path / "whole.parquet").read_bytes()
    write(tmp_path / "p.parquet", data[:cut])
    with pytest.raises(InputError, match=r"p\.parquet: not a readable Parquet file .*truncated"):
        shards_of(tmp_path / "p.parquet")


def test_nested_parquet_column_is_a_file_error(tmp_path: Path) -> None:
    pq.write_table(pa.table({"sentence1": [["a"]], "sentence2": ["b"]}), tmp_path / "p.parquet")
    with pytest.raises(InputError, match="column 'sentence1' has type list<element: string>"):
        shards_of(tmp_path / "p.parquet")


def test_a_file_failing_part_way_keeps_the_rows_before(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pq.write_table(pa.table({"sentence1": ["a"] * 7, "sentence2": ["b"] * 7}), tmp_path / "p.parquet")

    def failing(file: InputFile, columns: Columns):
        from batchembed.targets import TargetMode

        def chunks():
            yield {"sentence1": ["a"] * 7, "sentence2": ["b"] * 7}
            raise OSError(5, "Input/output error")

        return TargetMode.SHARED, chunks()

    monkeypatch.setattr(reader, "parquet_chunks", failing)
    got = []
    with pytest.raises(InputError, match=r"p\.parquet: cannot read data row 8 or later \(Input/output error\)"):
        for shard in read_shards(InputFile(tmp_path / "p.parquet", "parquet"), Columns(), 5):
            got.append(shard)
    assert [(len(s), s.first_row, s.last) for s in got] == [(5, 1, False), (2, 6, False)]


def test_duplicate_ids_are_kept_and_reported(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        (shard,) = shards_of(write(tmp_path / "p.csv", b"id,sentence1,sentence2\na,x,y\nb,x,y\na,x,y\n"))
    assert shard.ids == ["a", "b", "a"]
    assert "row 3: column 'id' value 'a' repeats row 1" in caplog.text


# -- discovery ------------------------------------------------------------------------------


def test_discover_reports_bad_specs_and_keeps_the_good(tmp_path: Path) -> None:
    good = write(tmp_path / "good.csv", csv_lines(1))
    write(tmp_path / "notes.json", b"{}")
    files, errors = discover_all([str(good), str(tmp_path / "missing.csv"), str(tmp_path / "notes.json")])
    assert [f.path for f in files] == [good]
    assert [str(e) for e in errors] == [
        f"{tmp_path / 'missing.csv'}: no such file or directory",
        f"{tmp_path / 'notes.json'}: unknown file type '.json'; use .csv, .tsv or .parquet",
    ]
    with pytest.raises(InputError, match="no such file"):
        discover([str(good), str(tmp_path / "missing.csv")])


def test_discover_skips_hidden_and_underscore_paths_and_the_output(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "_done").mkdir(parents=True)
    (data / ".cache").mkdir()
    (data / "out").mkdir()
    keep = write(data / "a.csv", csv_lines(1))
    write(data / "_done" / "x.csv", b"")
    write(data / ".cache" / "y.csv", b"")
    write(data / "out" / "part-a-000000.parquet", b"")
    files, errors = discover_all([str(data)], exclude=data / "out")
    assert [f.path for f in files] == [keep] and not errors
    files, _ = discover_all([str(data / "**" / "*.parquet")], exclude=data / "out")
    assert files == []


def test_file_names_that_are_not_utf8_are_refused(tmp_path: Path) -> None:
    name = os.fsdecode(b"bad\xff.csv")
    write(tmp_path / name, csv_lines(1))
    files, errors = discover_all([str(tmp_path)])
    assert files == [] or all(f.path.name != name for f in files)
    assert any("file name is not valid UTF-8" in str(e) for e in errors)


@pytest.mark.parametrize(
    "name",
    ["../../x.csv", "..csv", "a b;rm -rf.csv", "line\nbreak.csv", "émoji😀.csv", "x" * 300 + ".csv", "-rf.csv", ".csv"],
)
def test_keys_of_hostile_names_stay_inside_the_output(tmp_path: Path, name: str) -> None:
    key = InputFile(Path(name), "csv").key
    assert re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,47}-[0-9a-f]{8}", key), key
    out = tmp_path / "out"
    assert part_path(out, f"{key}-000000").parent == out
    assert part_path(out, f"{key}-000000").name.startswith("part-")


def test_safe_name_and_part_path_refuse_escapes(tmp_path: Path) -> None:
    assert safe_name("..") == "file" and safe_name("../../etc/passwd") == "_.._etc_passwd"
    for bad in ["../x", "a/b", ".hidden", ""]:
        with pytest.raises(ValueError):
            part_path(tmp_path, bad)


def test_same_name_in_two_directories_gets_two_keys(tmp_path: Path) -> None:
    a = InputFile(tmp_path / "a" / "pairs.csv", "csv").key
    b = InputFile(tmp_path / "b" / "pairs.csv", "csv").key
    assert a != b and a.startswith("pairs-") and b.startswith("pairs-")


def test_a_file_named_twice_is_read_once(tmp_path: Path) -> None:
    src = write(tmp_path / "a.csv", csv_lines(2))
    (tmp_path / "link.csv").symlink_to(src)
    files, errors = discover_all([str(src), str(tmp_path / "." / "a.csv"), str(tmp_path / "link.csv")])
    assert [f.path for f in files] == [src] and not errors
