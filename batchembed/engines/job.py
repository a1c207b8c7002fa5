"""A resumable job: every shard of every input file, processed once, whatever the engine.

Under the output's lock (io/lock.py) a run first reconciles the directory with
what it finds: temporary files and unmarked parts of a killed run are deleted,
the manifest (io/manifest.py) must match the configuration, and each input is
compared with its record (same, appended, changed, new, gone). Then the driver
plans tasks from metadata (stages/plan.py) and hands them to the engine (a
TaskRunner), whose workers run each with stages/task.run_task: read, prepare,
embed, assemble, write each part, then its done marker (io/markers.py). The
driver only counts what the tasks report, in whatever order they finish. So
kill -9 at any moment costs at most the shards in flight, and a re-run ends with
exactly the rows of an uninterrupted run.

Everything here runs in one process, the driver, and reads no input row. Input
and output may be local paths or object storage URIs (io/storage.py); the output
directory holds only the parts, the bookkeeping lives beside it (io/layout.py).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Callable, Generator, Iterator, Sequence
from typing import Protocol

import pyarrow as pa

from batchembed.config import RunConfig
from batchembed.embedders.base import Described
from batchembed.engines.reconcile import OutputReconciler, binds
from batchembed.errors import BatchembedError, ExitCode, InputError, OutputError
from batchembed.hardware import compute_record
from batchembed.io.layout import OutputLayout
from batchembed.io.lease import Held, hold
from batchembed.io.manifest import Manifest, fingerprint
from batchembed.io.markers import (
    DoneMarker,
)
from batchembed.io.outputs import check_output, create_output, unreachable
from batchembed.io.reader import InputFile, discover_all, kept_fields
from batchembed.io.schema import output_schema, vector_schema
from batchembed.io.storage import Location
from batchembed.results.summary import RunSummary
from batchembed.stages.plan import Plan, plan_tasks
from batchembed.stages.progress_total import pending_total
from batchembed.stages.task import (
    PIECE_PAIRS,
    PieceWritten,
    ProgressCallback,
    Task,
    TaskContext,
    TaskEvent,
    TaskResult,
)

log = logging.getLogger(__name__)

CONFLICTS_SHOWN = 3


class TaskRunner(Protocol):
    """An engine: it runs the planned tasks with stages/task.run_task, placing their steps on its
    workers, and hands back each task's events (pieces written, markers, the task's result) as
    they come, in any order."""

    one_pass_files: bool  # plan a Parquet file none of whose shards is done as one task (one pass)

    def __call__(
        self, tasks: list[Task], context: TaskContext, check_owner: Callable[[], None]
    ) -> Generator[TaskEvent, None, None]:
        """`check_owner()` raises once this run may no longer write (its lease was taken over)."""
        ...

    def verify(self, context: TaskContext, markers: list[DoneMarker]) -> list[str]:
        """The shard ids whose part fails its marker's size and SHA-256."""
        ...


def run_job(
    config: RunConfig,
    models: Sequence[Described],
    runner: TaskRunner,
    on_progress: ProgressCallback | None = None,
) -> RunSummary:
    """Process all inputs into `config.output` with `runner`, resuming what an earlier run left.

    Files that cannot be read are reported in the summary (exit code 3) while the
    others are processed; raises TooManyBadRows past --max-bad-rows, OutputError
    when the output belongs to another configuration or run, KeyboardInterrupt
    as is (finished shards are kept either way). `on_progress` gets the pairs of
    each piece written.
    """
    with _opened(config, models) as job:
        return job.execute(runner, on_progress)


@contextlib.contextmanager
def _opened(config: RunConfig, models: Sequence[Described]) -> Iterator[_Job]:
    layout = check_output(config.output)  # before the inputs: their absence is no reason to write here
    files, errors = discover_all(config.inputs, exclude=(layout.data, layout.state))
    if not files:
        raise errors[0] if errors else InputError("no input files found")
    fresh = layout.data.is_local and not any(os.path.lexists(d.path) for d in (layout.data, layout.state))
    create_output(layout)
    with hold(layout) as held:
        try:
            job = _Job(config, models, layout, held, config.incremental)
            for error in errors:
                job.fail(None, error)
            with _store_errors(layout):
                job.prepare(files)
            yield job
        except BaseException:
            if fresh:
                _remove_unbound(layout)
            raise


def _remove_unbound(layout: OutputLayout) -> None:
    """A start that failed or was refused before any part was written leaves nothing it created
    (local outputs: this run made both directories), so the next command finds the output as the
    user left it. Called while the lock is held (a run that opened the lock file before it goes is
    still refused); an output that holds a part or marker is kept."""
    with contextlib.suppress(OSError, pa.ArrowException, BatchembedError):
        if binds(layout):
            return
        shutil.rmtree(layout.state.path, ignore_errors=True)
        with contextlib.suppress(OSError):
            os.rmdir(layout.data.path)  # only if empty


@contextlib.contextmanager
def _store_errors(layout: OutputLayout) -> Iterator[None]:
    """A store that fails while the output is reconciled is an output error (exit 5), not a crash."""
    try:
        yield
    except (OSError, pa.ArrowException) as exc:
        raise unreachable(layout.data, exc) from exc


class _Job(OutputReconciler):
    """One run's state (the markers of the output, the manifest, the summary) and its driving:
    reconciled first (engines/reconcile.py), counted as it goes (engines/account.py)."""

    def __init__(
        self,
        config: RunConfig,
        models: Sequence[Described],
        layout: OutputLayout,
        held: Held,
        incremental: bool,
    ) -> None:
        self.config, self.models, self.layout, self.held, self.incremental = config, models, layout, held, incremental
        self.output: Location = layout.data
        self.summary = RunSummary(output=str(self.output), incremental=incremental, inputs=list(config.inputs))
        self.summary.compute = compute_record(config.embed.precision)
        self.manifest = Manifest(fingerprint(config, models))
        self.markers: dict[str, DoneMarker] = {}
        self.files: list[InputFile] = []  # inputs to read, with the extent recorded for this run
        self.new_bad_rows = 0
        self.tasks_left: dict[str, int] = {}  # by file key: tasks not yet finished
        self.files_by_key: dict[str, InputFile] = {}

    def execute(self, runner: TaskRunner, on_progress: ProgressCallback | None) -> RunSummary:
        """Tasks planned here from metadata; the engine's workers read, embed, write and mark;
        their events come back in whatever order they finish, and are counted here."""

        def consume(schema: pa.Schema) -> None:
            context = TaskContext(self.config.columns, self.config.shard_rows, self.layout, schema, PIECE_PAIRS)
            if self.markers:  # a part changed since its marker was written is redone
                damaged = runner.verify(context, list(self.markers.values()))
                if damaged:
                    log.warning(
                        "%s: %d parts changed since they were marked done; redoing them", self.output, len(damaged)
                    )
                    self._unmark(damaged)
            plan = self.plan(runner.one_pass_files)
            expect = getattr(on_progress, "expect", None)  # a progress bar's total (stages/progress_total.py)
            with contextlib.ExitStack() as counting:
                if expect is not None:
                    expect(
                        counting.enter_context(pending_total(plan.tasks, self.config.shard_rows, self.config.columns))
                    )
                with contextlib.closing(runner(plan.tasks, context, self.held.check)) as events:
                    for event in events:
                        self.commit(event, on_progress)

        return self._run(consume)

    def _run(self, consume: Callable[[pa.Schema], None]) -> RunSummary:
        # how the result was made, in every output file: the settings' fingerprint and the
        # inputs (no timestamps: reruns are identical)
        metadata = {
            **self.manifest.fingerprint,
            "compute": self.summary.compute,
            "inputs": [str(f.path) for f in self.files],
        }
        kept = kept_fields(self.files, self.config.columns.keep)  # --keep-columns, typed as in the inputs
        if self.config.use_vectors:
            dims = [(m.name, int(m.describe()["dim"])) for m in self.models]
            schema = vector_schema(dims, metadata, kept)
        else:
            schema = output_schema([m.name for m in self.models], metadata, kept)
        self.summary.write(self.layout)  # outcome "running": an old summary must not look current
        try:
            self._check_bad_rows(None)
            consume(schema)
        except KeyboardInterrupt:
            self.end(ExitCode.INTERRUPTED, "interrupted")
            raise
        except BatchembedError as error:
            self.end(error.exit_code, f"stopped: {error}")
            raise
        except BaseException:
            self.end(ExitCode.INTERNAL_ERROR, "crashed")
            raise
        if self.summary.errors:
            self.end(ExitCode.INPUT_ERROR, "finished with input errors")
        elif self.new_bad_rows:
            self.end(ExitCode.BAD_ROWS, "finished with bad rows")
        else:
            self.end(ExitCode.OK, "finished")
        return self.summary

    def plan(self, one_pass_files: bool) -> Plan:
        """Every pending task, from metadata alone (file listings, Parquet footers, markers)."""
        counted = {key: record.pairs for key, record in self.manifest.inputs.items()}
        plan = plan_tasks(self.files, self.markers, self.config.shard_rows, self.manifest.runs, counted, one_pass_files)
        stale = [shard_id for shard_id in plan.stale if shard_id in self.markers]
        if stale:
            log.warning("%s: removing %d parts of shards the inputs do not have", self.output, len(stale))
            self._unmark(stale)
        self.summary.shards_skipped += plan.skipped
        by_key = {file.key: file for file in self.files}
        for key, error in plan.errors.items():
            self.fail(by_key[key], error)
        for key in plan.done_files:
            self._counts(by_key[key]).state = "done"
        self.tasks_left = dict(plan.tasks_per_file)
        self.files_by_key = by_key
        return plan

    def commit(self, event: TaskEvent, on_progress: ProgressCallback | None) -> None:
        """Count what a task reports: its pieces, each marker it wrote (after its part), its end."""
        self.held.check()
        if isinstance(event, PieceWritten):
            if on_progress is not None:
                on_progress(event.pairs)
        elif isinstance(event, DoneMarker):
            self._count_marker(event)
            self._check_bad_rows(event)
        else:
            self._finish_task(event)

    def _finish_task(self, result: TaskResult) -> None:
        if result.stopped:  # its worker could not confirm this run still owns the output
            raise OutputError(
                f"{self.output}: a worker lost contact with this run and stopped writing; run again to finish"
            )
        file = self.files_by_key[result.file_key]
        self.summary.subword_tokens += result.subword_tokens
        if result.error is not None:
            self.fail(file, InputError(result.error))
        self.tasks_left[file.key] -= 1
        if not self.tasks_left[file.key] and self._counts(file).error is None:
            self._counts(file).state = "done"
