"""Passthrough columns (keep_columns, --keep-columns): the user's own input columns on every output
row of their pair, typed as in the input, through the whole job on CSV and Parquet inputs."""

from __future__ import annotations

import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import FakeEmbedder, cli_invoke, write_csv

import batchembed
from batchembed.config import Columns, EmbedOptions, GloveSpec, RunConfig, TransformerSpec
from batchembed.engines.local import run
from batchembed.errors import InputError, OutputError, UsageError
from batchembed.io.manifest import fingerprint

SENTENCES = {
    "sentence1": ["the light was bright", "the bank of the river", "  ", "she saw the light"],
    "sentence2": ["she saw light", "my bank", "x", "the light in the room"],
}


def job(inputs: list[Path], out: Path, keep: tuple[str, ...], workers: int = 0, **options) -> batchembed.RunSummary:
    config = RunConfig(
        inputs=tuple(map(str, inputs)),
        output=str(out),
        columns=Columns(keep=keep),
        embed=EmbedOptions(tokenize_workers=workers),
        **options,
    )
    return run(config, [FakeEmbedder("static", contextual=False), FakeEmbedder("ctx")])


def test_kept_csv_columns_are_on_every_row_of_their_pair(tmp_path: Path) -> None:
    data = {**SENTENCES, "label": ["T", "F", "T", "F"], "note": ["a", "", "c", "d"]}
    pairs = write_csv(tmp_path / "pairs.csv", data)
    job([pairs], tmp_path / "out", ("label", "sentence1", "note"), shard_rows=3)
    table = batchembed.read_output(tmp_path / "out")
    assert table.schema.names[-3:] == ["label", "sentence1", "note"]  # after the contract's columns
    assert {table.schema.field(n).type for n in ("label", "sentence1", "note")} == {pa.string()}
    for row in table.to_pylist():
        k = row["source_row"] - 1
        assert (row["label"], row["sentence1"]) == (data["label"][k], data["sentence1"][k])
        assert row["note"] == (data["note"][k] or None)  # an empty CSV field is null, as pyarrow reads it
    assert table.filter(pa.compute.field("source_row") == 4).num_rows > 1  # several rows of one pair


def test_kept_parquet_columns_keep_their_types(tmp_path: Path) -> None:
    when = [datetime.datetime(2020, 1, d) for d in range(1, 5)]
    data = pa.table(
        {
            **SENTENCES,
            "label": pa.array([1, 0, 1, 0], pa.int64()),
            "score": pa.array([0.5, None, 1.5, 2.0], pa.float32()),
            "seen": pa.array(when, pa.timestamp("ms")),
            "group": pa.array(["a", "b", "a", "b"]).dictionary_encode(),
            "tags": pa.array([["x"], [], None, ["y", "z"]]),
        }
    )
    pq.write_table(data, tmp_path / "pairs.parquet", row_group_size=3)
    keep = ("label", "score", "seen", "group", "tags")
    job([tmp_path / "pairs.parquet"], tmp_path / "out", keep, workers=1, shard_rows=2)  # kept values cross processes
    table = batchembed.read_output(tmp_path / "out")
    types = {name: table.schema.field(name).type for name in keep}
    assert types == {
        "label": pa.int64(),
        "score": pa.float32(),
        "seen": pa.timestamp("ms"),
        "group": pa.string(),  # dictionaries decoded
        "tags": pa.list_(pa.string()),
    }
    expected = data.to_pylist()
    for row in table.to_pylist():
        source = expected[row["source_row"] - 1]
        assert [row[n] for n in keep] == [source[n] for n in keep]


def test_files_whose_kept_types_differ_share_one_output_type(tmp_path: Path) -> None:
    first = tmp_path / "a.parquet"
    pq.write_table(pa.table({**SENTENCES, "label": pa.array([1, 0, 1, 0], pa.int32())}), first)
    second = tmp_path / "b.parquet"
    pq.write_table(pa.table({**SENTENCES, "label": pa.array([7, 8, 9, 10], pa.int64())}), second)
    third = write_csv(tmp_path / "c.csv", {**SENTENCES, "label": ["x", "y", "z", "w"]})
    job([first, second], tmp_path / "ints", ("label",))
    assert batchembed.read_output(tmp_path / "ints").schema.field("label").type == pa.int64()
    job([first, third], tmp_path / "mixed", ("label",))
    mixed = batchembed.read_output(tmp_path / "mixed")
    assert mixed.schema.field("label").type == pa.string()
    assert set(mixed.column("label").to_pylist()) == {"1", "0", "x", "y", "z", "w"}


def test_a_missing_kept_column_names_the_file_and_the_column(tmp_path: Path) -> None:
    pairs = write_csv(tmp_path / "pairs.csv", {**SENTENCES, "label": ["T", "F", "T", "F"]})
    summary = job([pairs], tmp_path / "out", ("label", "labels"))  # the API names parameters, the CLI flags
    assert summary.exit_code == 3
    assert summary.errors == [
        f"{pairs}: missing column 'labels' named by keep_columns (columns: sentence1, sentence2, label); "
        "check the name, or leave it out"
    ]
    pq.write_table(pa.table(SENTENCES), tmp_path / "pairs.parquet")
    summary = job([tmp_path / "pairs.parquet"], tmp_path / "out2", ("label",))
    assert "pairs.parquet: missing column 'label' named by keep_columns" in summary.errors[0]


def test_kept_columns_that_clash_with_output_columns_are_refused() -> None:
    for name in ("status", "pair_id", "word_1", "static_cosine"):
        with pytest.raises(UsageError, match=rf"^keep_columns '{name}' is also an output column"):
            RunConfig(
                inputs=("x.csv",),
                output="out",
                columns=Columns(keep=(name,)),
                glove=GloveSpec(name="static"),
                transformer=TransformerSpec(name="ctx"),
            )
    with pytest.raises(UsageError, match="names 'a' twice"):
        RunConfig(inputs=("x.csv",), output="out", columns=Columns(keep=("a", "a")))


def test_malformed_and_undecodable_rows_keep_what_can_be_read(tmp_path: Path) -> None:
    path = tmp_path / "pairs.csv"
    path.write_bytes(
        b"sentence1,sentence2,label\nthe light,she saw light,fine\ntoo,many,fields,here\nthe bank,my bank,caf\xe9\n"
    )
    job([path], tmp_path / "out", ("label",))
    table = batchembed.read_output(tmp_path / "out")
    by_row = {row["source_row"]: row["label"] for row in table.to_pylist()}
    assert by_row == {1: "fine", 2: None, 3: "caf\ufffd"}


def test_a_rerun_with_other_kept_columns_is_a_settings_change(tmp_path: Path) -> None:
    pairs = write_csv(tmp_path / "pairs.csv", {**SENTENCES, "label": ["T", "F", "T", "F"]})
    first = job([pairs], tmp_path / "out", ("label",))
    again = job([pairs], tmp_path / "out", ("label",))
    assert (first.shards_written, again.shards_written, again.shards_skipped) == (1, 0, 1)
    with pytest.raises(OutputError, match="keep_columns"):
        job([pairs], tmp_path / "out", ())
    # an output written without --keep-columns keeps the fingerprint it had before the option existed
    plain = fingerprint(RunConfig(inputs=("x",), output="o"), [])
    assert "keep_columns" not in plain and "keep" not in plain["columns"]


def test_the_command_line_keeps_columns(tmp_path: Path, pairs: Path, tiny_models: list[str]) -> None:
    data = write_csv(tmp_path / "labelled.csv", {**SENTENCES, "label": ["T", "F", "T", "F"]})
    result = cli_invoke(
        "run", str(data), "-o", str(tmp_path / "out"), "--keep-columns", "label,sentence2", *tiny_models
    )
    assert result.exit_code == 6, result.output  # one empty sentence
    table = batchembed.read_output(tmp_path / "out")
    assert table.schema.names[-2:] == ["label", "sentence2"]
    assert set(zip(table.column("source_row").to_pylist(), table.column("label").to_pylist())) == {
        (1, "T"),
        (2, "F"),
        (3, "T"),
        (4, "F"),
    }
    missing = cli_invoke("run", str(data), "-o", str(tmp_path / "out2"), "--keep-columns", "lable", *tiny_models)
    assert missing.exit_code == 3
    assert "labelled.csv: missing column 'lable' named by --keep-columns (columns: sentence1, sentence2" in (
        missing.output
    )


def test_the_reader_raises_for_a_missing_kept_column(tmp_path: Path) -> None:
    from batchembed.io.reader import InputFile, read_shards

    pairs = write_csv(tmp_path / "pairs.csv", SENTENCES)
    with pytest.raises(InputError, match=r"missing columns 'a', 'b' named by keep_columns"):
        list(read_shards(InputFile(pairs, "csv"), Columns(keep=("a", "b")), 10))
