"""The stall guard, on every engine: a stage that finishes nothing for a long time while work is
pending ends the run with WorkersLost (exit 8, one line naming the stage) instead of waiting forever.

The limit is generous and measured: STALL_PIECES times the longest a stage has taken so far between
two finished pieces, and never under STALL_FLOOR seconds; `--stall-seconds` (RunConfig.stall_seconds)
or the environment variable BATCHEMBED_STALL_SECONDS sets it outright (docs/reliability.md). The
check runs only while a result is not ready yet, so it costs the hot path nothing.

The local engine watches its prepare workers and its writer process with it (engines/local/); a
Ray run watches its model actors' answers in every prepare actor, and the pieces the prepare actors
finish in the driver (engines/ray.py).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from batchembed.errors import UsageError, WorkersLost

T = TypeVar("T")

STALL_VARIABLE = "BATCHEMBED_STALL_SECONDS"
STALL_FLOOR = 300.0  # seconds: a stage is never called stuck sooner, whatever it measured
STALL_PIECES = 20  # ... nor before 20 times its slowest finished piece
POLL = 0.5  # seconds between liveness checks while a result is not ready
HANG_VARIABLE = "BATCHEMBED_TEST_HANG"  # test hook: "prepare", "write" or "embed" makes that stage sleep forever


def stall_setting(seconds: float | None = None) -> float | None:
    """The stall limit set outright: `seconds` (--stall-seconds), else BATCHEMBED_STALL_SECONDS if
    set; None: measured."""
    if seconds is not None:
        return seconds
    value = os.environ.get(STALL_VARIABLE, "").strip()
    if not value:
        return None
    try:
        parsed = float(value)
    except ValueError:
        parsed = -1.0
    if not parsed > 0:
        raise UsageError(f"{STALL_VARIABLE}={value!r} is not a number of seconds above 0: unset it or give e.g. 600")
    return parsed


def hang_here(stage: str) -> None:
    """The test hook: sleep forever if the environment asks this stage to hang."""
    if os.environ.get(HANG_VARIABLE) == stage:
        while True:
            time.sleep(3600)


class Progress:
    """When a stage last finished a piece, how many it has pending, and its slowest piece so far.
    `seconds`: the limit set outright (RunConfig.stall_seconds), else the environment's or measured."""

    def __init__(self, stage: str, seconds: float | None = None, unit: str = "piece(s)") -> None:
        self.stage, self.unit = stage, unit
        self._fixed = stall_setting(seconds)
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
            self.moved()

    def pending(self, count: int) -> None:
        """Set the work pending outright, for a stage whose results are not futures (a Ray run's tasks)."""
        with self._lock:
            if self._pending == 0 and count:
                self._last = time.monotonic()
            self._pending = count

    def moved(self) -> None:
        """A piece finished: the stage is moving."""
        with self._lock:
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
                f"the {self.stage} stage finished nothing for {idle:.0f} s while {pending} {self.unit} waited on it "
                f"(a process hung?); finished parts are kept: run the same command again "
                f"(the limit, {limit:.0f} s, is set by --stall-seconds or {STALL_VARIABLE})"
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
