"""No wait without a way out (issue 24). A batchembed child process (a prepare worker or the writer)
killed with SIGKILL at any moment, from its spawn (still a plain `python`, importing) to the run's
end, ends the run within a bound: finished (the work redone), or WorkersLost (exit 8, one line); and
a resume then equals a fresh run. A stage that stops moving (a process that hangs) ends the run
with WorkersLost naming the stage, after the stall limit.

The runs are in this process (the fake embedder, tiny inputs), each in a thread that must end within
RUN_BOUND seconds, so the test itself can never hang; the victims are this process's children.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psutil
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from conftest import FakeEmbedder, ended_within
from test_resume import output_rows, write_pairs

from batchembed.config import EmbedOptions, RunConfig
from batchembed.engines.local import run
from batchembed.engines.stall import HANG_VARIABLE, STALL_VARIABLE
from batchembed.errors import ExitCode, WorkersLost

RUN_BOUND = 120.0  # seconds: far above a run here (a few seconds), far below "forever"
RUNS = 32


def config(src: Path, out: Path, workers: int) -> RunConfig:
    embed = EmbedOptions(tokenize_workers=workers, threads=1)
    return RunConfig(inputs=(str(src),), output=out, shard_rows=8, tokenizer="whitespace", embed=embed)


def embedders() -> list[FakeEmbedder]:
    return [FakeEmbedder("static", contextual=False), FakeEmbedder("ctx")]


def bounded_run(src: Path, out: Path, workers: int) -> BaseException | None:
    """Run to the end; the exception it ended with, None if it finished. Fails the test if it has
    not ended within RUN_BOUND."""
    ended = ended_within(lambda: run(config(src, out, workers), embedders()), RUN_BOUND)
    return ended if isinstance(ended, BaseException) else None


def spawned_children() -> list[psutil.Process]:
    """This process's spawned children (prepare workers and the writer; not the resource tracker)."""
    found = []
    for child in psutil.Process().children():
        try:
            if "spawn_main" in " ".join(child.cmdline()) and child.status() != psutil.STATUS_ZOMBIE:
                found.append(child)
        except psutil.Error:
            continue
    return found


class Killer(threading.Thread):
    """Kills the `nth` child process spawned from now on, `delay` seconds after it appears."""

    def __init__(self, nth: int, delay: float) -> None:
        super().__init__(daemon=True)
        self.nth, self.delay = nth, delay
        self.before = {p.pid for p in spawned_children()}
        self.stop = threading.Event()
        self.killed: str | None = None  # the victim's name when it died: python (starting) or batchembed-*

    def run(self) -> None:
        seen: list[psutil.Process] = []
        while not self.stop.is_set():
            for child in spawned_children():
                if child.pid not in self.before and child.pid not in {p.pid for p in seen}:
                    seen.append(child)
            if len(seen) >= self.nth:
                victim = seen[self.nth - 1]
                if self.stop.wait(self.delay):
                    return
                try:
                    name = victim.name()
                    victim.kill()
                    self.killed = name
                except psutil.Error:
                    pass
                return
            time.sleep(0.002)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, list[tuple]]]:
    """A CSV and a Parquet input (40 pairs, 5 shards each), with a fresh in-process run's rows."""
    directory = tmp_path_factory.mktemp("process_loss")
    csv = write_pairs(directory / "pairs.csv", 40, seed=7)
    parquet = directory / "pairs.parquet"
    pq.write_table(pacsv.read_csv(csv), parquet)
    found = {}
    for src in (csv, parquet):
        fresh = directory / f"fresh-{src.suffix[1:]}"
        run(config(src, fresh, 0), embedders())
        found[src.suffix[1:]] = (src, output_rows(fresh))
    return found


@pytest.mark.slow
def test_a_child_killed_at_any_moment_ends_the_run_and_a_resume_equals_a_fresh_run(
    tmp_path: Path, inputs: dict[str, tuple[Path, list[tuple]]]
) -> None:
    rng = random.Random(24)
    outcomes: list[tuple[Any, ...]] = []
    for k in range(RUNS):
        workers = (0, 1, 2, 2, 1)[k % 5]
        fmt = ("csv", "parquet")[k % 2]
        src, expected = inputs[fmt]
        out = tmp_path / f"out{k}"
        # one of the run's children (its workers, then its writer), during start-up or later
        startup = rng.random() < 0.5
        delay = rng.uniform(0, 0.3) if startup else rng.uniform(0.3, 3.0)
        killer = Killer(nth=rng.randint(1, workers + 1), delay=delay)
        killer.start()
        ended = bounded_run(src, out, workers)
        killer.stop.set()
        killer.join(5)
        if ended is not None:
            assert isinstance(ended, WorkersLost), repr(ended)  # nothing else: no traceback, no other error
            assert ended.exit_code == ExitCode.WORKERS_LOST and "\n" not in str(ended)
        assert bounded_run(src, out, workers) is None  # the resume finishes
        assert output_rows(out) == expected, (k, workers, fmt, killer.killed)
        outcomes.append((workers, fmt, killer.killed, type(ended).__name__))
    killed = [o for o in outcomes if o[2] is not None]
    print(f"{len(killed)} of {RUNS} kills landed:", sorted(Counter((o[0], o[2], o[3]) for o in killed).items()))
    assert len(killed) >= RUNS // 3, outcomes  # the test killed something often enough to mean it
    assert any(o[2] == "python" for o in killed), outcomes  # ... during start-up, among others


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["prepare", "write"])
def test_a_stage_that_stops_moving_ends_the_run_with_one_line(
    tmp_path: Path, inputs: dict[str, tuple[Path, list[tuple]]], monkeypatch: pytest.MonkeyPatch, stage: str
) -> None:
    src, expected = inputs["csv"]
    out = tmp_path / "out"
    monkeypatch.setenv(HANG_VARIABLE, stage)  # read by the worker processes, which inherit it
    monkeypatch.setenv(STALL_VARIABLE, "2")
    ended = bounded_run(src, out, 1)
    assert isinstance(ended, WorkersLost), repr(ended)
    assert ended.exit_code == ExitCode.WORKERS_LOST
    assert f"the {stage} stage finished nothing for" in str(ended) and "\n" not in str(ended)
    assert not spawned_children()  # the hung process was killed, not left behind
    monkeypatch.delenv(HANG_VARIABLE)
    monkeypatch.delenv(STALL_VARIABLE)  # 2 s is shorter than a worker's start-up on a busy machine
    assert bounded_run(src, out, 1) is None
    assert output_rows(out) == expected


def test_the_stall_limit_setting_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    from batchembed.engines.stall import STALL_FLOOR, Progress
    from batchembed.errors import UsageError

    monkeypatch.setenv(STALL_VARIABLE, "soon")
    with pytest.raises(UsageError, match=STALL_VARIABLE):
        Progress("prepare")
    monkeypatch.setenv(STALL_VARIABLE, "7.5")
    assert Progress("prepare").limit() == 7.5
    assert Progress("prepare", 2.0).limit() == 2.0  # --stall-seconds wins over the environment
    monkeypatch.delenv(STALL_VARIABLE)
    assert Progress("prepare").limit() == STALL_FLOOR
    with pytest.raises(UsageError, match="stall.seconds must be above 0"):  # named as the caller names it
        RunConfig(inputs=("pairs.csv",), output="out", stall_seconds=0)


def test_a_wait_on_work_that_never_comes_raises_after_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    from concurrent.futures import Future

    from batchembed.engines.stall import Progress, wait

    monkeypatch.setenv(STALL_VARIABLE, "0.3")
    progress = Progress("write")
    never: Future[int] = progress.watch(Future())
    started = time.monotonic()
    with pytest.raises(WorkersLost, match="the write stage finished nothing for"):
        wait(never, progress)
    assert time.monotonic() - started < 30
    done: Future[int] = progress.watch(Future())
    done.set_result(3)
    assert wait(done, progress) == 3


@pytest.mark.slow
def test_the_cli_stops_a_hung_stage_with_exit_8_and_one_line(tmp_path: Path, tiny_glove_file: Path) -> None:
    src = write_pairs(tmp_path / "pairs.csv", 40, seed=7)
    args = [sys.executable, "-m", "batchembed", "run", str(src), "-o", str(tmp_path / "out"), "-q"]
    args += ["--glove", str(tiny_glove_file), "--no-transformer", "--tokenizer", "whitespace"]
    args += ["--shard-rows", "8", "--tokenize-workers", "1", "--threads", "1", "--stall-seconds", "2"]
    env = {**os.environ, HANG_VARIABLE: "prepare"}
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=RUN_BOUND * 2)
    assert done.returncode == ExitCode.WORKERS_LOST, done.stderr
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "prepare stage" in errors[0], done.stderr
