"""The write step in a process of its own: the local engine's parts, streamed as pieces are embedded.

One process, so a shard's pieces arrive in the order they were sent (one worker takes its
tasks in order) and each part is one stream, never held whole: the model's process sends each
piece's rows and distances as soon as the model is done with it, and gets back, per shard, the
part's size and SHA-256 for the done marker that the task (stages/task.py) writes after it. Spawned, never
forked (the parent holds torch's threads and possibly a CUDA context); it imports no torch.

A writer process that dies takes its open parts with it: the run stops with WorkersLost (exit
8, one line), every part already marked kept, and the next run redoes the rest. So does one
that dies while it starts, and one that hangs: every wait on it polls its progress
(liveness.py), and closing it kills it if it does not stop within the stall limit.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace

import pyarrow as pa

from batchembed.engines.local.liveness import died, eager_executor, stop_executor
from batchembed.engines.stall import Progress, hang_here, wait
from batchembed.errors import WorkersLost
from batchembed.io.layout import OutputLayout
from batchembed.stages.assemble import ShardResult
from batchembed.stages.embed import EmbeddedShard
from batchembed.stages.prepare import PreparedShard
from batchembed.stages.write import ShardWriters


class WriterProcess:
    """ShardWriters in a spawned process; the same methods, `finish` returning a future."""

    def __init__(self, layout: OutputLayout, schema: pa.Schema, stall_seconds: float | None = None) -> None:
        self.layout = layout
        self.progress = Progress("write", stall_seconds)
        self._executor = eager_executor(1, _start, (layout, schema))
        self._appends: list[Future[None]] = []
        self._lock = threading.Lock()  # the local engine's task threads share this writer

    def append(self, shard_id: str, prepared: PreparedShard, embedded: EmbeddedShard) -> None:
        # the model's inputs stay behind: writing needs the rows and the distances only
        light = replace(prepared, model_inputs={})
        with self._lock:
            self._appends = [f for f in self._appends if not f.done() or f.exception() is not None]
            try:
                self._appends.append(self.progress.watch(self._executor.submit(_append, shard_id, light, embedded)))
            except (BrokenProcessPool, OSError) as exc:  # OSError: it died while it was being spawned
                raise _lost(BrokenProcessPool(str(exc))) from exc

    def finish(self, shard_id: str) -> Future[ShardResult]:
        with self._lock:
            failed = [f for f in self._appends if f.done() and f.exception() is not None]
        if failed:  # an append failed: its shard's part cannot be complete
            raise _lost(failed[0].exception())  # type: ignore[arg-type]
        try:
            future = self.progress.watch(self._executor.submit(_finish, shard_id))
            return _Checked(future, self.progress, lambda: died(self._executor))
        except (BrokenProcessPool, OSError) as exc:
            raise _lost(BrokenProcessPool(str(exc))) from exc

    def discard(self, shard_id: str) -> None:
        with contextlib.suppress(BrokenProcessPool, OSError):  # its temporary file is removed by the next run
            self._executor.submit(_discard, shard_id)

    def remove(self, shard_id: str) -> None:
        self.layout.part(shard_id).delete()

    def close(self) -> None:
        """Stop the writer process: killed if it does not stop within the stall limit (at once, if
        it stalled), so closing never waits forever."""
        stop_executor(self._executor, grace=0.0 if self.progress.stalled else self.progress.limit())

    def __enter__(self) -> WriterProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _lost(exc: BaseException) -> BaseException:
    if isinstance(exc, BrokenProcessPool):
        return WorkersLost("the process that writes the parts died; the parts already marked are kept: run again")
    return exc


class _Checked(Future[ShardResult]):
    """A finish's future whose error, if the writer process died, is WorkersLost."""

    def __init__(self, inner: Future[ShardResult], progress: Progress, lost: Callable[[], bool]) -> None:
        super().__init__()
        self._inner, self._progress, self._lost = inner, progress, lost

    def done(self) -> bool:
        return self._inner.done()

    def cancel(self) -> bool:
        return self._inner.cancel()

    def result(self, timeout: float | None = None) -> ShardResult:
        try:
            return wait(self._inner, self._progress, timeout, self._lost)
        except BrokenProcessPool as exc:
            raise _lost(exc) from exc


_writers: ShardWriters | None = None


WRITER_NAME = "batchembed-wri"  # the process's name in ps/top (15 characters at most)


def _start(layout: OutputLayout, schema: pa.Schema) -> None:
    global _writers
    import signal

    from batchembed.engines.local.prepare_pool import name_process

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the run's own process stops the writer
    name_process(WRITER_NAME)
    _writers = ShardWriters(layout, schema)


def _append(shard_id: str, prepared: PreparedShard, embedded: EmbeddedShard) -> None:
    assert _writers is not None, "writer process not started"
    hang_here("write")
    _writers.append(shard_id, prepared, embedded)


def _finish(shard_id: str) -> ShardResult:
    assert _writers is not None, "writer process not started"
    return _writers.finish(shard_id).result()


def _discard(shard_id: str) -> None:
    assert _writers is not None, "writer process not started"
    _writers.discard(shard_id)
