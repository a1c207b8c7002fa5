"""No wait without a way out: the liveness of the processes a run waits on, and its stall guard.

A run made for cron must end. The driver waits on two kinds of process (the prepare workers,
prepare_pool.py; the writer, writer_process.py), both through concurrent.futures' ProcessPoolExecutor,
which notices a worker that dies but not one that hangs, and in CPython 3.11 not even every one
that dies (see `eager_executor`). So every wait here is a poll: between polls the stage's
Progress is checked, and a stage that finished nothing for a long time while work was pending
ends the run with WorkersLost (exit 8, one line naming the stage) instead of waiting forever.

The stall guard itself (Progress, wait, the limit) is engines/stall.py, shared with the Ray engine.

Stopping a pool is bounded too (`stop_executor`): its processes get a grace period to finish and
are then killed, so neither close() nor the interpreter's exit (which joins every executor's
manager thread) can wait on a hung or half-started process.
"""

from __future__ import annotations

import contextlib
import threading
import time
from concurrent.futures import ProcessPoolExecutor

from batchembed.engines.stall import POLL


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
