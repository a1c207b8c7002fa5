"""Input discovery and shard reading: exact row numbers, hostile bytes, hostile names."""

from __future__ import annotations

import gzip
import logging
import os
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batchembed.config import Columns
from batchembed.errors import InputError
from batchembed.io import csv_source, reader, sources
from batchembed.io.inputs import safe_name
from batchembed.io.layout import OutputLayout
from batchembed.io.reader import InputFile, discover, discover_all, read_shards
from batchembed.io.sources import MALFORMED, UNREADABLE
from batchembed.io.storage import locate
from batchembed.targets import TargetMode


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
        monkeypatch.setattr(csv_source, "MAX_RECORD_LINES", 3)
    else:
        monkeypatch.setattr(csv_source, "MAX_RECORD_CHARS", 30)
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
    monkeypatch.setattr(csv_source, "MAX_RECORD_CHARS", 20)
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
        ("sentence1,sentence2\na,b\n".encode("utf-16"), "the file is UTF-16 (it starts with a UTF-16 byte-order mark)"),
        ("sentence1,sentence2\na,b\n".encode("utf-32"), "the file is UTF-32 (it starts with a UTF-32 byte-order mark)"),
        (
            "sentence1,sentence2\na,b\n".encode("utf-16-le"),
            "the file looks UTF-16 (no byte-order mark); save it as UTF-8",
        ),
        ("sentence1,sentence2\r\na,b\n".encode("utf-16-be"), "the file looks UTF-16 (no byte-order mark)"),
        (
            "sentence1,sentence2\na,b\n".encode("utf-32-le"),
            "the file looks UTF-32 (no byte-order mark); save it as UTF-8",
        ),
        ("sentence1,sentence2\na,b\n".encode("utf-32-be"), "the file looks UTF-32 (no byte-order mark)"),
        ("phrase_un,phrase_deux,été\na,b,c\n".encode("utf-16-le"), "the file looks UTF-16 (no byte-order mark)"),
        (gzip.compress(b"sentence1,sentence2\na,b\n" * 9), "this is not a text file"),
        (b"text_a,text_b\na,b\n", "missing column 'sentence1' (columns: text_a, text_b)"),
        (b"sentence1,sentence2,sentence1\na,b,c\n", "column 'sentence1' appears 2 times"),
    ],
)
def test_file_level_csv_errors(tmp_path: Path, data: bytes, message: str) -> None:
    with pytest.raises(InputError, match=re.escape(message)):
        shards_of(write(tmp_path / "p.csv", data))


@pytest.mark.parametrize(
    "header,columns,message",
    [
        ("sentence1,sentence2", Columns(word="target"), "missing column 'target' named by word_column"),
        (
            "sentence1,sentence2,word",
            Columns(start1="s1", end1="e1", start2="s2", end2="e2"),
            "missing columns 's1', 'e1', 's2', 'e2' named by span_columns",
        ),
        (
            "sentence1,sentence2,s1,e1,s2",
            Columns(start1="s1", end1="e1", start2="s2", end2="e2"),
            "missing column 'e2' named by span_columns",
        ),
        ("sentence1,sentence2,w1", Columns(word1="w1", word2="w2"), "missing column 'w2' named by word_columns"),
        ("sentence1,sentence2", Columns(index1="i", index2="j"), "missing columns 'i', 'j' named by index_columns"),
        # part of a mode's default columns
        ("sentence1,sentence2,start1,end1,start2", Columns(), "has spans target columns 'start1', 'end1', 'start2' "
         "but not 'end2' (columns: sentence1, sentence2, start1, end1, start2); add the missing column, or name the "
         "4 columns with span_columns"),
        ("sentence1,sentence2,word1", Columns(), "has words target column 'word1' but not 'word2'"),
        ("word2,sentence1,sentence2,word", Columns(), "has words target column 'word2' but not 'word1'"),
        ("sentence1,sentence2,index2", Columns(), "has indices target column 'index2' but not 'index1'"),
        ("sentence1,sentence2,start1,end1,start2,end2,end1", Columns(), "column 'end1' appears 2 times"),
    ],
)  # fmt: skip
@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_target_columns_named_or_partial_must_exist(
    tmp_path: Path, header: str, columns: Columns, message: str, fmt: str
) -> None:
    names = header.split(",")
    if fmt == "csv":
        path = write(tmp_path / "p.csv", (header + "\n" + ",".join("1" for _ in names) + "\n").encode())
    elif len(set(names)) < len(names):
        return  # Arrow tables cannot hold two columns of one name in a Parquet file we write
    else:
        path = tmp_path / "p.parquet"
        pq.write_table(pa.table({n: ["1"] for n in names}), path)
    with pytest.raises(InputError, match=re.escape(f"{path}: {message}")):
        shards_of(path, columns=columns)


@pytest.mark.parametrize(
    "header,columns,mode",
    [
        ("sentence1,sentence2,target", Columns(word="target"), TargetMode.WORD),
        ("sentence1,sentence2,s1,e1,s2,e2", Columns(start1="s1", end1="e1", start2="s2", end2="e2"), TargetMode.SPANS),
        ("sentence1,sentence2,w1,w2,word", Columns(word1="w1", word2="w2"), TargetMode.WORDS),
        ("sentence1,sentence2,word", Columns(), TargetMode.WORD),
        ("sentence1,sentence2", Columns(), TargetMode.SHARED),
    ],
)
def test_target_columns_that_exist_choose_the_mode(
    tmp_path: Path, header: str, columns: Columns, mode: TargetMode
) -> None:
    path = write(tmp_path / "p.csv", (header + "\n" + ",".join("1" for _ in header.split(",")) + "\n").encode())
    (shard,) = shards_of(path, columns=columns)
    assert shard.mode is mode


def test_named_columns_outranked_by_another_mode_are_reported(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path / "p.csv", b"sentence1,sentence2,start1,end1,start2,end2,target\na,b,0,1,0,1,a\n")
    with caplog.at_level(logging.WARNING):
        (shard,) = shards_of(path, columns=Columns(word="target"))
    assert shard.mode is TargetMode.SPANS
    assert "the spans target columns take precedence over those named by --word-column; comparing spans" in (
        caplog.text
    )


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


def corrupt_row_groups(path: Path, groups: list[int], rows: int = 20, count: int = 5) -> None:
    """`count` row groups of `rows` rows (sentence1 = 'r<row>'); the data pages of `groups` overwritten."""
    n = rows * count
    table = pa.table({"id": [f"p{k}" for k in range(1, n + 1)], "sentence1": [f"r{k}" for k in range(1, n + 1)],
                      "sentence2": [f"the second sentence of row {k}" for k in range(1, n + 1)]})  # fmt: skip
    pq.write_table(table, path, row_group_size=rows, compression="snappy", use_dictionary=False)
    data = bytearray(path.read_bytes())
    metadata = pq.ParquetFile(path).metadata
    for group in groups:
        column = metadata.row_group(group).column(2)  # sentence2
        start = column.data_page_offset
        data[start + 20 : start + column.total_compressed_size - 2] = b"\xff" * (column.total_compressed_size - 22)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("groups", [[2], [0], [4], [1, 3], [0, 1, 2, 3, 4]])
def test_a_corrupt_row_group_costs_only_its_rows(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, groups: list[int]
) -> None:
    path = tmp_path / "p.parquet"
    corrupt_row_groups(path, groups)
    with caplog.at_level(logging.WARNING):
        got = shards_of(path, 7)
    sentence1 = [v for s in got for v in s.sentence1]
    ids = [v for s in got for v in s.ids]
    assert len(sentence1) == 100 and got[-1].last
    for k, (value, pair_id) in enumerate(zip(sentence1, ids), start=1):
        if (k - 1) // 20 in groups:
            assert value is UNREADABLE and pair_id == f"p.parquet:{k}"
        else:
            assert value == f"r{k}" and pair_id == f"p{k}"
    for group in groups:
        first = group * 20 + 1
        assert (
            f"row group {group + 1} of 5 cannot be read (" in caplog.text
            and f"its data rows {first}-{first + 19} are written as unreadable_row_group" in caplog.text
        )
    assert caplog.text.count("cannot be read") == len(groups)


def test_many_corrupt_row_groups_are_logged_then_counted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "p.parquet"
    corrupt_row_groups(path, [0, 1, 2, 3, 4, 6, 7], count=9)
    with caplog.at_level(logging.WARNING):
        got = shards_of(path, 50)
    values = [v for s in got for v in s.sentence1]
    assert values[100:120] == [f"r{k}" for k in range(101, 121)] and values[160:] == [f"r{k}" for k in range(161, 181)]
    assert values.count(UNREADABLE) == 140
    assert caplog.text.count("cannot be read (") == 5
    assert "7 row groups cannot be read in all (140 rows, first 5 logged), written as unreadable_row_group" in (
        caplog.text
    )


def test_an_io_error_still_stops_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Storage failures (an errno) are not data: the file stops, the rows before are kept, a re-run retries."""
    path = tmp_path / "p.parquet"
    corrupt_row_groups(path, [])
    real = pq.ParquetFile.iter_batches

    def failing(self: pq.ParquetFile, *args: object, row_groups: list[int], **kwargs: object):
        if row_groups == [2]:
            raise OSError(5, "Input/output error")
        return real(self, *args, row_groups=row_groups, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", failing)
    got = []
    with pytest.raises(InputError, match=r"cannot read data row 41 or later \(Input/output error\)"):
        for shard in read_shards(InputFile(path, "parquet"), Columns(), 30):
            got.append(shard)
    assert sum(len(s) for s in got) == 40


def test_messages_from_exceptions_escape_control_characters() -> None:
    assert sources.reason(ValueError("bad \x01byte\x7f in\npage \x00")) == "bad \\x01byte\\x7f in page \\x00"
    assert sources.reason(OSError(2, "No such\x1b[31m file")) == "No such\\x1b[31m file"


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
    assert [Path(f.path) for f in files] == [good]
    assert [str(e) for e in errors] == [
        f"{tmp_path / 'missing.csv'}: no such file or directory",
        f"{tmp_path / 'notes.json'}: unknown file type '.json'; use .csv, .tsv, .parquet or .pq (or .txt, read as CSV)",
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
    files, errors = discover_all([str(data)], exclude=(locate(data / "out"),))
    assert [Path(f.path) for f in files] == [keep] and not errors
    files, _ = discover_all([str(data / "**" / "*.parquet")], exclude=(locate(data / "out"),))
    assert files == []


def test_txt_files_are_read_only_when_named(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    keep = write(data / "a.csv", csv_lines(1))
    notes = write(data / "README.txt", b"Pairs collected in 2024.\n")
    pairs = write(data / "pairs.txt", csv_lines(2))
    files, errors = discover_all([str(data)])
    assert [f.path for f in files] == [keep] and not errors  # the README no longer breaks the run
    files, errors = discover_all([str(data / "*")])
    assert [f.path for f in files] == [keep] and not errors
    files, errors = discover_all([str(pairs), str(data / "*.txt")])
    assert [(f.path, f.format) for f in files] == [(pairs, "csv"), (notes, "csv")] and not errors
    (keep).unlink()
    for spec, what in [(data, "the directory holds"), (data / "*", "the pattern matches")]:
        _, errors = discover_all([str(spec)])
        assert [str(e) for e in errors] == [
            f"{spec}: {what} no .csv, .tsv, .parquet or .pq file (.txt files are read as CSV only when named: "
            "give their paths or a glob ending in .txt)"
        ]


@pytest.mark.parametrize("layout", ["same", "inside", "glob"])
def test_the_output_directory_as_input_is_named(tmp_path: Path, layout: str) -> None:
    data = tmp_path / "data"
    data.mkdir()
    write(data / "a.csv", csv_lines(1))
    spec, out = {
        "same": (data, data),
        "inside": (data, tmp_path),  # the input lies inside the output directory
        "glob": (data / "*.csv", data),
    }[layout]
    _, errors = discover_all([str(spec)], exclude=(locate(out),))
    what = "the pattern matches" if layout == "glob" else "the directory holds"
    assert [str(e) for e in errors] == [
        f"{spec}: {what} only files in the output directory, which are excluded because they are the output; "
        "write the output to another directory (-o)"
    ]
    _, errors = discover_all([str(tmp_path / "empty*.csv")], exclude=(locate(out),))
    assert [str(e) for e in errors] == [
        f"{tmp_path / 'empty*.csv'}: the pattern matches no .csv, .tsv, .parquet or .pq file"
    ]


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
    out = OutputLayout.of(locate(tmp_path / "out"))
    assert Path(out.part(f"{key}-000000")).parent == tmp_path / "out"
    assert out.part(f"{key}-000000").name.startswith("part-")


def test_safe_name_and_part_path_refuse_escapes(tmp_path: Path) -> None:
    assert safe_name("..") == "file" and safe_name("../../etc/passwd") == "_.._etc_passwd"
    for bad in ["../x", "a/b", ".hidden", ""]:
        with pytest.raises(ValueError):
            OutputLayout.of(locate(tmp_path)).part(bad)


def test_same_name_in_two_directories_gets_two_keys(tmp_path: Path) -> None:
    a = InputFile(tmp_path / "a" / "pairs.csv", "csv").key
    b = InputFile(tmp_path / "b" / "pairs.csv", "csv").key
    assert a != b and a.startswith("pairs-") and b.startswith("pairs-")


def test_a_file_named_twice_is_read_once(tmp_path: Path) -> None:
    src = write(tmp_path / "a.csv", csv_lines(2))
    (tmp_path / "link.csv").symlink_to(src)
    files, errors = discover_all([str(src), str(tmp_path / "." / "a.csv"), str(tmp_path / "link.csv")])
    assert [Path(f.path) for f in files] == [src] and not errors
