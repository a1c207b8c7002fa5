"""A prepare/write worker killed with SIGKILL mid-run costs time, not the run: the pool is
replaced, the lost pieces are redone, and the output equals an uninterrupted run's. Workers that
die again and again stop the run with one line and exit 8, finished parts kept."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import pytest
from conftest import state_dir
from test_resume import output_rows, write_pairs

from batchembed.engines.local.prepare_pool import PREPARE_NAME
from batchembed.engines.local.writer_process import WRITER_NAME


def command(src: Path, out: Path, glove: Path, bert: Path, workers: int) -> list[str]:
    args = [sys.executable, "-m", "batchembed", "run", str(src), "-o", str(out), "-q", "--shard-rows", "40"]
    args += ["--glove", str(glove), "--transformer", str(bert), "--tokenize-workers", str(workers)]
    return args + ["--threads", "1"]


def workers_of(proc: subprocess.Popen, name: str = PREPARE_NAME) -> list[psutil.Process]:
    """The run's spawned processes of one kind, by the name they give themselves: the prepare
    workers, or the writer process (not the resource tracker)."""
    try:
        children = psutil.Process(proc.pid).children()
    except psutil.NoSuchProcess:
        return []
    found = []
    for child in children:
        try:
            if child.name() == name and child.status() != psutil.STATUS_ZOMBIE:  # a killed one may linger
                found.append(child)
        except psutil.Error:
            continue
    return found


def markers(out: Path) -> int:
    done = state_dir(out) / "done"
    return len(list(done.glob("*.json"))) if done.exists() else 0


def wait_for(condition, proc: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline
        time.sleep(0.02)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_glove_file: Path, tiny_bert_dir: Path) -> tuple[Path, list[tuple]]:
    """The input and an uninterrupted run's rows (in-process workers: no pool at all)."""
    directory = tmp_path_factory.mktemp("worker_loss")
    src = write_pairs(directory / "pairs.csv", 1200, seed=3)
    out = directory / "reference"
    subprocess.run(command(src, out, tiny_glove_file, tiny_bert_dir, 0), check=True, timeout=600)
    return src, output_rows(out)


@pytest.mark.slow
@pytest.mark.parametrize("workers, kills", [(1, 1), (2, 1), (1, 2)], ids=["one-worker", "two-workers", "twice"])
def test_a_killed_worker_costs_time_not_the_run(
    tmp_path: Path, reference, tiny_glove_file: Path, tiny_bert_dir: Path, workers: int, kills: int
) -> None:
    src, expected = reference
    out = tmp_path / "out"
    proc = subprocess.Popen(
        command(src, out, tiny_glove_file, tiny_bert_dir, workers), stderr=subprocess.PIPE, text=True
    )
    killed: set[int] = set()
    for k in range(kills):
        wanted = 3 + 5 * k
        alive = lambda: [w for w in workers_of(proc) if w.pid not in killed]  # noqa: E731, B023
        wait_for(lambda: markers(out) >= wanted and len(alive()) == workers, proc)  # noqa: B023
        victims = alive()
        assert victims
        victims[0].kill()  # SIGKILL
        killed.add(victims[0].pid)
    code = proc.wait(timeout=600)
    stderr = proc.stderr.read() if proc.stderr else ""
    assert code == 0, stderr
    assert "Traceback" not in stderr
    assert output_rows(out) == expected
    assert pq.read_table(out).num_rows == len(expected)


@pytest.mark.slow
def test_workers_that_keep_dying_stop_the_run_with_one_line(
    tmp_path: Path, reference, tiny_glove_file: Path, tiny_bert_dir: Path
) -> None:
    src, expected = reference
    out = tmp_path / "out"
    proc = subprocess.Popen(command(src, out, tiny_glove_file, tiny_bert_dir, 1), stderr=subprocess.PIPE, text=True)
    wait_for(lambda: markers(out) >= 2, proc)
    finished = threading.Event()

    def kill_every_worker() -> None:
        while not finished.is_set():
            for worker in workers_of(proc):
                with contextlib.suppress(psutil.Error):
                    worker.kill()
            time.sleep(0.005)

    killer = threading.Thread(target=kill_every_worker, daemon=True)
    killer.start()
    try:
        code = proc.wait(timeout=600)
    finally:
        finished.set()
        killer.join()
    stderr = proc.stderr.read() if proc.stderr else ""
    assert code == 8, stderr
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "died" in errors[0] and "finished parts are kept" in errors[0], stderr
    kept = markers(out)
    assert kept >= 2
    resumed = subprocess.run(command(src, out, tiny_glove_file, tiny_bert_dir, 1), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert output_rows(out) == expected


@pytest.mark.slow
def test_a_killed_writer_process_stops_the_run_with_one_line(
    tmp_path: Path, reference, tiny_glove_file: Path, tiny_bert_dir: Path
) -> None:
    """The writer process holds the open parts: its loss stops the run (exit 8, one line), the
    marked parts are kept, and the next run ends with the rows of an uninterrupted one."""
    src, expected = reference
    out = tmp_path / "out"
    proc = subprocess.Popen(command(src, out, tiny_glove_file, tiny_bert_dir, 1), stderr=subprocess.PIPE, text=True)
    wait_for(lambda: markers(out) >= 3 and len(workers_of(proc, WRITER_NAME)) == 1, proc)
    workers_of(proc, WRITER_NAME)[0].kill()
    code = proc.wait(timeout=600)
    stderr = proc.stderr.read() if proc.stderr else ""
    assert code == 8, stderr
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "writes the parts died" in errors[0], stderr
    assert markers(out) >= 3
    resumed = subprocess.run(command(src, out, tiny_glove_file, tiny_bert_dir, 1), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert output_rows(out) == expected
