"""Hostile input: every input row is accounted for, nothing raises, each problem is named.

The hypothesis tests feed malformed CSV and Parquet bytes through the engine in
process (fake embedders: no model time) and check the accounting invariant:
pairs read == distinct (source_file, source_row) in the output, rows numbered
1..n without gaps, and a second run has nothing to do.
"""

from __future__ import annotations

import io
import math
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import FakeEmbedder, examples
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from batchembed import status
from batchembed.config import RunConfig
from batchembed.engines.local import run
from batchembed.io.reader import InputFile, read_shards
from batchembed.results.summary import RunSummary

KNOWN = status.BAD_ROW_STATUSES | {status.OK, status.TARGET_NOT_FOUND, status.NO_SHARED_WORDS}


def embedders() -> list[FakeEmbedder]:
    return [FakeEmbedder("static", contextual=False), FakeEmbedder("ctx")]


def run_on(path: Path, out: Path, shard_rows: int = 2, tokenizer: str = "whitespace", models=None) -> RunSummary:
    config = RunConfig(inputs=(str(path),), output=out, shard_rows=shard_rows, tokenizer=tokenizer)
    return run(config, models or embedders())


def check_accounting(path: Path, out: Path, summary: RunSummary, shard_rows: int) -> pa.Table | None:
    """The invariant every run must keep, whatever the input."""
    parts = sorted(out.glob("part-*.parquet"))
    if summary.pairs_read == 0:
        assert not parts
        return None
    table = pq.read_table(out)
    rows = table.column("source_row").to_pylist()
    assert set(table.column("source_file").to_pylist()) == {str(path)}
    assert sorted(set(rows)) == list(range(1, summary.pairs_read + 1))  # every pair, no gaps
    assert rows == sorted(rows)  # input order kept
    assert summary.rows_written == table.num_rows
    for value in table.column("status").to_pylist():
        assert all(s in KNOWN or s.endswith(("_oov", "_no_subwords")) for s in value.split(";")), value
    if not summary.errors:  # the whole file was read: the reader agrees on the count
        fmt = "parquet" if path.suffix == ".parquet" else "csv"
        from batchembed.config import Columns

        assert sum(len(s) for s in read_shards(InputFile(path, fmt), Columns(), shard_rows)) == summary.pairs_read
    return table


def run_twice(data: bytes, suffix: str, shard_rows: int, tokenizer: str = "whitespace") -> RunSummary:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"hostile{suffix}"
        path.write_bytes(data)
        out = Path(tmp) / "out"
        summary = run_on(path, out, shard_rows, tokenizer)
        assert summary.exit_code in (0, 3, 6), summary.outcome
        assert len(summary.errors) <= 1 and all("\n" not in e and "hostile" in e for e in summary.errors)
        check_accounting(path, out, summary, shard_rows)
        again = run_on(path, out, shard_rows, tokenizer)  # resuming hostile input is deterministic
        assert (again.pairs_read, again.rows_written, again.status_counts) == (
            summary.pairs_read,
            summary.rows_written,
            summary.status_counts,
        )
        assert again.shards_written == 0 or summary.errors
        return summary


# -- hypothesis: CSV ---------------------------------------------------------------------------------

FRAGMENTS = [
    b",", b'"', b'""', b"\n", b"\r\n", b"\r", b"\xff", b"\xc3", b"\xef\xbb\xbf", b"\x00", b" ", b"\t", b";",
    "😀".encode(), "\u202e".encode(), "e\u0301".encode(), "\u200b".encode(), "שלום".encode(),
    b"the", b"light", b"x", b"-1", b"3", b"0", b"99999999999999999999999", b"1.5",
]  # fmt: skip
HEADERS = [
    b"sentence1,sentence2",
    b"id,sentence1,sentence2",
    b"sentence1,sentence2,start1,end1,start2,end2",
    b"sentence1,sentence2,index1,index2",
    b"sentence1,sentence2,word1,word2",
    b"id,sentence1,sentence2,word",
    b"\xef\xbb\xbfsentence1;sentence2",
    b'"sentence1","sentence2"\r',
    b"sentence1",
    b"",
]
cells = st.lists(st.sampled_from(FRAGMENTS) | st.binary(max_size=3), max_size=5).map(b"".join)
rows = st.lists(cells, max_size=7).map(b",".join)
csv_bytes = st.one_of(
    st.tuples(st.sampled_from(HEADERS), st.lists(rows, max_size=9).map(b"\n".join), st.booleans()).map(
        lambda t: t[0] + b"\n" + t[1] + (b"\n" if t[2] else b"")
    ),
    st.binary(max_size=120),
)


@settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=csv_bytes, shard_rows=st.integers(1, 4), tokenizer=st.sampled_from(["whitespace", "flair"]))
def test_malformed_csv_is_accounted_for(data: bytes, shard_rows: int, tokenizer: str) -> None:
    run_twice(data, ".csv", shard_rows, tokenizer)


LONG_RECORDS = st.tuples(
    st.sampled_from(HEADERS[:3]),
    st.lists(st.sampled_from([b"a,b", b'"a\nb",c', b'"a,b', b'a,"b\n\nc\n', b"x" * 40, b'"' + b"y\n" * 5]), max_size=8),
).map(lambda t: t[0] + b"\n" + b"\n".join(t[1]))


@settings(max_examples=examples(300), deadline=None)
@given(data=csv_bytes | LONG_RECORDS, bounds=st.sampled_from([None, (3, 30)]))
@example(data=b"sentence1,sentence2\n" + b"x" * 40 + b"\na,b\n", bounds=(3, 30))  # a line past the bound
@example(data=b'sentence1,sentence2\n"a\nb\nc\nd",e\na,b\n', bounds=(3, 30))  # a record past the bound
@example(data=b'sentence1,sentence2\n"a\n\nb",c\n\n"d,e\nf\n', bounds=None)  # across lines; open at the end
def test_the_csv_row_count_is_the_rows_the_reader_gives(data: bytes, bounds: tuple[int, int] | None) -> None:
    """A progress bar's total for a CSV file (csv_row_count, which takes a faster path where every
    record is one line) is exactly the rows read_pieces gives, bad rows included, within the
    bounds on a record's lines and characters too."""
    from batchembed.config import Columns
    from batchembed.errors import InputError
    from batchembed.io import csv_source

    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as patch:
        if bounds is not None:
            patch.setattr(csv_source, "MAX_RECORD_LINES", bounds[0])
            patch.setattr(csv_source, "MAX_RECORD_CHARS", bounds[1])
        path = Path(tmp) / "hostile.csv"
        path.write_bytes(data)
        file = InputFile(path, "csv")
        try:
            read = sum(len(shard) for shard in read_shards(file, Columns(), 1_000))
        except InputError:
            with pytest.raises(InputError):
                csv_source.csv_row_count(file, Columns())
            return
        assert csv_source.csv_row_count(file, Columns()) == read


# -- hypothesis: Parquet -------------------------------------------------------------------------------

TEXT = st.one_of(st.none(), st.text(max_size=12), st.sampled_from(["the light", "light", " ", "", "😀 light"]))
COLUMN_KINDS = {
    "string": (pa.string(), TEXT),
    "large_string": (pa.large_string(), TEXT),
    "binary": (pa.binary(), st.one_of(st.none(), st.binary(max_size=8), st.just(b"the light"))),
    "int64": (pa.int64(), st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1))),
    "float64": (pa.float64(), st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True))),
    "bool": (pa.bool_(), st.one_of(st.none(), st.booleans())),
    "null": (pa.null(), st.none()),
    "timestamp": (pa.timestamp("s"), st.one_of(st.none(), st.integers(-(2**40), 2**40))),
}


@st.composite
def parquet_tables(draw: st.DrawFn) -> pa.Table:
    n = draw(st.integers(0, 7))
    names = ["sentence1", "sentence2"]
    names += draw(
        st.sampled_from(
            [[], ["id"], ["start1", "end1", "start2", "end2"], ["index1", "index2"], ["word1", "word2"], ["word"]]
        )
    )
    columns = {}
    for name in names:
        kind = draw(st.sampled_from(sorted(COLUMN_KINDS)))
        arrow_type, values = COLUMN_KINDS[kind]
        columns[name] = pa.array(draw(st.lists(values, min_size=n, max_size=n)), type=arrow_type)
        if kind == "string" and draw(st.booleans()):
            columns[name] = columns[name].dictionary_encode()
    return pa.table(columns)


def parquet_bytes(table: pa.Table, row_group_size: int = 3) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, row_group_size=row_group_size)
    return sink.getvalue()


@settings(max_examples=examples(100), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(table=parquet_tables(), shard_rows=st.integers(1, 4))
def test_parquet_of_any_column_types_is_accounted_for(table: pa.Table, shard_rows: int) -> None:
    summary = run_twice(parquet_bytes(table), ".parquet", shard_rows)
    assert summary.errors == [] and summary.pairs_read == table.num_rows


VALID = parquet_bytes(
    pa.table({"id": [f"p{k}" for k in range(9)], "sentence1": ["the light"] * 9, "sentence2": ["a light"] * 9})
)


@settings(max_examples=examples(100), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cut=st.integers(0, len(VALID)),
    flips=st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)), max_size=4),
    shard_rows=st.integers(1, 4),
)
def test_corrupt_parquet_is_accounted_for(cut: int, flips: list[tuple[int, int]], shard_rows: int) -> None:
    data = bytearray(VALID)
    for position, value in flips:
        data[position] = value
    run_twice(bytes(data[:cut] if cut < len(VALID) // 2 else data), ".parquet", shard_rows)


# -- each hostile case, and what it becomes ----------------------------------------------------------


@pytest.mark.parametrize(
    "name,data,expected",
    [
        ("utf8.csv", b"sentence1,sentence2\ncaf\xe9 light,light\n", ["invalid_encoding"]),
        ("bom.csv", b"\xef\xbb\xbfsentence1,sentence2\nthe light,light\n", ["ok"]),
        ("semicolons.csv", b"sentence1;sentence2\nthe light;light\n", ["ok"]),
        ("quotes.csv", b'sentence1,sentence2\nhe said "light" here,here\n', ["ok"]),
        ("fields.csv", b"sentence1,sentence2\nthe light, and more,light\nlight,light\n", ["malformed_record", "ok"]),
        (
            "empty.csv",
            b'sentence1,sentence2\n,light\n"",light\n"   ",light\n',
            ["null_sentence", "null_sentence", "empty_sentence"],
        ),
        ("ids.csv", b"id,sentence1,sentence2\na,light,light\na,light,light\n", ["ok", "ok"]),
        (
            "spans.csv",
            b"sentence1,sentence2,start1,end1,start2,end2\n"
            b"the light,light,4,9,0,5\nthe light,light,4,99,0,5\nthe light,light,5,9,0,5\n"
            b"the light,light,0,9,0,5\nthe light,light,-1,9,0,5\nthe light,light,x,9,0,5\nthe light,light,,9,0,5\n",
            ["ok", "span_out_of_range", "span_not_on_token_boundary", "span_multiple_tokens", "invalid_target",
             "invalid_target", "invalid_target"],
        ),
        (
            "indices.csv",
            b"sentence1,sentence2,index1,index2\nthe light,light,1,0\nthe light,light,2,0\n",
            ["ok", "span_out_of_range"],
        ),
        ("word.csv", b"sentence1,sentence2,word\nthe light,light,light\nthe light,light,dark\nthe light,light,\n",
         ["ok", "target_not_found", "invalid_target"]),
    ],
)  # fmt: skip
def test_hostile_csv_rows_become_status_rows(tmp_path: Path, name: str, data: bytes, expected: list[str]) -> None:
    (tmp_path / name).write_bytes(data)
    summary = run_on(tmp_path / name, tmp_path / "out")
    assert summary.errors == []
    table = check_accounting(tmp_path / name, tmp_path / "out", summary, 2)
    assert table is not None and table.column("status").to_pylist() == expected


def test_hostile_parquet_values_become_status_rows(tmp_path: Path) -> None:
    table = pa.table(
        {
            "sentence1": pa.array(["the light", None, "the light", "the light"]),
            "sentence2": pa.array(["light", "light", "light", "light"]),
            "start1": pa.array([4.0, 4.0, 4.5, None]),
            "end1": pa.array([9, 9, 9, 9]),
            "start2": pa.array([0, 0, 0, 0]),
            "end2": pa.array([5, 5, 5, 5]),
        }
    )
    pq.write_table(table, tmp_path / "p.parquet")
    pq.write_table(pa.table({"sentence1": [1, 2], "sentence2": ["a", "b"]}), tmp_path / "ints.parquet")
    summary = run_on(tmp_path / "p.parquet", tmp_path / "out")
    assert pq.read_table(tmp_path / "out").column("status").to_pylist() == [
        "ok", "null_sentence", "invalid_target", "invalid_target"
    ]  # fmt: skip
    summary = run_on(tmp_path / "ints.parquet", tmp_path / "out2")
    assert summary.status_counts == {"invalid_sentence": 2}


@pytest.mark.parametrize(
    "name,data,message",
    [
        ("cols.csv", b"sentence1,text\na,b\n", "cols.csv: missing column 'sentence2' (columns: sentence1, text)"),
        ("utf16.csv", "sentence1,sentence2\n".encode("utf-16"), "utf16.csv: the file is UTF-16"),
        ("trunc.parquet", VALID[: len(VALID) // 2], "trunc.parquet: not a readable Parquet file"),
        ("nested.parquet", parquet_bytes(pa.table({"sentence1": [[1]], "sentence2": ["a"]})), "has type list<"),
    ],
)
def test_hostile_files_are_one_line_errors(tmp_path: Path, name: str, data: bytes, message: str) -> None:
    (tmp_path / name).write_bytes(data)
    summary = run_on(tmp_path / name, tmp_path / "out")
    assert summary.exit_code == 3 and len(summary.errors) == 1
    assert message in summary.errors[0] and "\n" not in summary.errors[0]


# -- real (tiny) models: unusual Unicode and sentences longer than the window ---------------------------


def test_unusual_unicode_with_real_models(tmp_path: Path, tiny_embedders) -> None:
    pairs = [
        ("I love 😀 the light 😀", "the light 😀 is bright"),
        ("النور in the room", "the room النور"),
        ("the cafe\u0301 light", "cafe\u0301 light"),
        ("the\u200b light", "light \u200b the"),
        ("\u202ethe light", "the light\u202c"),
        ("光 light 光", "光 the light"),
        ("\u200b", "light"),
        ("ﬁ light ǅ", "ﬁ the ǅ"),
    ]
    table = pa.table({"sentence1": [a for a, _ in pairs], "sentence2": [b for _, b in pairs]})
    pq.write_table(table, tmp_path / "u.parquet")
    summary = run_on(tmp_path / "u.parquet", tmp_path / "out", tokenizer="flair", models=tiny_embedders)
    result = check_accounting(tmp_path / "u.parquet", tmp_path / "out", summary, 2)
    assert summary.errors == [] and summary.pairs_read == len(pairs) and result is not None
    for row in result.to_pylist():
        if row["status"] == "ok":
            assert all(math.isfinite(row[c]) for c in ("glove_euclidean", "bert_euclidean", "bert_cosine"))


def test_sentences_longer_than_the_window_are_embedded_whole(tmp_path: Path, tiny_embedders) -> None:
    """The tiny BERT's window is 64 subwords: a 150-word sentence goes through flair's strided
    windows, so a word far past the window still gets a vector (truncation would leave none)."""
    long = " ".join(["the children play in the park after school"] * 18) + " light"
    pq.write_table(pa.table({"sentence1": [long], "sentence2": ["light"], "word": ["light"]}), tmp_path / "l.parquet")
    bert = tiny_embedders[1]
    before = bert.stats.long_sentences
    summary = run_on(tmp_path / "l.parquet", tmp_path / "out", tokenizer="whitespace", models=tiny_embedders)
    assert bert.stats.long_sentences == before + 1
    (row,) = pq.read_table(tmp_path / "out").to_pylist()
    assert row["status"] == "ok" and row["token_index_1"] == 144
    assert row["bert_euclidean"] is not None and row["bert_euclidean"] > 0
    assert summary.exit_code == 0


def test_no_pickle_and_no_remote_code_anywhere_in_the_package() -> None:
    """User-supplied files are never unpickled, and model repositories' code never runs."""
    root = Path(__file__).resolve().parents[1] / "batchembed"
    source = {p: p.read_text(encoding="utf-8") for p in root.rglob("*.py")}
    for path, text in source.items():
        for forbidden in ("import pickle", "torch.load(", "allow_pickle=True", "trust_remote_code=True", "joblib"):
            assert forbidden not in text, f"{path}: {forbidden}"
        if "np.load(" in text:
            assert "allow_pickle=False" in text, path
    assert "trust_remote_code=False" in source[root / "embedders" / "transformer.py"]
