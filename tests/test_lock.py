"""One run per output directory: a second run is refused, a dead run's lock is taken over."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import state_dir
from typer.testing import CliRunner

from batchembed.cli import app
from batchembed.config import RunConfig
from batchembed.engines.local import run
from batchembed.errors import OutputError
from batchembed.io.lock import OutputLock

HOLD = """
import sys, time
from pathlib import Path
from batchembed.io.lock import OutputLock
lock = OutputLock(sys.argv[1], "out")
lock.acquire()
print("locked", flush=True)
time.sleep(120)
"""


def pairs(tmp_path: Path) -> Path:
    path = tmp_path / "pairs.csv"
    path.write_text("sentence1,sentence2\nthe light,a light\n", encoding="utf-8")
    return path


def config(tmp_path: Path) -> RunConfig:
    return RunConfig(inputs=(str(pairs(tmp_path)),), output=tmp_path / "out", tokenizer="whitespace")


@pytest.fixture
def holder(tmp_path: Path):
    """A separate live process holding the output's lock."""
    out = tmp_path / "out"
    out.mkdir()
    state_dir(out).mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(state_dir(out) / "lock")], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    yield proc
    proc.kill()
    proc.wait()


def test_second_run_is_refused_naming_the_holder(tmp_path: Path, holder: subprocess.Popen, fake_embedders) -> None:
    with pytest.raises(OutputError) as caught:
        run(config(tmp_path), fake_embedders)
    message = str(caught.value)
    assert f"another batchembed run is writing here (pid {holder.pid} on {socket.gethostname()}" in message
    assert "\n" not in message
    assert not (state_dir(tmp_path / "out") / "manifest.json").exists()  # nothing was touched


def test_second_run_exits_5_from_the_cli(tmp_path: Path, holder: subprocess.Popen, tiny_glove_file: Path) -> None:
    args = ["run", str(pairs(tmp_path)), "-o", str(tmp_path / "out"), "--glove", str(tiny_glove_file)]
    result = CliRunner().invoke(app, [*args, "--no-transformer"])
    assert result.exit_code == 5, result.output
    assert f"pid {holder.pid}" in result.output


def test_lock_of_a_killed_run_is_taken_over(tmp_path: Path, holder: subprocess.Popen, fake_embedders, caplog) -> None:
    holder.kill()  # kill -9: the kernel drops its flock, the lock file stays with its pid
    holder.wait()
    assert json.loads((state_dir(tmp_path / "out") / "lock").read_text())["pid"] == holder.pid
    with caplog.at_level(logging.INFO, logger="batchembed.io.lock"):
        summary = run(config(tmp_path), fake_embedders)
    assert summary.exit_code == 0 and summary.pairs_read == 1
    assert f"from pid {holder.pid} (no longer running)" in caplog.text
    assert json.loads((state_dir(tmp_path / "out") / "lock").read_text())["pid"] == os.getpid()


def test_stale_lock_file_without_a_process(tmp_path: Path, fake_embedders) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "out"
    state_dir(out).mkdir(parents=True)
    stale = {"pid": dead.pid, "host": socket.gethostname(), "started": "2020-01-01T00:00:00+0000"}
    (state_dir(out) / "lock").write_text(json.dumps(stale))
    summary = run(config(tmp_path), fake_embedders)
    assert summary.exit_code == 0 and summary.pairs_read == 1 and summary.shards_written == 1
    assert json.loads((state_dir(out) / "lock").read_text())["pid"] == os.getpid()  # taken over, not ignored


def test_lock_is_released_after_a_run_and_after_a_failure(tmp_path: Path, fake_embedders) -> None:
    run(config(tmp_path), fake_embedders)
    with OutputLock(str(state_dir(tmp_path / "out") / "lock"), "out"):
        pass
    bad = RunConfig(inputs=(str(pairs(tmp_path)),), output=tmp_path / "out", tokenizer="flair")
    with pytest.raises(OutputError, match="other settings"):
        run(bad, fake_embedders)
    with OutputLock(str(state_dir(tmp_path / "out") / "lock"), "out"):
        pass


def test_lock_in_the_same_process_conflicts_too(tmp_path: Path) -> None:
    state_dir(tmp_path / "out").mkdir()
    lock = str(state_dir(tmp_path / "out") / "lock")
    with OutputLock(lock, "out"), pytest.raises(OutputError, match=f"pid {os.getpid()}"):
        OutputLock(lock, "out").acquire()
