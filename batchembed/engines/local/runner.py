"""The default engine: the planned tasks run by `stages/task.run_task` on this machine.

    task threads     TASK_THREADS tasks at a time, each `run_task` (read, then the steps below);
                     two, so the model never idles while one task drains at its file's end
    workers          processes (spawned): prepare (tokenize, subword-encode, targets, arrays)
    model            embed: only the model forward, gathers and distances, in this thread
                     (a CPU) or a model thread of its own (a GPU, or one torch thread)
    writer process   assemble each piece and stream it into its shard's part
    run_task         writes each part's done marker, after the part, in its task's thread

So the process that drives the model never tokenizes, builds tables or writes Parquet: while
the model runs piece n, the workers prepare pieces n+1.. and the writer writes piece n-1.
Without workers (--tokenize-workers 0) prepare and write run in the task threads. How many
workers and torch threads: batchembed/hardware.py.

The driver (engines/job.py) plans the tasks and counts what they report; this module only
places the steps, as engines/ray.py places the same function on Ray actors.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from batchembed.config import RunConfig
from batchembed.embedders.base import Embedder, Preparer
from batchembed.embedders.load import choose_device
from batchembed.engines.job import run_job
from batchembed.engines.local.prepare_pool import StagePool
from batchembed.engines.local.writer_process import WriterProcess
from batchembed.hardware import choose_layout
from batchembed.io.markers import DoneMarker, part_verified
from batchembed.io.reader import InputShard
from batchembed.results.summary import RunSummary
from batchembed.stages.embed import EmbeddedShard, embed
from batchembed.stages.pending import Pending, Ready
from batchembed.stages.prepare import PreparedShard, prepare
from batchembed.stages.task import (
    PieceWritten,
    ProgressCallback,
    Task,
    TaskContext,
    TaskEvent,
    TaskResult,
    Writer,
    run_task,
)
from batchembed.stages.write import ShardWriters
from batchembed.tokenize import get_tokenizer, remembering

TASK_THREADS = 2
EMBED_AHEAD = 2  # pieces a task hands to the model before waiting for the oldest
WRITES_AHEAD = 4  # parts a task has being finished before it waits for the oldest
VERIFIERS = 32  # concurrent part reads when checking parts on object storage

__all__ = ["run"]


def run(config: RunConfig, embedders: Sequence[Embedder], on_progress: ProgressCallback | None = None) -> RunSummary:
    """Process all inputs into `config.output` on this machine, resuming what an earlier run left."""
    return run_job(config, embedders, LocalRunner(config, embedders), on_progress)


class _Stopped(Exception):
    """The run is ending (an error elsewhere, Ctrl-C): a task thread writes nothing more."""


class LocalRunner:
    """The tasks on this machine (engines/job.py's TaskRunner)."""

    one_pass_files = True  # a Parquet file with nothing done is one task, read in one pass

    def __init__(self, config: RunConfig, embedders: Sequence[Embedder]) -> None:
        self.config, self.embedders = config, embedders

    def verify(self, context: TaskContext, markers: list[DoneMarker]) -> list[str]:
        """The shard ids whose part fails its marker's size and SHA-256 (read here)."""
        remote = not context.layout.data.is_local
        with ThreadPoolExecutor(max_workers=VERIFIERS if remote else 1) as pool:
            good = pool.map(lambda marker: part_verified(context.layout, marker), markers)
            return [marker.shard_id for marker, ok in zip(markers, good) if not ok]

    def __call__(
        self, tasks: list[Task], context: TaskContext, check_owner: Callable[[], None]
    ) -> Generator[TaskEvent, None, None]:
        if not tasks:
            return
        options = self.config.embed
        device = choose_device(options.device)
        layout = choose_layout(device, options.tokenize_workers, options.threads)
        with _torch_threads(layout.threads):
            import torch

            # A model thread keeps the task threads' bookkeeping off the model's path. On a CPU with
            # several torch threads it costs more than it saves: OpenMP runs a parallel region
            # entered from a thread other than the first ~5% slower (measured: embed 11.0 s in a
            # thread, 10.5 s in the main thread, same arrays). Then this thread serves the model.
            model_thread = device.type == "cuda" or torch.get_num_threads() == 1
            inbox: queue.Queue[object] = queue.Queue()
            stop = threading.Event()
            model = _Model(self.embedders, None if model_thread else inbox)
            with model, _placement(self.config, self.embedders, layout.workers, context, model, stop) as placement:
                yield from _run_tasks(tasks, context, placement, check_owner, inbox, stop, model)


@contextlib.contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    """torch's intra-op threads for the run, restored after it (the process may go on)."""
    if threads is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class _Model:
    """The embed step: in a model thread of its own, or in the thread that serves the inbox."""

    def __init__(self, embedders: Sequence[Embedder], inbox: queue.Queue[object] | None) -> None:
        self.embedders, self.inbox = embedders, inbox
        self.thread = ThreadPoolExecutor(1, thread_name_prefix="batchembed-model") if inbox is None else None

    def submit(self, prepared: PreparedShard) -> Future[EmbeddedShard]:
        if self.thread is not None:
            return self.thread.submit(embed, prepared, self.embedders)
        request = _EmbedRequest(prepared)
        assert self.inbox is not None
        self.inbox.put(request)  # answered by serve(), or refused once the run is stopping
        return request.future

    def serve(self, request: _EmbedRequest) -> None:
        if not request.future.set_running_or_notify_cancel():
            return
        try:
            request.future.set_result(embed(request.prepared, self.embedders))
        except BaseException as exc:  # noqa: BLE001 - handed to the task that asked
            request.future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise

    def __enter__(self) -> _Model:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.thread is not None:
            self.thread.shutdown(wait=True, cancel_futures=True)


class _EmbedRequest:
    def __init__(self, prepared: PreparedShard) -> None:
        self.prepared = prepared
        self.future: Future[EmbeddedShard] = Future()


class _LocalPlacement:
    """run_task's steps on this machine: prepare in the workers (or the task's thread), embed on
    the model, write in the writer process (or the task's thread)."""

    embed_ahead = EMBED_AHEAD
    writes_ahead = WRITES_AHEAD

    def __init__(
        self,
        prepare_here: Callable[[InputShard], PreparedShard],
        pool: StagePool | None,
        model: _Model,
        writer: Writer,
        stop: threading.Event,
        first_here: bool,
    ) -> None:
        self.prepare_here, self.pool, self.model, self.writer, self.stop = prepare_here, pool, model, writer, stop
        # the workers busy while the model runs: each task keeps about as many pieces preparing
        self.prepare_ahead = pool.workers + 1 if pool is not None else 0
        self._first_here = first_here
        self._lock = threading.Lock()

    def prepare(self, piece: InputShard) -> Pending[PreparedShard]:
        if self.stop.is_set():
            raise _Stopped()
        with self._lock:
            here, self._first_here = self.pool is None or self._first_here, False
        if here:
            return Ready(self.prepare_here(piece))
        assert self.pool is not None
        return self.pool.prepare(piece)

    def embed(self, prepared: PreparedShard) -> Pending[EmbeddedShard]:
        return self.model.submit(prepared)


@contextlib.contextmanager
def _placement(
    config: RunConfig,
    embedders: Sequence[Embedder],
    workers: int,
    context: TaskContext,
    model: _Model,
    stop: threading.Event,
) -> Iterator[_LocalPlacement]:
    """The worker and writer processes for a run; without workers, prepare and write in-process."""
    preparers: list[Preparer] = [e.preparer() for e in embedders]
    tokenize_many = remembering(get_tokenizer(config.tokenizer))
    lock = threading.Lock()  # the tokenizer's memo is not shared safely between task threads

    def here(piece: InputShard) -> PreparedShard:
        with lock:
            return prepare(piece, tokenize_many, preparers)

    if not workers:
        writers = ShardWriters(context.layout, context.schema)
        try:
            yield _LocalPlacement(here, None, model, writers, stop, first_here=False)
        finally:
            writers.close()
        return
    pool = StagePool(config.tokenizer, preparers, workers, config.stall_seconds)
    with pool, WriterProcess(context.layout, context.schema, config.stall_seconds) as w:
        # The model's process prepares the first piece itself when it runs the model in this thread
        # (a CPU): a worker takes ~0.5 s to start, 4% of a 1,000-pair job there, and a CPU-bound
        # model process is not the one to keep lean. Feeding a GPU, every piece goes to the workers.
        first_here = model.thread is None
        if first_here:
            pool.start()  # the workers start while this process prepares the first piece
        yield _LocalPlacement(here, pool, model, w, stop, first_here)


class _Failed:
    def __init__(self, exception: BaseException) -> None:
        self.exception = exception


def _run_tasks(
    tasks: list[Task],
    context: TaskContext,
    placement: _LocalPlacement,
    check_owner: Callable[[], None],
    inbox: queue.Queue[object],
    stop: threading.Event,
    model: _Model,
) -> Generator[TaskEvent, None, None]:
    """`run_task` over the tasks, TASK_THREADS at a time; this thread serves the model (when it
    runs here) and hands on each task's events as they come."""

    def checked() -> None:
        if stop.is_set():
            raise _Stopped()
        check_owner()

    def one(task: Task) -> None:
        try:
            inbox.put(run_task(task, context, placement, checked, inbox.put))
        except BaseException as exc:  # noqa: BLE001 - raised in the driver's thread
            inbox.put(_Failed(exc))

    pool = ThreadPoolExecutor(TASK_THREADS, thread_name_prefix="batchembed-task")
    futures = [pool.submit(one, task) for task in tasks]
    try:
        left = len(tasks)
        while left:
            item = inbox.get()
            if isinstance(item, _EmbedRequest):
                model.serve(item)
            elif isinstance(item, _Failed):
                raise item.exception
            else:
                if isinstance(item, TaskResult):
                    left -= 1
                assert isinstance(item, (PieceWritten, DoneMarker, TaskResult))
                yield item
    finally:  # no part or marker after this: the task threads stop at their next step
        stop.set()
        for future in futures:
            future.cancel()
        while not all(future.done() for future in futures):
            try:
                item = inbox.get(timeout=0.05)
            except queue.Empty:
                continue
            if isinstance(item, _EmbedRequest):
                item.future.set_exception(_Stopped())
        pool.shutdown(wait=True)
