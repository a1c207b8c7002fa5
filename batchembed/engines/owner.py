"""Who may still write to the output: a run that ends takes its Ray work with it.

The driver holds the output (io/lease.py) and, for a Ray run, starts a small owner actor.
Before each part and each marker a worker asks it whether the run is still on. The driver
tells it when the run ends, however it ends (finished, stopped, lease lost), before it lets
the output go; a driver killed outright takes the actor with it, since Ray ends the actors
of a dead driver. On a local disk the worker also checks that the output's lock is still
held (the kernel drops an flock the moment its holder dies).

The owner actor is also where the workers' progress meets the driver, since Ray actors cannot
call back: each prepare actor reports every piece it writes (`report`, one call that nobody
waits for), and registers itself, so the driver can show pairs per piece, see a stage that
stops moving (engines/stall.py), and end a hung worker when it ends the run.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from typing import Any

from batchembed.io.layout import OutputLayout

CHECK_SECONDS = 30.0  # an owner that does not answer in this time counts as gone


class RunEnded(Exception):
    """The run that owns the output has ended or lost it: write nothing more."""


class _OwnerActor:
    def __init__(self) -> None:
        self.active = True
        self.pairs = 0  # pairs of the pieces the workers have written
        self.workers: list[Any] = []

    def is_active(self) -> bool:
        return self.active

    def end(self) -> None:
        self.active = False

    def written(self, pairs: int) -> None:
        self.pairs += pairs

    def progress(self) -> tuple[int, int]:
        return self.pairs, len(self.workers)

    def register(self, worker: Any) -> None:
        self.workers.append(worker)

    def registered(self) -> list[Any]:
        return self.workers


@dataclass(frozen=True)
class OwnerCheck:
    """Picklable: what a worker calls before it commits anything."""

    actor: Any
    output: str
    lock_path: str | None  # the flock file of a local output

    def check(self) -> None:
        import ray

        try:
            active = ray.get(self.actor.is_active.remote(), timeout=CHECK_SECONDS)
        except Exception as exc:  # the actor died with its driver, or the driver cannot be reached
            raise RunEnded(f"{self.output}: the run that owns this output is gone ({type(exc).__name__})") from exc
        if not active:
            raise RunEnded(f"{self.output}: the run that owns this output has ended")
        if self.lock_path is not None and not lock_held(self.lock_path):
            raise RunEnded(f"{self.output}: no run holds the output's lock any more")

    def report(self, event: object) -> None:
        """run_task's report: a piece written counts toward the driver's progress (calls from one
        worker reach the actor in order, so a task's pieces are counted before its result arrives)."""
        from batchembed.stages.task import PieceWritten

        if isinstance(event, PieceWritten):
            self.actor.written.remote(event.pairs)

    def register(self, worker: Any) -> None:
        """The calling worker's handle, so the driver can end it with the run (`RunOwner.end`)."""
        self.actor.register.remote(worker)


def lock_held(path: str) -> bool:
    """True if some process holds an flock on `path` (or it cannot be told from here)."""
    import fcntl

    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:  # not on this machine's disk: the owner actor alone decides
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        return exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN)
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


class RunOwner:
    """The driver's side: the owner actor, ended before the output is let go."""

    def __init__(self, actor: Any, check: OwnerCheck) -> None:
        self.actor, self._check = actor, check

    @classmethod
    def start(cls, layout: OutputLayout) -> RunOwner:
        import ray

        actor = ray.remote(num_cpus=0, max_restarts=0)(_OwnerActor).remote()
        lock = layout.state.join("lock").path if layout.state.is_local else None
        return cls(actor, OwnerCheck(actor, str(layout.data), lock))

    def check_handle(self) -> OwnerCheck:
        return self._check

    def progress(self) -> tuple[int, int]:
        """The pairs of the pieces written so far, and how many workers have started."""
        import ray

        pairs, workers = ray.get(self.actor.progress.remote(), timeout=CHECK_SECONDS)
        return int(pairs), int(workers)

    def end(self, kill_workers: bool = False) -> None:
        """No part or marker after this; with `kill_workers` (a run that did not finish), the
        registered workers are killed too, so none that hangs outlives its run."""
        import ray

        try:
            ray.get(self.actor.end.remote(), timeout=CHECK_SECONDS)
            if kill_workers:
                for worker in ray.get(self.actor.registered.remote(), timeout=CHECK_SECONDS):
                    ray.kill(worker, no_restart=True)
        finally:
            ray.kill(self.actor)
