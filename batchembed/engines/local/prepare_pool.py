"""The prepare step in worker processes, so the process that drives the model only runs it
(the parts are written by writer_process.py, streamed as pieces are embedded).

Workers are spawned (never forked: the parent holds torch's threads and possibly a
CUDA context) and import neither flair nor torch: each gets the tokenizer's name and
the models' Preparers (picklable: a fast tokenizer's Rust backend, a GloVe vocabulary)
once, at start-up, then turns InputShards into PreparedShards (numpy arrays, cheap to
pickle back).

A worker that dies (killed, out of memory) costs time, not the run: its pool is replaced by a
fresh one and every piece the old pool had not finished is handed to the new one. Preparing
and writing are deterministic, and a part is written in one step (io/storage.py), so a redone
piece gives the same result an uninterrupted run would. Only a pool that dies again and again
without finishing anything stops the run (WorkersLost, exit 8), its finished parts kept.
Workers ignore SIGINT: a Ctrl-C reaches the whole process group, and the run's own process
is the one that stops them.

No wait is without a way out (liveness.py): the pool starts all its workers together, so a
worker killed while it starts is seen like any other loss; every wait on a piece polls the
stage's progress, so a worker that hangs ends the run with WorkersLost (exit 8) after the stall
limit; and closing a pool kills what does not stop within a grace period.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from batchembed.embedders.base import Preparer
from batchembed.engines.local.liveness import died, eager_executor, kill_processes, stop_executor
from batchembed.engines.stall import Progress, hang_here, wait
from batchembed.errors import WorkersLost
from batchembed.io.reader import InputShard
from batchembed.stages.prepare import PreparedShard, prepare
from batchembed.tokenize import TokenizeMany, TokenizerName, get_tokenizer, remembering

log = logging.getLogger(__name__)

MAX_LOSSES = 3  # pools lost in a row, nothing finished in between, before the run gives up
T = TypeVar("T")


class StagePool:
    """The prepare stage in `workers` processes: prepare(piece) before the model. A pool that
    loses a worker is replaced, its unfinished work redone (see the module's note)."""

    def __init__(
        self,
        tokenizer: TokenizerName,
        preparers: Sequence[Preparer],
        workers: int,
        stall_seconds: float | None = None,
    ) -> None:
        self.workers = workers
        self._state = _WorkerState(tokenizer, list(preparers))
        self._lock = threading.Lock()
        self._generation = 0  # which pool: work submitted to an older one that broke is redone
        self._losses = 0  # pools lost since a piece last finished
        self._closed = False
        self.progress = Progress("prepare", stall_seconds)
        self._executor = self._new_executor()
        log.info("preparing pieces in %d worker processes", workers)

    def _new_executor(self) -> ProcessPoolExecutor:
        return eager_executor(self.workers, _start_worker, (self._state,))

    def start(self) -> None:
        """Start the worker processes now rather than at the first task."""
        for _ in range(self.workers):
            self._submit(_started)

    def prepare(self, shard: InputShard) -> Future[PreparedShard]:
        return _Redoable(self, _prepare_in_worker, (shard,))

    def close(self) -> None:
        """Stop the workers: those that do not stop within the stall limit (none, if the stage
        stalled) are killed, so closing never waits forever."""
        with self._lock:
            self._closed = True
            executor = self._executor
        stop_executor(executor, grace=0.0 if self.progress.stalled else self.progress.limit())

    def __enter__(self) -> StagePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- losing a worker ---------------------------------------------------------------------

    def _submit(self, fn: Callable[..., T], *args: Any) -> tuple[Future[T], int]:
        """Submit to the current pool, replacing it first if it is already broken."""
        while True:
            with self._lock:
                executor, generation = self._executor, self._generation
            try:
                return self.progress.watch(executor.submit(fn, *args)), generation
            except (BrokenProcessPool, OSError):  # OSError: a worker died while it was being spawned
                self._replace(generation)

    def _replace(self, broken: int) -> None:
        """Replace pool number `broken` by a fresh one (once, however many pieces saw it break)."""
        with self._lock:
            if self._closed:
                raise WorkersLost("the worker processes stopped while the run was ending")
            if self._generation != broken:
                return  # another piece replaced it already
            self._losses += 1
            if self._losses > MAX_LOSSES:
                raise WorkersLost(
                    f"the worker processes that prepare pieces died {self._losses} times in a row "
                    "without finishing a piece (killed? out of memory?); finished parts are kept: run the same "
                    "command again, with fewer --tokenize-workers or --tokenize-workers 0"
                )
            log.warning("a worker process died (killed, or out of memory); starting new workers and redoing its pieces")
            old = self._executor
            self._executor = self._new_executor()
            self._generation += 1
        kill_processes(old)  # the survivors of a broken pool do nothing useful, and might never stop
        old.shutdown(wait=False, cancel_futures=True)

    def _lost(self, generation: int) -> Callable[[], bool]:
        """Whether pool number `generation` is lost: replaced already, or one of its workers died
        (its manager thread may not notice: liveness.wait)."""

        def lost() -> bool:
            with self._lock:
                current, executor = self._generation, self._executor
            return generation != current or died(executor)

        return lost

    def _finished(self) -> None:
        with self._lock:
            self._losses = 0


class _Redoable(Future, Generic[T]):  # type: ignore[type-arg]
    """A pool's future that survives the pool: if the pool breaks before the work is done, the work
    goes to the pool that replaces it. Only done(), cancel() and result() are used (stages/task.py)."""

    def __init__(self, pool: StagePool, fn: Callable[..., T], args: tuple[Any, ...]) -> None:
        super().__init__()
        self._pool, self._fn, self._args = pool, fn, args
        self._inner, self._generation = pool._submit(fn, *args)

    def done(self) -> bool:
        return self._inner.done()

    def cancel(self) -> bool:
        return self._inner.cancel()

    def cancelled(self) -> bool:
        return self._inner.cancelled()

    def running(self) -> bool:
        return self._inner.running()

    def exception(self, timeout: float | None = None) -> BaseException | None:
        try:
            self.result(timeout)
        except BaseException as exc:  # noqa: BLE001 - the work's own exception, handed back as such
            return exc
        return None

    def result(self, timeout: float | None = None) -> T:
        while True:
            try:
                value = wait(self._inner, self._pool.progress, timeout, self._pool._lost(self._generation))
            except BrokenProcessPool:
                self._pool._replace(self._generation)
                self._inner, self._generation = self._pool._submit(self._fn, *self._args)
                continue
            self._pool._finished()
            return value

    def add_done_callback(self, fn: Callable[[Future[T]], object]) -> None:
        raise NotImplementedError("a redoable future has no callbacks: call result()")


@dataclass
class _WorkerState:
    tokenizer: TokenizerName
    preparers: list[Preparer]
    tokenize_many: TokenizeMany | None = None


_worker_state: _WorkerState | None = None


PREPARE_NAME = "batchembed-pre"  # the process's name in ps/top (15 characters at most)


def name_process(name: str) -> None:
    """Name this process for ps, top and kill scripts (Linux; elsewhere a no-op)."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME
    except (OSError, AttributeError):
        pass


def _start_worker(state: _WorkerState) -> None:
    global _worker_state
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the run's own process stops the workers
    name_process(PREPARE_NAME)
    state.tokenize_many = remembering(get_tokenizer(state.tokenizer))
    _worker_state = state


def _started() -> None:
    pass


def _prepare_in_worker(shard: InputShard) -> PreparedShard:
    hang_here("prepare")
    assert _worker_state is not None and _worker_state.tokenize_many is not None, "worker not started by StagePool"
    return prepare(shard, _worker_state.tokenize_many, _worker_state.preparers)
