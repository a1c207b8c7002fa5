"""The command line's messages: argument errors, refused settings changes, damaged bookkeeping and
signals each end in one `Error:` (or `Interrupted:`) line and a documented exit code, never a traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import cli_invoke as invoke
from conftest import error_line, state_dir

from batchembed.cli import INTERRUPTED
from batchembed.io.manifest import differences

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "content",
    ["[]", '"text"', "1", "null", '{"format": 1}', '{"format": 1, "fingerprint": [], "inputs": {}}',
     '{"format": 1, "fingerprint": {}, "inputs": [], "runs": 1, "finished_run": 1}',
     '{"format": 1, "fingerprint": {}, "inputs": {"k": "v"}, "runs": 1, "finished_run": 1}',
     '{"format": 1, "fingerprint": {}, "inputs": {}, "runs": Infinity, "finished_run": 1}',
     '{"format": 1, "fingerprint": {}, "inputs": {"k": {"path": "p", "format": "csv", "bytes": "9", '
     '"mtime_ns": 1, "sha256": null}}, "runs": 1, "finished_run": 1}',
     "{broken"],
)  # fmt: skip
def test_manifest_that_is_not_a_manifest(tmp_path: Path, pairs: Path, tiny_glove_file: Path, content: str) -> None:
    out = tmp_path / "out"
    state_dir(out).mkdir(parents=True)
    (state_dir(out) / "manifest.json").write_text(content)
    result = invoke("run", str(pairs), "-o", str(out), "--glove", str(tiny_glove_file), "--no-transformer")
    assert result.exit_code == 5, result.output
    line = error_line(result)
    assert line.startswith(f"Error: {state_dir(out) / 'manifest.json'}: unreadable manifest (")
    assert line.endswith("); pass --overwrite to start this output over")


def _handles_sigterm(pid: int) -> bool:
    """True once the process has its own SIGTERM handler (bit 15 of SigCgt in /proc/PID/status)."""
    try:
        status_lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return False
    caught = next((line.split()[1] for line in status_lines if line.startswith("SigCgt:")), "0")
    return bool(int(caught, 16) & (1 << (signal.SIGTERM - 1)))


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc to see the handler")
def test_signals_during_start_up_exit_130(tmp_path: Path, pairs: Path, tiny_models: list[str]) -> None:
    """SIGTERM or SIGINT while torch and flair import and the models load: exit 130, one line.
    (Before batchembed's main() runs, a fraction of a second, Python's defaults apply: see the README.)"""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for delay, sig in ((0.0, signal.SIGTERM), (0.2, signal.SIGINT), (0.5, signal.SIGTERM), (1.0, signal.SIGTERM)):
        out = tmp_path / f"out{delay}"
        proc = subprocess.Popen(
            [sys.executable, "-m", "batchembed", "run", str(pairs), "-o", str(out), "-q", *tiny_models],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        deadline = time.monotonic() + 60
        while not _handles_sigterm(proc.pid) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(delay)
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=120)
        if proc.returncode == 0:  # finished before the signal: nothing to check
            continue
        assert proc.returncode == 130, stderr
        assert "Traceback" not in stderr and stderr.strip().splitlines()[-1] == INTERRUPTED, stderr


@pytest.mark.parametrize(
    "args,message",
    [
        (["--max-bad-rows", "-1"], "--max-bad-rows must be 0 or more, got -1"),
        (["--max-bad-rows", "-50"], "--max-bad-rows must be 0 or more, got -50"),
        (["-o", ""], "--output is empty; name the output directory (use . for this directory)"),
        (["-o", "  "], "--output is empty; name the output directory (use . for this directory)"),
        ([""], "an input argument is empty; give a file, directory or glob (use . for this directory)"),
        ([" "], "an input argument is empty; give a file, directory or glob (use . for this directory)"),
    ],
)
def test_run_argument_errors(
    tmp_path: Path, pairs: Path, tiny_models: list[str], args: list[str], message: str
) -> None:
    base = ["run", str(pairs), "-o", str(tmp_path / "out"), *tiny_models]
    result = invoke(*base, *args)
    assert result.exit_code == 2, result.output
    assert error_line(result) == f"Error: {message}"
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize("word", ["", " ", "\t"])
def test_compare_empty_word(tiny_models: list[str], word: str) -> None:
    result = invoke("compare", "the light", "light", "--word", word, *tiny_models)
    assert result.exit_code == 2, result.output
    assert error_line(result) == (
        "Error: --word is empty; give the word to compare, or leave --word out for every shared word"
    )


@pytest.mark.parametrize("kind", ["csv", "tsv", "parquet", "two"])
def test_no_data_rows_is_said_truly(tmp_path: Path, tiny_glove_file: Path, kind: str) -> None:
    if kind == "parquet":
        src = tmp_path / "empty.parquet"
        pq.write_table(pa.table({"sentence1": pa.array([], pa.string()), "sentence2": pa.array([], pa.string())}), src)
    elif kind == "tsv":
        src = tmp_path / "empty.tsv"
        src.write_text("sentence1\tsentence2\n")
    else:
        src = tmp_path / "empty.csv"
        src.write_text("sentence1,sentence2\n")
        if kind == "two":
            (tmp_path / "other.csv").write_text("sentence1,sentence2\r\n")
            src = tmp_path
    args = ["run", str(src), "-o", str(tmp_path / "_out"), "--glove", str(tiny_glove_file), "--no-transformer"]
    for _ in range(2):  # a first run and a re-run say the same
        result = invoke(*args)
        assert result.exit_code == 0, result.output
        assert result.output.strip().splitlines()[-1] == (
            "no data rows to process: the inputs hold no rows (0 pairs read, 0 rows written)"
        )


def test_differences_name_the_option_and_both_values() -> None:
    glove = {"name": "glove", "kind": "glove", "source": "a.txt", "dim": "50"}
    bert = {
        "name": "bert",
        "kind": "transformer",
        "layers": "-1",
        "layer_mean": "True",
        "subtoken_pooling": "first",
        "precision": "fp32",
    }
    old = {"models": [glove, bert], "shard_rows": 5000, "columns": {"sentence1": "s1"}, "tokenizer": "flair"}
    cases = [
        ({"models": [glove, {**bert, "layers": "-2"}]}, ["--layers -1 -> -2"]),
        ({"models": [glove, {**bert, "subtoken_pooling": "mean"}]}, ["--subtoken-pooling first -> mean"]),
        ({"models": [glove, {**bert, "precision": "bf16"}]}, ["--precision fp32 -> bf16"]),
        ({"models": [{**glove, "source": "b.txt"}, bert]}, ["--glove a.txt -> b.txt"]),
        ({"models": [bert]}, ["models glove, bert -> bert"]),
        ({"shard_rows": 10}, ["--shard-rows 5000 -> 10"]),
        ({"columns": {"sentence1": "text"}}, ["--sentence1-column s1 -> text"]),
        ({"tokenizer": "whitespace", "shard_rows": 3}, ["--shard-rows 5000 -> 3", "--tokenizer flair -> whitespace"]),
        ({"models": "garbled"}, ["models glove, bert -> garbled"]),
        # derived fields only when no flag of that model changed; None as none, never "None"
        (
            {"models": [glove, {**bert, "precision": "bf16", "weights": "bfloat16", "autocast": None}]},
            ["--precision fp32 -> bf16"],
        ),
        ({"models": [glove, {**bert, "autocast": "bfloat16"}]}, ["transformer autocast dtype none -> bfloat16"]),
        ({"models": [{**glove, "dim": "100"}, bert]}, ["glove vector size 50 -> 100"]),
        ({"models": [glove, {**bert, "layer_mean": "False"}]}, ["--layer-mean True -> False"]),
        (
            {"columns": {"sentence1": "s1", "start1": "a", "end1": "b", "start2": "c", "end2": "d"}},
            ["--span-columns None,None,None,None -> a,b,c,d"],
        ),
    ]
    for change, expected in cases:
        assert differences(old, {**old, **change}) == expected


def test_settings_change_refusal_names_the_option(tmp_path: Path, pairs: Path, tiny_models: list[str]) -> None:
    out = str(tmp_path / "out")
    assert invoke("run", str(pairs), "-o", out, *tiny_models).exit_code == 0
    for option, change in (
        (["--layers=-2"], "--layers -1 -> -2"),
        (["--subtoken-pooling", "mean"], "--subtoken-pooling first -> mean"),
        (["--layer-concat", "--layers=-1,-2"], "--layer-mean True -> False, --layers -1 -> -1,-2"),
    ):
        result = invoke("run", str(pairs), "-o", out, *tiny_models, *option)
        assert result.exit_code == 5, result.output
        line = error_line(result)
        assert f"holds results made with other settings ({change}" in line, line
        assert line.endswith("; pass --overwrite to replace them, or choose another --output")


def test_run_help_escapes_markup_and_lists_exit_codes() -> None:
    result = invoke("run", "--help", COLUMNS="200")
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "pip install batchembed-pairs[ray])" in text
    for code in ("0 success", "2 usage error", "4 model error", "7 stopped", "130 interrupted"):
        assert code in text, code
