"""No wait without a way out: the liveness of the processes a run waits on, and its stall guard.

A run made for cron must end. The driver waits on two kinds of process (the prepare workers,
workers.py; the writer, writer_process.py), both through concurrent.futures' ProcessPoolExecutor,
which notices a worker that dies but not one that hangs, and in CPython 3.11 not even every one
that dies (see `eager_executor`). So every wait here is a poll: between polls the stage's
Progress is checked, and a stage that finished nothing for a long time while work was pending
ends the run with WorkersLost (exit 8, one line naming the stage) instead of waiting forever.

The limit is generous and measured: STALL_PIECES times the slowest piece the stage has finished
so far, and never under STALL_FLOOR seconds; the environment variable BATCHEMBED_STALL_SECONDS
sets it outright (docs/reliability.md). The check runs only while a result is not ready yet, so
it costs the hot path nothing.

Stopping a pool is bounded too (`stop_executor`): its processes get a grace period to finish and
are then killed, so neither close() nor the interpreter's exit (which joins every executor's
manager thread) can wait on a hung or half-started process.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from batchembed.errors import UsageError, WorkersLost

T = TypeVar("T")

STALL_VARIABLE = "BATCHEMBED_STALL_SECONDS"
STALL_FLOOR = 300.0  # seconds: a stage is never called stuck sooner, whatever it measured
STALL_PIECES = 20  # ... nor before 20 times its slowest finished piece
POLL = 0.5  # seconds between liveness checks while a result is not ready
HANG_VARIABLE = "BATCHEMBED_TEST_HANG"  # test hook: "prepare" or "write" makes that stage's process sleep forever


def stall_setting() -> float | None:
    """BATCHEMBED_STALL_SECONDS, if set: the stall limit in seconds, instead of the measured one."""
    value = os.environ.get(STALL_VARIABLE, "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise UsageError(f"{STALL_VARIABLE}={value!r} is not a number of seconds above 0: unset it or give e.g. 600")
    return seconds


def hang_here(stage: str) -> None:
    """The test hook: sleep forever if the environment asks this stage to hang."""
    if os.environ.get(HANG_VARIABLE) == stage:
        while True:
            time.sleep(3600)


class Progress:
    """When a stage last finished a piece, how many it has pending, and its slowest piece so far."""

    def __init__(self, stage: str) -> None:
        self.stage = stage
        self._fixed = stall_setting()
        self._lock = threading.Lock()
        self._pending = 0
        self._last = time.monotonic()
        self._slowest = 0.0
        self.stalled = False

    def watch(self, future: Future[T]) -> Future[T]:
        """Count `future` as pending until it completes; a success is progress."""
        with self._lock:
            if self._pending == 0:  # the stage was idle until now: its clock starts here
                self._last = time.monotonic()
            self._pending += 1
        future.add_done_callback(self._done)
        return future

    def _done(self, future: Future[Any]) -> None:
        succeeded = not future.cancelled() and future.exception() is None
        with self._lock:
            self._pending -= 1
            if succeeded:
                now = time.monotonic()
                self._slowest = max(self._slowest, now - self._last)
                self._last = now

    def limit(self) -> float:
        if self._fixed is not None:
            return self._fixed
        with self._lock:
            return max(STALL_FLOOR, STALL_PIECES * self._slowest)

    def check(self) -> None:
        """Raise WorkersLost if work is pending and nothing finished within the limit."""
        limit = self.limit()
        with self._lock:
            idle, pending = time.monotonic() - self._last, self._pending
        if pending and idle > limit:
            self.stalled = True
            raise WorkersLost(
                f"the {self.stage} stage finished nothing for {idle:.0f} s while {pending} piece(s) waited on it "
                f"(a process hung?); finished parts are kept: run the same command again "
                f"(the limit, {limit:.0f} s, is set by the environment variable {STALL_VARIABLE})"
            )


def wait(
    future: Future[T], progress: Progress, timeout: float | None = None, lost: Callable[[], bool] | None = None
) -> T:
    """future.result(timeout), checking between polls the stage's progress (see the module's note)
    and, with `lost`, whether a process of the pool that owes the result has died: then the pool is
    broken (BrokenProcessPool), whether or not its manager thread noticed. It may not: a worker
    killed while it writes a result leaves half a message in the result pipe, and the manager
    waits for the rest forever."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        step = POLL if deadline is None else max(0.0, min(POLL, deadline - time.monotonic()))
        try:
            return future.result(step)
        except TimeoutError:
            if deadline is not None and time.monotonic() >= deadline:
                raise
            if lost is not None and lost():
                raise BrokenProcessPool("a process of the pool died") from None
            progress.check()


def died(executor: ProcessPoolExecutor) -> bool:
    """A process of `executor` has exited: during a run, its workers only end when killed."""
    processes = list((getattr(executor, "_processes", None) or {}).values())
    return any(process.exitcode is not None for process in processes)


def eager_executor(workers: int, initializer: object, initargs: tuple[object, ...]) -> ProcessPoolExecutor:
    """A spawn-context pool that starts all its workers at its first task, before its manager
    thread starts watching them.

    CPython 3.11 spawns the workers of a non-fork pool one per submit, after the manager thread
    has started: a worker spawned while the manager is handling another worker's death is never
    terminated, and the manager then joins it forever (issue 24: a worker killed while it starts
    hangs the run). Starting them all up front, as CPython does for fork pools, closes that race.
    """
    import multiprocessing

    executor = ProcessPoolExecutor(  # type: ignore[call-overload]  # initargs typed by the caller
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=initializer,  # type: ignore[arg-type]
        initargs=initargs,
    )
    if hasattr(executor, "_safe_to_dynamically_spawn_children"):
        executor._safe_to_dynamically_spawn_children = False  # type: ignore[attr-defined]
    return executor


def stop_executor(executor: ProcessPoolExecutor, grace: float) -> None:
    """Shut `executor` down, giving its processes `grace` seconds to finish their current task and
    then killing them, so that this never waits on a hung or half-started process."""
    processes = list((getattr(executor, "_processes", None) or {}).values())
    manager = getattr(executor, "_executor_manager_thread", None)
    results = getattr(executor, "_result_queue", None)
    executor.shutdown(wait=False, cancel_futures=True)
    deadline = time.monotonic() + grace
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
    for process in processes:
        if process.is_alive():
            process.kill()
    for process in processes:
        process.join(5)
    _release(manager, results)


def kill_processes(executor: ProcessPoolExecutor) -> None:
    """Abandon a broken pool: kill its processes at once (none of its work is wanted any more) and
    make sure its manager thread ends, which the interpreter's exit waits for."""
    processes = list((getattr(executor, "_processes", None) or {}).values())
    manager = getattr(executor, "_executor_manager_thread", None)
    results = getattr(executor, "_result_queue", None)
    for process in processes:
        if process.is_alive():
            process.kill()
    for process in processes:
        process.join(5)
    threading.Thread(target=_release, args=(manager, results), name="batchembed-release", daemon=True).start()


def _release(manager: threading.Thread | None, results: object) -> None:
    """Once a pool's processes are all dead, its manager thread ends, unless it waits for the rest
    of a half-written result: closing this process's end of the result pipe (no process writes to
    it any more) gives it an end of file, so it ends too."""
    if manager is None:
        return
    manager.join(POLL)
    writer = getattr(results, "_writer", None)
    if manager.is_alive() and writer is not None:
        with contextlib.suppress(OSError):
            writer.close()
    manager.join(30)
