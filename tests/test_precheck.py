"""Checks before the models load: mistakes that need no model fail before flair or torch is
imported, `run --check` prints the plan, and a start that wrote no part binds nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import cli_invoke, error_line, state_dir, write_csv

ROOT = Path(__file__).resolve().parents[1]

# runs `batchembed ARGS` through its entry point in a fresh interpreter, then records the exit code
# and whether the heavy libraries were ever imported
PROBE = """
import json, sys
from batchembed.cli import main
sys.argv = ["batchembed", *json.loads(sys.argv[1])]
try:
    main()
    code = 0
except SystemExit as exc:
    code = exc.code
with open(RESULT, "w") as f:
    json.dump({"code": code, "flair": "flair" in sys.modules, "torch": "torch" in sys.modules}, f)
"""


def probe(tmp_path: Path, *args: str) -> tuple[dict[str, object], str]:
    result = tmp_path / "probe.json"
    code = PROBE.replace("RESULT", repr(str(result)))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code, json.dumps(list(args))], capture_output=True, text=True, env=env, timeout=120
    )
    return json.loads(result.read_text()), done.stderr


def test_a_missing_file_fails_before_flair_or_torch_is_imported(tmp_path: Path, tiny_models: list[str]) -> None:
    found, stderr = probe(tmp_path, "run", str(tmp_path / "nope.csv"), "-o", str(tmp_path / "out"), *tiny_models)
    assert found == {"code": 3, "flair": False, "torch": False}, stderr
    assert stderr.strip().splitlines()[-1] == f"Error: {tmp_path / 'nope.csv'}: no such file or directory"
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.batchembed").exists()


def test_a_missing_column_fails_before_flair_or_torch_is_imported(tmp_path: Path, tiny_models: list[str]) -> None:
    src = write_csv(tmp_path / "pairs.csv", {"text_a": ["a"], "text_b": ["b"]})
    found, stderr = probe(tmp_path, "run", str(src), "-o", str(tmp_path / "out"), *tiny_models)
    assert found == {"code": 3, "flair": False, "torch": False}, stderr
    assert f"Error: {src}: missing column 'sentence1' (columns: text_a, text_b)" in stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.batchembed").exists()


def test_a_settings_conflict_fails_before_flair_or_torch_is_imported(
    tmp_path: Path, pairs: Path, tiny_models: list[str]
) -> None:
    out = str(tmp_path / "out")
    assert cli_invoke("run", str(pairs), "-o", out, *tiny_models).exit_code == 0
    found, stderr = probe(tmp_path, "run", str(pairs), "-o", out, *tiny_models, "--layers=-2", "--shard-rows", "7")
    assert found == {"code": 5, "flair": False, "torch": False}, stderr
    assert "holds results made with other settings (--layers -1 -> -2, --shard-rows 5000 -> 7)" in stderr


def test_wrong_columns_then_the_corrected_command_runs_without_overwrite(
    tmp_path: Path, tiny_models: list[str]
) -> None:
    src = write_csv(tmp_path / "pairs.csv", {"text_a": ["the light was bright"], "text_b": ["she saw light"]})
    out = str(tmp_path / "pout")
    first = cli_invoke("run", str(src), "-o", out, *tiny_models)
    assert first.exit_code == 3, first.output
    assert "--sentence1-column" in error_line(first)
    assert not (tmp_path / "pout").exists() and not (tmp_path / "pout.batchembed").exists()
    columns = ["--sentence1-column", "text_a", "--sentence2-column", "text_b"]
    second = cli_invoke("run", str(src), "-o", out, *tiny_models, *columns)
    assert second.exit_code == 0, second.output


def test_a_manifest_without_parts_does_not_bind_the_output(tmp_path: Path, pairs: Path, tiny_models: list[str]) -> None:
    """An output whose earlier run recorded its settings but wrote no part (an older version, or a
    run whose every file failed) takes other settings without --overwrite."""
    out = tmp_path / "out"
    assert cli_invoke("run", str(pairs), "-o", str(out), *tiny_models).exit_code == 0
    for part in out.iterdir():
        part.unlink()
    for marker in (state_dir(out) / "done").iterdir():
        marker.unlink()
    assert (state_dir(out) / "manifest.json").exists()
    result = cli_invoke("run", str(pairs), "-o", str(out), *tiny_models, "--layers=-2")
    assert result.exit_code == 0, result.output
    assert json.loads((state_dir(out) / "manifest.json").read_text())["fingerprint"]["models"][1]["layers"] == "-2"


def test_a_start_that_fails_before_its_first_part_leaves_nothing_it_created(
    tmp_path: Path, pairs: Path, tiny_models: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from batchembed.engines import job
    from batchembed.errors import InputError

    def fail(*args: object, **kwargs: object) -> None:
        raise InputError("the store went away while planning")

    monkeypatch.setattr(job, "plan_tasks", fail)
    result = cli_invoke("run", str(pairs), "-o", str(tmp_path / "out"), *tiny_models)
    assert result.exit_code == 3, result.output
    assert error_line(result) == "Error: the store went away while planning"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pairs.csv"]


def test_a_failed_start_keeps_an_output_it_did_not_create(
    tmp_path: Path, pairs: Path, tiny_models: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from batchembed.engines import job
    from batchembed.errors import InputError

    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")

    def fail(*args: object, **kwargs: object) -> None:
        raise InputError("planning failed")

    monkeypatch.setattr(job, "plan_tasks", fail)
    assert cli_invoke("run", str(pairs), "-o", str(tmp_path / "out"), *tiny_models).exit_code in (3, 5)
    assert (tmp_path / "out" / "notes.txt").read_text() == "mine"


def test_check_prints_the_plan_and_writes_nothing(tmp_path: Path, tiny_models: list[str]) -> None:
    out = tmp_path / "out"
    result = cli_invoke("run", str(ROOT / "sample_data"), "-o", str(out), "--check", *tiny_models)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"plan for {out} (new; --shard-rows 5,000):"
    assert f"  {ROOT / 'sample_data' / 'spans.parquet'}: parquet, target mode spans, 4 pairs, 1 shard, 0 done" in lines
    assert (
        f"  {ROOT / 'sample_data' / 'shared_words.csv'}: csv, target mode shared words, 5 pairs, 1 shard, 0 done"
        in (lines)
    )
    assert lines[-1] == "5 input files, 20 pairs, 5 shards: 0 done, 5 to run (no model was loaded, nothing was written)"
    assert not out.exists() and not state_dir(out).exists()


def test_check_after_a_run_counts_what_is_done(tmp_path: Path, tiny_models: list[str]) -> None:
    src = write_csv(tmp_path / "pairs.csv", {"sentence1": ["the light"] * 5, "sentence2": ["light"] * 5})
    out = str(tmp_path / "out")
    assert cli_invoke("run", str(src), "-o", out, "--shard-rows", "2", *tiny_models).exit_code == 0
    result = cli_invoke("run", str(src), "-o", out, "--shard-rows", "2", "--check", *tiny_models)
    assert result.exit_code == 0, result.output
    assert f"  {src}: csv, target mode shared words, 5 pairs, 3 shards, 3 done" in result.output.splitlines()
    assert result.output.splitlines()[-1].startswith("1 input file, 5 pairs, 3 shards: 3 done, 0 to run")


def test_check_lists_an_input_that_would_fail_and_exits_3(tmp_path: Path, pairs: Path, tiny_models: list[str]) -> None:
    bad = write_csv(tmp_path / "bad.csv", {"text_a": ["a"]})
    result = cli_invoke("run", str(pairs), str(bad), "-o", str(tmp_path / "out"), "--check", *tiny_models)
    assert result.exit_code == 3, result.output
    assert f"Error: {bad}: missing column 'sentence1' (columns: text_a)" in result.output
    assert "1 input file, 1 pair, 1 shard: 0 done, 1 to run" in result.output


def test_when_no_input_can_be_read_each_gets_its_line_before_any_model_loads(tmp_path: Path) -> None:
    a = write_csv(tmp_path / "a.csv", {"text_a": ["x"], "text_b": ["y"]})
    found, stderr = probe(tmp_path, "run", str(a), str(tmp_path / "gone.csv"), "-o", str(tmp_path / "out"))
    assert found == {"code": 3, "flair": False, "torch": False}, stderr
    assert [line for line in stderr.splitlines() if line.startswith("Error:")] == [
        f"Error: {tmp_path / 'gone.csv'}: no such file or directory",
        f"Error: {a}: missing column 'sentence1' (columns: text_a, text_b); name the sentence columns with "
        "--sentence1-column/--sentence2-column",
    ]
