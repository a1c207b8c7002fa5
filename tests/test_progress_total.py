"""The progress bar's total: exactly the pairs a run writes, for CSV inputs too (counted in the
background for local files), on a resumed run and a mixed CSV and Parquet input; none for CSV on
object storage. And the bar names what it counts: `uses` counts uses."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import FakeEmbedder, state_dir
from typer.testing import CliRunner

from batchembed.cli import app
from batchembed.config import RunConfig
from batchembed.engines.local import run
from batchembed.results.summary import RunSummary
from batchembed.stages.progress_total import csv_pending

SHARD_ROWS = 1000


class Recorder:
    """A progress callback with `expect`, as the CLI's bar has: the total as it stood at each piece."""

    def __init__(self) -> None:
        self.total = lambda: None
        self.seen: list[tuple[int | None, int]] = []

    def expect(self, total) -> None:  # type: ignore[no-untyped-def]
        self.total = total

    def __call__(self, pairs: int) -> None:
        self.seen.append((self.total(), pairs))

    @property
    def written(self) -> int:
        return sum(pairs for _, pairs in self.seen)


def hostile_csv(path: Path, rows: int) -> Path:
    """`rows` data rows, some of them bad (a missing field, an extra one), one spanning two lines,
    with blank lines (no rows) between."""
    lines = ["id,sentence1,sentence2"]
    for k in range(1, rows + 1):
        if k % 97 == 0:
            lines.append(f"p{k},only one field")
        elif k % 89 == 0:
            lines.append(f'p{k},"the light\nwas bright",she radiates light')
        elif k % 83 == 0:
            lines.append(f"p{k},the light,she radiates light,one too many")
        else:
            lines.append(f"p{k},the light was bright {k},she radiates light")
        if k % 50 == 0:
            lines.append("")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run_recorded(inputs: list[Path], out: Path) -> tuple[RunSummary, Recorder]:
    recorder = Recorder()
    config = RunConfig(inputs=tuple(map(str, inputs)), output=out, shard_rows=SHARD_ROWS, tokenizer="whitespace")
    summary = run(config, [FakeEmbedder("static", contextual=False)], recorder)
    return summary, recorder


def test_a_csv_run_gets_the_pairs_it_writes_as_its_total(tmp_path: Path) -> None:
    src = hostile_csv(tmp_path / "pairs.csv", 2500)
    summary, recorder = run_recorded([src], tmp_path / "out")
    assert summary.pairs_read == recorder.written == 2500
    assert recorder.total() == 2500
    known = [total for total, _ in recorder.seen if total is not None]
    assert set(known) <= {2500}  # once known, the total never changes


@pytest.mark.parametrize("removed", [[1], [0, 2], [2], [0, 1, 2]], ids=["middle", "first-and-last", "last", "all"])
def test_a_resumed_csv_run_counts_only_its_pending_shards(tmp_path: Path, removed: list[int]) -> None:
    src = hostile_csv(tmp_path / "pairs.csv", 2500)
    out = tmp_path / "out"
    run_recorded([src], out)
    markers = sorted((state_dir(out) / "done").glob("*.json"))
    assert len(markers) == 3
    for k in removed:
        markers[k].unlink()  # a run killed before these shards were marked done
    summary, recorder = run_recorded([src], out)
    redone = sum(min(SHARD_ROWS, 2500 - k * SHARD_ROWS) for k in removed)
    assert (summary.shards_written, summary.shards_skipped) == (len(removed), 3 - len(removed))
    assert recorder.written == redone
    assert recorder.total() == redone


def test_a_mixed_csv_and_parquet_input_gets_one_total(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    hostile_csv(data / "a.csv", 1500)
    hostile_csv(data / "b.tsv", 10).write_text((data / "b.tsv").read_text().replace(",", "\t"))
    pq.write_table(pa.table({"sentence1": ["the light"] * 1200, "sentence2": ["a light"] * 1200}), data / "c.parquet")
    (data / "d.csv").write_text("text_a,text_b\nthe light,a light\n")  # unreadable: no pair of it is written
    summary, recorder = run_recorded([data], tmp_path / "out")
    assert summary.exit_code == 3 and recorder.written == 1500 + 10 + 1200
    assert recorder.total() == recorder.written


def test_a_parquet_run_knows_its_total_before_the_first_piece(tmp_path: Path) -> None:
    pq.write_table(
        pa.table({"sentence1": ["the light"] * 2100, "sentence2": ["a light"] * 2100}), tmp_path / "p.parquet"
    )
    _, recorder = run_recorded([tmp_path / "p.parquet"], tmp_path / "out")
    assert [total for total, _ in recorder.seen] == [2100] * len(recorder.seen)


def test_pending_pairs_of_a_csv_task_leave_out_its_done_shards() -> None:
    assert csv_pending(2500, 1000, frozenset()) == 2500
    assert csv_pending(2500, 1000, frozenset({0, 2})) == 1000
    assert csv_pending(2500, 1000, frozenset({1, 3})) == 1500  # a shard past the end adds nothing
    assert csv_pending(0, 1000, frozenset()) == 0


def test_the_cli_bar_ends_at_its_total_for_a_csv_input(tmp_path: Path, tiny_glove_file: Path) -> None:
    src = hostile_csv(tmp_path / "pairs.csv", 1100)
    args = ["run", str(src), "-o", str(tmp_path / "out"), "--glove", str(tiny_glove_file), "--no-transformer"]
    result = CliRunner().invoke(app, [*args, "--tokenizer", "whitespace"])
    assert result.exit_code == 6, result.output  # the bad rows
    assert "pairs: 100%" in result.output and "1100/1100" in result.output, result.output


def test_the_uses_command_counts_uses(tmp_path: Path, tiny_bert_dir: Path) -> None:
    dwug = Path(__file__).parent / "data" / "dwug"
    args = ["uses", str(dwug), "-o", str(tmp_path / "out"), "--no-glove", "--transformer", str(tiny_bert_dir)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code in (0, 6), result.output
    bar = [line for line in result.output.replace("\r", "\n").splitlines() if line.startswith("uses:")]
    assert bar and bar[-1].startswith("uses: 100%") and bar[-1].endswith(" uses/s]"), result.output
    assert not any("pairs" in line for line in bar), result.output


def test_csv_on_object_storage_gets_no_total(tmp_path: Path, bucket: str) -> None:
    """Counting would read each CSV file twice over the network: the bar has a count, no total."""
    import pyarrow.fs as pafs

    s3 = pafs.FileSystem.from_uri("s3://x")[0]
    with s3.open_output_stream(f"{bucket}/in/pairs.csv") as stream:
        stream.write(hostile_csv(tmp_path / "pairs.csv", 20).read_bytes())
    pq.write_table(
        pa.table({"sentence1": ["the light"], "sentence2": ["a light"]}), f"{bucket}/only/p.parquet", filesystem=s3
    )
    _, recorder = run_recorded([f"s3://{bucket}/in"], tmp_path / "out")  # type: ignore[list-item]
    assert recorder.written == 20 and recorder.total() is None
    _, recorder = run_recorded([f"s3://{bucket}/only"], tmp_path / "out2")  # type: ignore[list-item]
    assert recorder.total() == 1  # Parquet: its footer tells


def test_a_uses_run_over_csv_gets_its_uses_as_its_total(tmp_path: Path, tiny_glove_file: Path) -> None:
    import batchembed

    lines = ["id,sentence,start,end,lemma"] + [f"u{k},the light was bright {k},4,9,light" for k in range(30)]
    (tmp_path / "uses.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    recorder = Recorder()
    options = {"glove": str(tiny_glove_file), "transformer": None, "tokenizer": "whitespace"}
    summary = batchembed.uses(tmp_path / "uses.csv", tmp_path / "out", progress=recorder, **options)
    assert summary.exit_code == 0 and recorder.written == 30 and recorder.total() == 30
