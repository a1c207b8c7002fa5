"""Crash-safe resume: kill a real `batchembed run` at random moments, re-run it, and get exactly
the rows of an uninterrupted run; plus the manifest, --incremental and --max-bad-rows rules."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import FakeEmbedder, examples, state_dir
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from batchembed.cli import app
from batchembed.config import EmbedOptions, RunConfig
from batchembed.engines.local import run
from batchembed.errors import ExitCode, OutputError, TooManyBadRows
from batchembed.io import reader
from batchembed.results.summary import RunSummary

WORDS = [
    "the",
    "light",
    "in",
    "room",
    "was",
    "bright",
    "she",
    "read",
    "a",
    "book",
    "by",
    "river",
    "bank",
    "and",
    "money",
]


def sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 7)))


def write_pairs(path: Path, n: int, seed: int = 0, bad_every: int = 0, start: int = 1) -> Path:
    """n CSV rows; every `bad_every`-th row has no first sentence (a bad row)."""
    rng = random.Random(seed)
    lines = [] if start > 1 else ["id,sentence1,sentence2"]
    for i in range(start, start + n):
        first = "" if bad_every and i % bad_every == 0 else sentence(rng)
        lines.append(f"{path.stem}-{i},{first},{sentence(rng)}")
    with path.open("a", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    return path


def engine(inputs: list[Path], out: Path, embedders=None, *, incremental: bool = False, **options) -> RunSummary:
    options.setdefault("shard_rows", 5)
    options.setdefault("tokenizer", "whitespace")
    config = RunConfig(inputs=tuple(str(p) for p in inputs), output=out, incremental=incremental, **options)
    embedders = embedders or [FakeEmbedder("static", contextual=False), FakeEmbedder("ctx")]
    return run(config, embedders)


def output_rows(out: Path) -> list[tuple]:
    """The output as sorted tuples: the order of parts on disk must not matter."""
    table = pq.read_table(out)
    rows = [tuple(r.values()) for r in table.to_pylist()]
    names = table.column_names
    key = [names.index(c) for c in ("source_file", "source_row", "token_index_1", "token_index_2")]
    return sorted(rows, key=lambda r: tuple(-1 if r[k] is None else r[k] for k in key))


def accounted(out: Path) -> int:
    table = pq.read_table(out, columns=["source_file", "source_row"])
    return len(set(zip(table.column(0).to_pylist(), table.column(1).to_pylist())))


def assert_clean(out: Path) -> None:
    """No temporary files; every part has its marker and every marker its part."""
    leftovers = [p.name for d in (out, state_dir(out) / "done") for p in d.iterdir() if ".tmp-" in p.name]
    assert not leftovers
    parts = {p.name[len("part-") : -len(".parquet")] for p in out.glob("part-*.parquet")}
    marked = {p.stem for p in (state_dir(out) / "done").glob("*.json")}
    assert parts == marked


# -- re-runs and settings -----------------------------------------------------------------------


def test_rerun_of_a_finished_job_does_nothing(tmp_path: Path) -> None:
    src = write_pairs(tmp_path / "a.csv", 23)
    first = engine([src], tmp_path / "out")
    assert (first.shards_written, first.pairs_read, first.exit_code) == (5, 23, 0)
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "out").glob("part-*")}
    again = engine([src], tmp_path / "out")
    assert (again.shards_written, again.shards_skipped, again.exit_code) == (0, 5, 0)
    assert again.nothing_to_do and again.line().startswith("nothing to do: all 5 shards were already done")
    assert (again.pairs_read, again.rows_written) == (first.pairs_read, first.rows_written)
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "out").glob("part-*")} == stamps
    saved = json.loads((state_dir(tmp_path / "out") / "summary.json").read_text())
    assert saved["shards_skipped"] == 5 and saved["exit_code"] == 0 and saved["run"] == 2


@pytest.mark.parametrize(
    "change,named",
    [
        ({"shard_rows": 4}, "shard_rows 5 -> 4"),
        ({"tokenizer": "flair"}, "tokenizer whitespace -> flair"),
        (
            {"embedders": [FakeEmbedder("static", contextual=False), FakeEmbedder("ctx", dim=8)]},
            "fake vector size 4 -> 8",
        ),
    ],
)
def test_other_settings_are_refused_until_overwrite(tmp_path: Path, change: dict, named: str) -> None:
    src = write_pairs(tmp_path / "a.csv", 12)
    engine([src], tmp_path / "out")
    with pytest.raises(OutputError, match=f"holds results made with other settings \\({named}\\).*overwrite=True"):
        engine([src], tmp_path / "out", **change)
    summary = engine([src], tmp_path / "out", overwrite=True, **change)
    assert summary.shards_skipped == 0 and summary.pairs_read == accounted(tmp_path / "out") == 12
    assert_clean(tmp_path / "out")


def test_device_and_token_budget_are_not_settings(tmp_path: Path) -> None:
    from batchembed.config import EmbedOptions

    src = write_pairs(tmp_path / "a.csv", 12)
    engine([src], tmp_path / "out")
    again = engine([src], tmp_path / "out", embed=EmbedOptions(device="cpu", token_budget=17))
    assert again.nothing_to_do


def test_foreign_parts_without_a_manifest_are_refused(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    pq.write_table(pa.table({"x": [1]}), tmp_path / "out" / "part-0.parquet")
    with pytest.raises(OutputError, match=r"did not write \(part-0.parquet\).*; move them away"):
        engine([write_pairs(tmp_path / "a.csv", 3)], tmp_path / "out")
    with pytest.raises(OutputError, match=r"did not write \(part-0.parquet\)"):
        engine([write_pairs(tmp_path / "a.csv", 3)], tmp_path / "out", overwrite=True)
    assert (tmp_path / "out" / "part-0.parquet").is_file()


@pytest.mark.parametrize("name", ["part-mydata.parquet", "part-gone-deadbeef-000000.parquet", "part-a-1.parquet"])
def test_overwrite_and_resume_never_delete_files_batchembed_did_not_write(tmp_path: Path, name: str) -> None:
    src = write_pairs(tmp_path / "a.csv", 12)
    out = tmp_path / "out"
    engine([src], out)
    mine = out / name
    pq.write_table(pa.table({"x": [1]}), mine)
    mine_bytes = mine.read_bytes()
    for kwargs in ({}, {"overwrite": True}):
        with pytest.raises(OutputError, match=f"batchembed did not write.* \\({name}\\)"):
            engine([src], out, **kwargs)
        assert mine.read_bytes() == mine_bytes
    mine.unlink()
    assert engine([src], out, overwrite=True).exit_code == 0


def test_leftovers_of_a_killed_run_are_cleaned_and_redone(tmp_path: Path) -> None:
    src = write_pairs(tmp_path / "a.csv", 23)
    engine([src], tmp_path / "fresh")
    out = tmp_path / "out"
    engine([src], out)
    # a run killed between renaming parts into place and marking them done, and mid-write
    markers = sorted((state_dir(out) / "done").glob("*.json"))
    for marker in markers[1:3]:
        marker.unlink()
    shard = markers[1].stem  # temporaries are batchembed's by their whole name (io/layout.py)
    (out / f".part-{shard}.parquet.tmp-999").write_bytes(b"half")
    (state_dir(out) / "done" / f".{shard}.json.tmp-999").write_bytes(b"{")
    summary = engine([src], out)
    assert (summary.shards_written, summary.shards_skipped) == (2, 3)
    assert output_rows(out) == output_rows(tmp_path / "fresh")
    assert_clean(out)


def test_interrupted_run_resumes_to_the_same_rows_with_real_models(tmp_path: Path, tiny_embedders) -> None:
    """Ctrl-C after k pieces written (a piece is a shard here), then the same run again, equals one
    uninterrupted run, exactly."""
    src = write_pairs(tmp_path / "a.csv", 30, bad_every=7)
    engine([src], tmp_path / "fresh", tiny_embedders)
    expected = output_rows(tmp_path / "fresh")
    out = tmp_path / "out"
    for k in (1, 2, 2):
        seen = []

        def stop_after(result, k=k, seen=seen) -> None:
            seen.append(result)
            if len(seen) == k:
                raise KeyboardInterrupt

        config = RunConfig(inputs=(str(src),), output=out, shard_rows=5, tokenizer="whitespace")
        with pytest.raises(KeyboardInterrupt):
            run(config, tiny_embedders, on_progress=stop_after)
        if (state_dir(out) / "summary.json").exists():  # else no part was written: nothing bound, nothing left
            saved = json.loads((state_dir(out) / "summary.json").read_text())
            assert (saved["exit_code"], saved["outcome"]) == (130, "interrupted")
    summary = engine([src], out, tiny_embedders)
    # of 6 shards, those marked before an interrupt are skipped (the task thread may mark more than k)
    assert summary.shards_skipped + summary.shards_written == 6
    assert output_rows(out) == expected
    # the killed runs never finished: their bad rows are still reported by the run that completes
    assert summary.exit_code == ExitCode.BAD_ROWS and summary.new_bad_rows == summary.bad_rows == 4


# -- inputs that change -------------------------------------------------------------------------


def test_changed_inputs_are_refused_without_incremental(tmp_path: Path) -> None:
    a, b = write_pairs(tmp_path / "a.csv", 12), write_pairs(tmp_path / "b.csv", 3)
    out = tmp_path / "out"
    engine([a], out)
    write_pairs(a, 2, start=13)
    with pytest.raises(OutputError, match=r"the inputs changed .*a\.csv grew\); pass incremental=True"):
        engine([a], out)
    with pytest.raises(OutputError, match=r"b\.csv is new"):
        engine([a, b], out, incremental=False)
    engine([a], tmp_path / "out2")
    with pytest.raises(OutputError, match=r"a\.csv is no longer an input"):
        engine([b], tmp_path / "out2")


def test_touch_is_not_a_change(tmp_path: Path) -> None:
    src = write_pairs(tmp_path / "a.csv", 12)
    engine([src], tmp_path / "out")
    os.utime(src, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert engine([src], tmp_path / "out").nothing_to_do


def test_incremental_processes_only_appended_rows(tmp_path: Path) -> None:
    src = write_pairs(tmp_path / "a.csv", 12)
    out = tmp_path / "out"
    engine([src], out, incremental=True)
    write_pairs(src, 9, start=13)
    summary = engine([src], out, incremental=True)
    # shards of 5: 0 and 1 were full and stay; 2 (2 rows, the old end) is redone; 3 and 4 are new
    assert (summary.shards_skipped, summary.shards_written) == (2, 3)
    engine([src], tmp_path / "fresh")
    assert output_rows(out) == output_rows(tmp_path / "fresh")
    assert summary.pairs_read == accounted(out) == 21
    assert_clean(out)


def test_incremental_completes_a_line_cut_in_mid_write(tmp_path: Path) -> None:
    src = tmp_path / "a.csv"
    full = write_pairs(tmp_path / "full.csv", 10).read_bytes().replace(b"full-", b"a-")
    cut = full.index(b"a-10,") + 7  # in the middle of the last row, exactly at a shard boundary
    src.write_bytes(full[:cut])
    out = tmp_path / "out"
    engine([src], out, incremental=True)
    with src.open("ab") as handle:
        handle.write(full[cut:])
    engine([src], out, incremental=True)
    engine([src], tmp_path / "fresh")
    assert output_rows(out) == output_rows(tmp_path / "fresh")


def test_incremental_adds_new_files_and_keeps_vanished_ones(tmp_path: Path, caplog) -> None:
    data = tmp_path / "data"
    data.mkdir()
    a = write_pairs(data / "a.csv", 7)
    out = tmp_path / "out"
    engine([data], out, incremental=True)
    before = output_rows(out)
    b = write_pairs(data / "b.csv", 6)
    summary = engine([data], out, incremental=True)
    assert summary.shards_skipped == 2 and summary.shards_written == 2
    a.rename(tmp_path / "archived.csv")
    with caplog.at_level(logging.WARNING):
        summary = engine([data], out, incremental=True)
    assert "a.csv: no longer among the inputs; its rows stay in the output" in caplog.text
    assert summary.nothing_to_do and summary.pairs_read == 13
    assert {f.path: f.state for f in summary.files.values()} == {str(a): "kept", str(b): "done"}
    assert set(before) <= set(output_rows(out))


def test_incremental_redoes_a_changed_file(tmp_path: Path, caplog) -> None:
    src = write_pairs(tmp_path / "a.csv", 12)
    out = tmp_path / "out"
    engine([src], out, incremental=True)
    src.write_text(src.read_text().replace("a-2,", "a-2,changed "))
    with caplog.at_level(logging.WARNING):
        summary = engine([src], out, incremental=True)
    assert "a.csv: changed since it was processed (not only appended to); redoing it" in caplog.text
    assert (summary.shards_written, summary.shards_skipped) == (3, 0)
    engine([src], tmp_path / "fresh")
    assert output_rows(out) == output_rows(tmp_path / "fresh")
    assert_clean(out)


def test_incremental_redoes_a_shortened_file_without_leftovers(tmp_path: Path) -> None:
    src = write_pairs(tmp_path / "a.csv", 23)
    out = tmp_path / "out"
    engine([src], out, incremental=True)
    src.write_text("\n".join(src.read_text().splitlines()[:8]) + "\n")
    summary = engine([src], out, incremental=True)
    assert summary.pairs_read == accounted(out) == 7
    assert_clean(out)


# -- bad rows and bad files ---------------------------------------------------------------------


@pytest.mark.parametrize("workers", [0, 2])
def test_max_bad_rows_keeps_finished_shards_and_resumes(tmp_path: Path, workers: int) -> None:
    """With workers, parts written ahead of the stop get no marker and are removed (assert_clean)."""
    src = write_pairs(tmp_path / "a.csv", 30, bad_every=6)  # rows 6, 12, ...: one bad row per shard from 2nd
    out = tmp_path / "out"
    with pytest.raises(TooManyBadRows, match="2 bad rows exceed max_bad_rows 1"):
        engine([src], out, max_bad_rows=1, embed=EmbedOptions(tokenize_workers=workers))
    saved = json.loads((state_dir(out) / "summary.json").read_text())
    # a task past its last check as the run stopped may still mark its shard: counted, as on disk
    marked = len(list((state_dir(out) / "done").iterdir()))
    assert marked >= 3 and (saved["exit_code"], saved["shards_written"]) == (7, marked)
    assert saved["new_bad_rows"] == marked - 1  # one bad row in each shard from the second
    assert_clean(out)
    # the same limit stops again before doing anything: the stopped run did not finish
    with pytest.raises(TooManyBadRows, match="in shards already written"):
        engine([src], out, max_bad_rows=1)
    summary = engine([src], out, max_bad_rows=100)
    assert (summary.shards_skipped, summary.shards_written) == (marked, 6 - marked)
    assert summary.exit_code == ExitCode.BAD_ROWS and summary.new_bad_rows == summary.bad_rows == 5
    assert engine([src], out, max_bad_rows=1).exit_code == ExitCode.OK  # finished: nothing new


def test_one_bad_file_does_not_stop_the_others(tmp_path: Path) -> None:
    good = write_pairs(tmp_path / "good.csv", 8)
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 this is not parquet")
    missing = tmp_path / "missing.csv"
    summary = engine([good, broken, missing], tmp_path / "out")
    assert summary.exit_code == ExitCode.INPUT_ERROR
    assert summary.errors == [
        f"{missing}: no such file or directory",
        f"{broken}: not a readable Parquet file (Parquet magic bytes not found in footer. Either the file is "
        "corrupted or this is not a parquet file.); is it truncated or being written?",
    ]
    assert summary.pairs_read == accounted(tmp_path / "out") == 8
    states = {Path(f.path).name: f.state for f in summary.files.values()}
    assert states == {"good.csv": "done", "broken.parquet": "failed"}


def test_cli_reports_each_bad_file_and_exits_3(tmp_path: Path, tiny_glove_file: Path) -> None:
    good = write_pairs(tmp_path / "good.csv", 8)
    (tmp_path / "nohead.csv").write_text("text_a,text_b\nx,y\n")
    args = ["run", str(good), str(tmp_path / "nohead.csv"), "-o", str(tmp_path / "out")]
    result = CliRunner().invoke(app, [*args, "--glove", str(tiny_glove_file), "--no-transformer"])
    assert result.exit_code == 3, result.output
    assert f"Error: {tmp_path / 'nohead.csv'}: missing column 'sentence1' (columns: text_a, text_b)" in result.output
    assert "8 pairs read" in result.output


def test_cli_refuses_overwrite_with_incremental(tmp_path: Path) -> None:
    src = write_pairs(tmp_path / "a.csv", 2)
    result = CliRunner().invoke(app, ["run", str(src), "-o", str(tmp_path / "o"), "--overwrite", "--incremental"])
    assert result.exit_code == 2 and "give only one" in result.output


def test_unreadable_file_is_reported_then_resumed_once_readable(tmp_path: Path, monkeypatch) -> None:
    """A file the store refuses to open (permissions; made so by the store itself, since root reads
    any file whatever its mode) is one error line; the others are processed, and it is done once readable."""
    from batchembed.io.storage import Location

    good, locked = write_pairs(tmp_path / "good.csv", 4), write_pairs(tmp_path / "locked.csv", 4)
    real = {name: getattr(Location, name) for name in ("open_stream", "open_file")}

    def refusing(name: str):
        def opener(self: Location):
            if self.path.endswith("locked.csv"):
                raise PermissionError(13, "Permission denied", self.path)
            return real[name](self)

        return opener

    with monkeypatch.context() as patched:
        for name in real:
            patched.setattr(Location, name, refusing(name))
        summary = engine([good, locked], tmp_path / "out")
    assert summary.exit_code == 3 and "locked.csv: cannot" in summary.errors[0]
    assert summary.pairs_read == 4
    assert engine([good, locked], tmp_path / "out").pairs_read == 8


def test_unreadable_at_inspection_is_kept_in_the_manifest(tmp_path: Path, monkeypatch) -> None:
    from batchembed.io import manifest

    good, locked = write_pairs(tmp_path / "good.csv", 4), write_pairs(tmp_path / "locked.csv", 4)
    real = manifest._hashes

    def denied(path: Path, prefix, size):
        if path.name == "locked.csv":
            raise PermissionError(13, "Permission denied")
        return real(path, prefix, size)

    monkeypatch.setattr(manifest, "_hashes", denied)
    summary = engine([good, locked], tmp_path / "out")
    assert summary.exit_code == 3 and summary.errors == [
        f"{locked}: cannot read: Permission denied; check its permissions"
    ]
    monkeypatch.setattr(manifest, "_hashes", real)
    summary = engine([good, locked], tmp_path / "out")  # not an input change: the same command goes on
    assert summary.exit_code == 0 and summary.pairs_read == 8


def test_a_file_failing_part_way_keeps_its_rows_and_is_retried(tmp_path: Path, monkeypatch) -> None:
    src = write_pairs(tmp_path / "a.csv", 20)
    real = reader.csv_chunks

    def flaky(file, columns):
        mode, chunks = real(file, columns)

        def small():
            (chunk,) = list(chunks)
            for start in (0, 3):
                yield {name: values[start : start + 3] for name, values in chunk.items()}
            raise OSError(5, "Input/output error")

        return mode, small()

    monkeypatch.setattr(reader, "csv_chunks", flaky)
    out = tmp_path / "out"
    summary = engine([src], out)
    assert summary.errors == [
        f"{src}: cannot read data row 7 or later (Input/output error); the rows before it are written"
    ]
    assert summary.pairs_read == accounted(out) == 6
    assert {f.state for f in summary.files.values()} == {"partial"}
    monkeypatch.setattr(reader, "csv_chunks", real)
    summary = engine([src], out)  # the disk is fine again: the same command finishes the file
    assert (summary.shards_skipped, summary.shards_written, summary.exit_code) == (1, 3, 0)
    engine([src], tmp_path / "fresh")
    assert output_rows(out) == output_rows(tmp_path / "fresh")
    assert_clean(out)


def test_output_inside_an_input_directory(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    write_pairs(data / "a.csv", 7)
    engine([data], data / "out")
    again = engine([data], data / "out")
    assert again.nothing_to_do and again.pairs_read == 7


def test_summary_json_describes_the_run(tmp_path: Path) -> None:
    a, b = write_pairs(tmp_path / "a.csv", 7, bad_every=3), write_pairs(tmp_path / "b.csv", 2)
    engine([a, b], tmp_path / "out")
    saved = json.loads((state_dir(tmp_path / "out") / "summary.json").read_text())
    assert saved["exit_code"] == 6 and saved["outcome"] == "finished with bad rows"
    assert saved["inputs"] == [str(a), str(b)] and saved["errors"] == []
    assert saved["started"] <= saved["finished"] and saved["run"] == 1
    assert saved["pairs_read"] == 9 and saved["bad_rows"] == saved["new_bad_rows"] == 2
    assert saved["status_counts"]["null_sentence"] == 2
    files = {Path(f["path"]).name: f for f in saved["files"]}
    assert (files["a.csv"]["pairs"], files["a.csv"]["shards"], files["a.csv"]["bad_rows"]) == (7, 2, 2)
    assert (files["b.csv"]["pairs"], files["b.csv"]["state"]) == (2, "done")
    assert sum(f["rows"] for f in saved["files"]) == saved["rows_written"]


# -- kill -9 at random moments --------------------------------------------------------------------

KILLS = 10  # SIGKILLs that land on a running process, then one SIGTERM; each costs a process start (~5 s)


def _markers(out: Path) -> int:
    try:
        return sum(1 for name in os.listdir(state_dir(out) / "done") if name.endswith(".json"))
    except FileNotFoundError:
        return 0


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume(tmp_path: Path, tiny_glove_file: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    write_pairs(data / "a.csv", 400, seed=1, bad_every=37)
    write_pairs(data / "b.csv", 300, seed=2)
    pq.write_table(
        pa.table({"sentence1": ["the light was bright"] * 150, "sentence2": ["she read a book"] * 150}),
        data / "c.parquet",
    )
    options = [
        "--glove",
        str(tiny_glove_file),
        "--no-transformer",
        "--shard-rows",
        "5",
        "--tokenizer",
        "whitespace",
        "-q",
    ]
    baseline = CliRunner().invoke(app, ["run", str(data), "-o", str(tmp_path / "baseline"), *options])
    assert baseline.exit_code == 6, baseline.output
    expected = output_rows(tmp_path / "baseline")
    total_shards = _markers(tmp_path / "baseline")

    out = tmp_path / "out"
    command = [sys.executable, "-m", "batchembed", "run", str(data), "-o", str(out), *options]
    rng = random.Random(20261125)
    for _ in range(KILLS):
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # a random moment: a quarter of the kills at a random time from the start (imports, lock,
        # manifest, cleanup, or shards), the rest after 1-8 more shards; then a jitter of up to
        # 20 ms lands them anywhere in a shard's write-rename-mark sequence. At most ~10 shards a
        # kill, so the job (170 shards) is still running at every kill.
        deadline = time.monotonic() + (rng.uniform(0.0, 6.0) if rng.random() < 0.25 else 60.0)
        target = _markers(out) + rng.randint(1, 8)
        while proc.poll() is None and time.monotonic() < deadline and _markers(out) < target:
            time.sleep(0.002)
        time.sleep(rng.uniform(0.0, 0.02))
        proc.kill()
        proc.wait()
        assert proc.returncode == -signal.SIGKILL, f"the run ended by itself ({proc.returncode}) before the kill"
    assert 0 < _markers(out) < total_shards

    # SIGTERM behaves like Ctrl-C: exit 130, summary says so, finished shards kept
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    before = _markers(out)
    while proc.poll() is None and _markers(out) <= before:
        time.sleep(0.002)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    if proc.returncode != 6:  # 6: it finished in the instant before the signal
        assert proc.returncode == 130, stderr
        assert "Interrupted: finished shards are kept" in stderr
        assert json.loads((state_dir(out) / "summary.json").read_text())["outcome"] == "interrupted"

    final = subprocess.run(command, capture_output=True, text=True)
    assert final.returncode == 6, final.stderr  # the bad rows of all the killed runs, reported once
    assert output_rows(out) == expected
    assert_clean(out)
    saved = json.loads((state_dir(out) / "summary.json").read_text())
    assert saved["pairs_read"] == accounted(out) == 850
    assert saved["bad_rows"] == saved["new_bad_rows"] == 10
    again = CliRunner().invoke(app, ["run", str(data), "-o", str(out), *options[:-1]])  # without -q
    assert again.exit_code == 0 and "nothing to do: all 170 shards were already done" in again.output
    assert json.loads((state_dir(out) / "summary.json").read_text())["shards_written"] == 0


@pytest.mark.parametrize("where", ["start", "middle", "end"])
def test_a_part_damaged_in_place_at_the_same_size_is_redone(tmp_path: Path, where: str) -> None:
    src = write_pairs(tmp_path / "a.csv", 23)
    engine([src], tmp_path / "fresh")
    out = tmp_path / "out"
    engine([src], out)
    part = sorted(out.glob("part-*.parquet"))[1]
    data = bytearray(part.read_bytes())
    at = {"start": 8, "middle": len(data) // 2, "end": len(data) - 12}[where]
    data[at : at + 4] = bytes(b ^ 0xFF for b in data[at : at + 4])
    part.write_bytes(bytes(data))
    summary = engine([src], out)
    assert (summary.shards_written, summary.shards_skipped) == (1, 4)
    assert output_rows(out) == output_rows(tmp_path / "fresh")


@pytest.mark.parametrize("row", [1, 7, 23])
def test_a_resume_never_mixes_two_versions_of_an_input(tmp_path: Path, row: int) -> None:
    """Killed after two shards, a row edited in place at the same size with its mtime restored:
    the content decides, so the result is a fresh run's on the edited file."""
    src = write_pairs(tmp_path / "a.csv", 23)
    out = tmp_path / "out"
    seen: list = []

    def stop_after_two(result) -> None:
        seen.append(result)
        if len(seen) == 2:
            raise KeyboardInterrupt

    config = RunConfig(inputs=(str(src),), output=out, shard_rows=5, tokenizer="whitespace")
    with pytest.raises(KeyboardInterrupt):
        run(config, [FakeEmbedder("static", contextual=False), FakeEmbedder("ctx")], on_progress=stop_after_two)
    before = os.stat(src)
    lines = src.read_text(encoding="utf-8").split("\n")
    old = lines[row]
    lines[row] = old.replace("light", "sight", 1) if "light" in old else old[::-1]
    assert len(lines[row]) == len(old) and lines[row] != old
    src.write_text("\n".join(lines), encoding="utf-8")
    os.utime(src, ns=(before.st_atime_ns, before.st_mtime_ns))
    with pytest.raises(OutputError, match="changed"):  # without --incremental the change is refused
        engine([src], out)
    engine([src], out, incremental=True)
    engine([src], tmp_path / "fresh")
    assert output_rows(out) == output_rows(tmp_path / "fresh")


@pytest.mark.slow
@settings(max_examples=examples(25), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    n=st.integers(1, 30),
    stop_after=st.integers(1, 6),
    edit_row=st.integers(1, 30),
    edit=st.sampled_from(["same size", "longer", "shorter", "append", "none"]),
    restore_mtime=st.booleans(),
    seed=st.integers(0, 1000),
)
def test_property_a_resume_equals_a_fresh_run_on_the_final_input(
    tmp_path_factory: pytest.TempPathFactory,
    n: int,
    stop_after: int,
    edit_row: int,
    edit: str,
    restore_mtime: bool,
    seed: int,
) -> None:
    """Interrupted after some shards, the input edited in any way (its mtime perhaps set back),
    resumed with --incremental: never rows of two versions, always a fresh run's rows."""
    tmp = tmp_path_factory.mktemp("versions")
    src = write_pairs(tmp / "a.csv", n, seed=seed)
    out = tmp / "out"
    seen: list = []

    def stop(result) -> None:
        seen.append(result)
        if len(seen) == stop_after:
            raise KeyboardInterrupt

    config = RunConfig(inputs=(str(src),), output=out, shard_rows=3, tokenizer="whitespace")
    with contextlib.suppress(KeyboardInterrupt):
        run(config, [FakeEmbedder("static", contextual=False), FakeEmbedder("ctx")], on_progress=stop)
    before = os.stat(src)
    lines = src.read_text(encoding="utf-8").rstrip("\n").split("\n")
    row = 1 + (edit_row - 1) % n
    if edit == "same size":
        lines[row] = lines[row][:-1] + ("x" if lines[row][-1] != "x" else "y")
    elif edit == "longer":
        lines[row] += " river"
    elif edit == "shorter" and len(lines[row].rsplit(" ", 1)[0].split(",")) == 3:
        lines[row] = lines[row].rsplit(" ", 1)[0]
    elif edit == "append":
        lines.append(f"new-{seed},the light was new,a new light")
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    if restore_mtime:
        os.utime(src, ns=(before.st_atime_ns, before.st_mtime_ns))
    engine([src], out, shard_rows=3, incremental=True)
    engine([src], tmp / "fresh", shard_rows=3)
    assert output_rows(out) == output_rows(tmp / "fresh")
