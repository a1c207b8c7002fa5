"""A resumable job: every shard of every input file, processed once, whatever the engine.

Under the output's lock (io/lock.py) a run first reconciles the directory with
what it finds: temporary files and unmarked parts of a killed run are deleted,
the manifest (io/manifest.py) must match the configuration, and each input is
compared with its record (same, appended, changed, new, gone). Then shards are
read in order; a shard whose done marker (io/markers.py) matches it is skipped,
every other one is processed, written, and marked. So kill -9 at any moment
costs at most the shards in flight, and a re-run ends with exactly the rows of
an uninterrupted run.

How the shards get embedded is the engine's part (a ShardRunner): local.py in
this process, ray.py on a Ray cluster. Everything here runs in one process,
the driver. Input and output may be local paths or object storage URIs
(io/storage.py); the output directory holds only the parts, the bookkeeping
lives beside it (io/layout.py).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections import Counter
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import pyarrow as pa

from batchembed.config import RunConfig
from batchembed.embedders.base import Described
from batchembed.errors import BatchembedError, ExitCode, InputError, OutputError, TooManyBadRows
from batchembed.hardware import compute_record
from batchembed.io.layout import OutputLayout
from batchembed.io.lease import Held, hold
from batchembed.io.manifest import Change, InputRecord, Manifest, Unreadable, differences, fingerprint, inspect
from batchembed.io.manifest import load_manifest as _load_manifest
from batchembed.io.markers import (
    DoneMarker,
    complete_pairs,
    disagreeing,
    forget,
    load_markers,
    marked_shards,
    write_marker,
)
from batchembed.io.outputs import check_output, create_output, unreachable
from batchembed.io.reader import InputFile, InputShard, discover_all
from batchembed.io.schema import output_schema
from batchembed.io.sources import show
from batchembed.io.storage import Location, locate
from batchembed.memory import release_free_memory
from batchembed.stages import task as task_stage
from batchembed.stages.assemble import ShardResult
from batchembed.stages.plan import Plan, plan_tasks
from batchembed.stages.task import ShardSpan, Task, TaskContext, TaskResult, task_pieces
from batchembed.summary import FileCounts, RunSummary

log = logging.getLogger(__name__)

ShardCallback = Callable[[ShardResult], None]
CONFLICTS_SHOWN = 3
EMPTY = pa.table({})


@dataclass(frozen=True)
class FileRead:
    """Marks the end of one input file in the stream of pending pieces."""

    file: InputFile


class TaskRunner(Protocol):
    """An engine whose workers run whole tasks (stages/task.py), writing their own parts and
    markers, and hand back each task's result as it finishes, in any order."""

    def __call__(self, tasks: list[Task], context: TaskContext) -> Generator[TaskResult, None, None]: ...

    def verify(self, markers: list[DoneMarker]) -> list[str]:
        """The shard ids whose part fails its marker's size and SHA-256, checked by the workers."""
        ...


class PieceRunner(Protocol):
    """An engine that places a task's stages on this machine: it embeds the pieces it is handed
    and yields each shard's written result once its last piece is done, in input order, passing
    each FileRead through once every shard before it is yielded."""

    def __call__(
        self, items: Iterator[InputShard | FileRead], schema: pa.Schema, check: Callable[[], None]
    ) -> Generator[tuple[ShardSpan, ShardResult] | FileRead, None, None]:
        """`check()` raises once this run may no longer write (its lease was taken over): an
        engine that writes parts itself calls it before each one."""
        ...


def _file_key_of(shard_id: str) -> str:
    return shard_id.rsplit("-", 1)[0]


def open_output(spec: str) -> OutputLayout:
    """The output directory and its bookkeeping directory, checked (io/outputs.py), then created
    if need be: a refused output is left as it was."""
    layout = check_output(spec)
    create_output(layout)
    return layout


def run_job(
    config: RunConfig,
    models: Sequence[Described],
    runner: PieceRunner,
    on_shard: ShardCallback | None = None,
) -> RunSummary:
    """Process all inputs into `config.output` with `runner`, resuming what an earlier run left.

    Files that cannot be read are reported in the summary (exit code 3) while the
    others are processed; raises TooManyBadRows past --max-bad-rows, OutputError
    when the output belongs to another configuration or run, KeyboardInterrupt
    as is (finished shards are kept either way).
    """
    with _opened(config, models) as job:
        return job.execute(runner, on_shard)


def run_task_job(
    config: RunConfig,
    models: Sequence[Described],
    runner: TaskRunner,
    on_shard: ShardCallback | None = None,
) -> RunSummary:
    """As run_job, but the driver reads no input row: workers run tasks planned from metadata."""
    with _opened(config, models, verify_parts=False) as job:
        return job.execute_tasks(runner, on_shard)


@contextlib.contextmanager
def _opened(config: RunConfig, models: Sequence[Described], verify_parts: bool = True) -> Iterator[_Job]:
    layout = check_output(config.output)  # before the inputs: their absence is no reason to write here
    files, errors = discover_all(config.inputs, exclude=(layout.data, layout.state))
    if not files:
        raise errors[0] if errors else InputError("no input files found")
    fresh = layout.data.is_local and not any(os.path.lexists(d.path) for d in (layout.data, layout.state))
    create_output(layout)
    with hold(layout) as held:
        try:
            job = _Job(config, models, layout, held, config.incremental, verify_parts)
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
        if _binds(layout):
            return
        shutil.rmtree(layout.state.path, ignore_errors=True)
        with contextlib.suppress(OSError):
            os.rmdir(layout.data.path)  # only if empty


def _binds(layout: OutputLayout) -> bool:
    """Whether the output holds any part or done marker: only then do its settings bind it."""
    try:
        marked = marked_shards(layout)
    except FileNotFoundError:
        marked = []
    return bool(marked) or bool(layout.parts())


@contextlib.contextmanager
def _store_errors(layout: OutputLayout) -> Iterator[None]:
    """A store that fails while the output is reconciled is an output error (exit 5), not a crash."""
    try:
        yield
    except (OSError, pa.ArrowException) as exc:
        raise unreachable(layout.data, exc) from exc


class _Job:
    """One run's state: the markers of the output, the manifest, the summary."""

    def __init__(
        self,
        config: RunConfig,
        models: Sequence[Described],
        layout: OutputLayout,
        held: Held,
        incremental: bool,
        verify_parts: bool = True,
    ) -> None:
        self.verify_parts = verify_parts  # False: the engine's workers check the parts (execute_tasks)
        self.config, self.models, self.layout, self.held, self.incremental = config, models, layout, held, incremental
        self.output: Location = layout.data
        self.summary = RunSummary(output=str(self.output), incremental=incremental, inputs=list(config.inputs))
        self.summary.compute = compute_record(config.embed.precision)
        self.manifest = Manifest(fingerprint(config, models))
        self.markers: dict[str, DoneMarker] = {}
        self.files: list[InputFile] = []  # inputs to read, with the extent recorded for this run
        self.new_bad_rows = 0
        self.tasks_left: dict[str, int] = {}  # by file key: tasks not yet returned (run_task_job)
        self.files_by_key: dict[str, InputFile] = {}

    # -- before the first shard ------------------------------------------------------------

    def fail(self, file: InputFile | None, error: BatchembedError) -> None:
        """Record a problem: once per input file, however many of its tasks ran into it."""
        if file is not None:
            counts = self._counts(file)
            if counts.error is not None:
                log.debug("%s (again)", error)
                return
            counts.error = str(error)
        log.info("%s", error)
        self.summary.errors.append(str(error))

    def _counts(self, file: InputFile) -> FileCounts:
        return self.summary.files.setdefault(file.key, FileCounts(show(file.path), file.format))

    def _wipe(self, manifest: Manifest | None) -> None:
        """--overwrite: remove what batchembed wrote here (marked parts, and unmarked parts of inputs
        the manifest records), and nothing else."""
        layout = self.layout
        ours = [shard for shard in layout.parts() if manifest and _file_key_of(shard) in manifest.inputs]
        forget(layout, sorted(set(marked_shards(layout)) | set(ours)))
        layout.manifest.delete()
        layout.summary.delete()

    def prepare(self, discovered: list[InputFile]) -> None:
        layout, output = self.layout, self.output
        layout.remove_stray_temporaries()
        if self.config.overwrite:
            self._wipe(_load_manifest_or_none(layout))
        manifest = _load_manifest(layout)
        if manifest is not None and not _binds(layout):
            log.info("%s: no part was written under the recorded settings; they do not bind it", output)
            manifest = None
        if manifest is None:
            self._refuse_foreign(sorted(layout.parts()))
        elif manifest.fingerprint != self.manifest.fingerprint:
            raise OutputError(
                f"{output}: holds results made with other settings "
                f"({', '.join(differences(manifest.fingerprint, self.manifest.fingerprint))}); "
                "pass --overwrite to replace them, or choose another --output"
            )
        else:
            self.manifest = manifest
        started_before = manifest is not None
        self.markers = load_markers(layout, verify=self.verify_parts)
        with_rows = Counter(m.file_key for m in self.markers.values())
        changes = self._inspect(discovered)
        gone = [key for key in self.manifest.inputs if key not in {f.key for f in discovered} and with_rows[key]]
        if not self.incremental:
            self._refuse_changes(changes, gone, with_rows, started_before)
        for file, change in changes:
            if change is Change.CHANGED and with_rows[file.key]:
                log.warning("%s: changed since it was processed (not only appended to); redoing it", show(file.path))
                forget(layout, [m.shard_id for m in self.markers.values() if m.file_key == file.key])
                self.markers = {k: m for k, m in self.markers.items() if m.file_key != file.key}
            elif change is Change.APPENDED and with_rows[file.key]:
                log.info("%s: grew since the last run; processing the new rows", show(file.path))
        gone = self._renamed(changes, gone)
        self._unbelieved(changes)
        for key in gone:
            record = self.manifest.inputs[key]
            log.warning("%s: no longer among the inputs; its rows stay in the output", record.path)
            self.summary.files[key] = FileCounts(record.path, record.format, state="kept")
        self._drop_orphans()
        self.manifest.runs += 1
        self.summary.run = self.manifest.runs
        self.manifest.save(layout)
        finished = self.manifest.finished_run
        self.new_bad_rows = sum(m.bad_rows for m in self.markers.values() if m.run > finished)

    def _renamed(self, changes: list[tuple[InputFile, Change]], gone: list[str]) -> list[str]:
        """A new input with the content of one that is gone is that file, renamed: its old parts go
        and it is done again under its new name (pair ids and source columns carry the name), so its
        rows are in the output once. Returns the inputs still gone."""
        left = list(gone)
        for file, change in changes:
            record = self.manifest.inputs[file.key]
            old = next(
                (key for key in left if change is Change.NEW and self.manifest.inputs[key].same_content(record)), None
            )
            if old is None:
                continue
            log.warning(
                "%s: the same content as %s, which is gone: taken as renamed, its rows are redone under the new name",
                show(file.path),
                self.manifest.inputs[old].path,
            )
            self._forget_file(old)
            del self.manifest.inputs[old]
            left.remove(old)
        return left

    def _forget_file(self, file_key: str) -> None:
        forget(self.layout, sorted(k for k, m in self.markers.items() if m.file_key == file_key))
        self.markers = {k: m for k, m in self.markers.items() if m.file_key != file_key}

    def _unbelieved(self, changes: list[tuple[InputFile, Change]]) -> None:
        """Markers that disagree with the manifest's record of their input are not believed: their
        parts are redone, so the output's row account is the inputs' own (io/markers.py)."""
        known = {
            file.key: record.pairs
            for file, change in changes
            if change is Change.SAME and (record := self.manifest.inputs[file.key]).pairs is not None
        }
        wrong = disagreeing(self.markers, self.config.shard_rows, self.manifest.runs, known)
        for shard_id, why in sorted(wrong.items()):
            log.warning("%s: done marker not believed (%s); redoing its part", self.layout.marker(shard_id), why)
        forget(self.layout, sorted(wrong))
        self.markers = {k: m for k, m in self.markers.items() if k not in wrong}

    def _inspect(self, discovered: list[InputFile]) -> list[tuple[InputFile, Change]]:
        """Compare every input with the manifest; record what this run reads. On object storage
        each comparison is a metadata request: they run INSPECTORS at a time."""

        def compare(found: InputFile) -> tuple[Change, InputRecord] | BatchembedError:
            try:
                return inspect(found, self.manifest.inputs.get(found.key))
            except InputError as error:
                return error

        remote = any(not found.path.is_local for found in discovered)
        with ThreadPoolExecutor(max_workers=INSPECTORS if remote else 1) as pool:
            compared = list(pool.map(compare, discovered))
        changes = []
        for found, outcome in zip(discovered, compared):
            self._counts(found)
            try:
                if isinstance(outcome, BatchembedError):
                    raise outcome
                change, record = outcome
            except Unreadable as error:
                # recorded (size and mtime), so fixing permissions is not an input change; an
                # earlier record, made when the file was read, is kept as the better one
                self.manifest.inputs.setdefault(found.key, error.record)
                self.fail(found, error)
                continue
            except InputError as error:
                self.fail(found, error)
                continue
            self.manifest.inputs[found.key] = record
            file = InputFile(found.path, found.format, extent=record.bytes)
            self.files.append(file)
            changes.append((file, change))
        return changes

    def _refuse_changes(
        self, changes: list[tuple[InputFile, Change]], gone: list[str], with_rows: Counter[str], started_before: bool
    ) -> None:
        """Without --incremental the inputs must be those the output was started from; a file
        may differ only if nothing of it is in the output yet (e.g. it failed to read and was fixed)."""
        words = {Change.NEW: "is new", Change.APPENDED: "grew", Change.CHANGED: "changed"}
        conflicts = [
            f"{show(file.path)} {words[change]}"
            for file, change in changes
            if (change is Change.NEW and started_before)
            or (change in (Change.APPENDED, Change.CHANGED) and with_rows[file.key])
        ]
        conflicts += [f"{self.manifest.inputs[key].path} is no longer an input" for key in gone]
        if conflicts:
            more = f" and {len(conflicts) - CONFLICTS_SHOWN} more" if len(conflicts) > CONFLICTS_SHOWN else ""
            raise OutputError(
                f"{self.output}: the inputs changed since this output was started "
                f"({'; '.join(conflicts[:CONFLICTS_SHOWN])}{more}); pass --incremental to process what is new, "
                "or --overwrite to start over"
            )

    def _drop_orphans(self) -> None:
        """Markers of files the manifest does not know, and parts without a marker, are
        leftovers of interrupted runs: delete them so no row can appear twice."""
        orphans = {m.shard_id for m in self.markers.values() if m.file_key not in self.manifest.inputs}
        if orphans:
            log.warning("%s: removing %d parts of unknown input files", self.output, len(orphans))
            forget(self.layout, sorted(orphans))
            self.markers = {k: m for k, m in self.markers.items() if k not in orphans}
        unmarked = [shard for shard in self.layout.parts() if shard not in self.markers]
        self._refuse_foreign([shard for shard in unmarked if _file_key_of(shard) not in self.manifest.inputs])
        for shard in unmarked:
            self.layout.part(shard).delete()
        if unmarked:
            log.info("%s: removed %d unfinished parts of an interrupted run", self.output, len(unmarked))

    def _refuse_foreign(self, shards: list[str]) -> None:
        """Parts no manifest or marker says batchembed wrote are the user's: never delete them."""
        if shards:
            more = f" and {len(shards) - CONFLICTS_SHOWN} more" if len(shards) > CONFLICTS_SHOWN else ""
            names = ", ".join(self.layout.part(shard).name for shard in shards[:CONFLICTS_SHOWN])
            raise OutputError(
                f"{self.output}: holds Parquet parts that batchembed did not write ({names}{more}); "
                "move them away, or choose another --output"
            )

    # -- the run ---------------------------------------------------------------------------

    def execute(self, runner: PieceRunner, on_shard: ShardCallback | None) -> RunSummary:
        """Tasks planned here, their pieces read here (ahead, in a thread), embedded and written
        by `runner`, marked here in input order."""

        def consume(schema: pa.Schema) -> None:
            pieces = self.pending_pieces(self.plan())
            with contextlib.closing(runner(pieces, schema, self.held.check)) as processed:
                for item in processed:
                    if isinstance(item, FileRead):  # every shard of that file is committed now
                        self._file_finished(item.file.key)
                        continue
                    self.commit(*item, on_shard)

        return self._run(consume)

    def execute_tasks(self, runner: TaskRunner, on_shard: ShardCallback | None) -> RunSummary:
        """Tasks planned here from metadata; workers read, embed, write and mark; only their
        markers come back, in whatever order they finish."""

        def consume(schema: pa.Schema) -> None:
            if not self.verify_parts and self.markers:  # the workers read the parts, not the driver
                damaged = runner.verify(list(self.markers.values()))
                if damaged:
                    log.warning(
                        "%s: %d parts changed since they were marked done; redoing them", self.output, len(damaged)
                    )
                    self._unmark(damaged)
            context = TaskContext(
                self.config.columns, self.config.shard_rows, self.layout, schema, task_stage.PIECE_PAIRS
            )
            with contextlib.closing(runner(self.plan().tasks, context)) as results:
                for result in results:
                    self.commit_task(result, on_shard)

        return self._run(consume)

    def _run(self, consume: Callable[[pa.Schema], None]) -> RunSummary:
        # how the result was made, in every output file: the settings' fingerprint and the
        # inputs (no timestamps: reruns are identical)
        metadata = {
            **self.manifest.fingerprint,
            "compute": self.summary.compute,
            "inputs": [str(f.path) for f in self.files],
        }
        schema = output_schema([m.name for m in self.models], metadata)
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

    def _unmark(self, shard_ids: list[str]) -> None:
        forget(self.layout, shard_ids)
        for shard_id in shard_ids:
            marker = self.markers.pop(shard_id)
            if marker.run > self.manifest.finished_run:
                self.new_bad_rows -= marker.bad_rows

    def plan(self) -> Plan:
        """Every pending task, from metadata alone (file listings, Parquet footers, markers)."""
        counted = {key: record.pairs for key, record in self.manifest.inputs.items()}
        plan = plan_tasks(self.files, self.markers, self.config.shard_rows, self.manifest.runs, counted)
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

    def _file_finished(self, key: str) -> None:
        file = self.files_by_key[key]
        if self._counts(file).error is None:
            self._counts(file).state = "done"

    def commit_task(self, result: TaskResult, on_shard: ShardCallback | None) -> None:
        """Count what a worker wrote (it wrote each part before its marker)."""
        self.held.check()
        if result.stopped:  # its worker could not confirm this run still owns the output
            raise OutputError(
                f"{self.output}: a worker lost contact with this run and stopped writing; run again to finish"
            )
        file = self.files_by_key[result.file_key]
        self.summary.subword_tokens += result.subword_tokens
        for marker in result.markers:
            self._count_marker(marker)
            if on_shard is not None:
                on_shard(ShardResult(EMPTY, marker.pairs, Counter(marker.status_counts)))
        if result.error is not None:
            self.fail(file, InputError(result.error))
        self.tasks_left[file.key] -= 1
        if not self.tasks_left[file.key]:
            self._file_finished(file.key)
        self._check_bad_rows(None)

    def pending_pieces(self, plan: Plan) -> Iterator[InputShard | FileRead]:
        """Every pending task's pieces, file by file, each file closed by a FileRead; a file that
        cannot be read is reported once and the rest of it skipped. The engine may run this in
        another thread (local.py reads ahead): it records errors, and leaves completion to the consumer."""
        pieces = task_stage.PIECE_PAIRS
        context = TaskContext(self.config.columns, self.config.shard_rows, self.layout, pa.schema([]), pieces)
        tasks_by_file: dict[str, list[Task]] = {}
        for task in plan.tasks:
            tasks_by_file.setdefault(task.file_key, []).append(task)
        for key, tasks in tasks_by_file.items():
            first = tasks[0]
            if first.shard is not None and len(tasks) == -(-first.rows // self.config.shard_rows):
                tasks = [Task(first.file, first.run)]  # every shard of it: one pass through the file
            for task in tasks:
                try:
                    yield from task_pieces(task, context)
                except InputError as error:
                    self.fail(task.file, error)
                    break  # one line per file: its other tasks would fail the same way
            yield FileRead(self.files_by_key[key])

    def commit(self, shard: ShardSpan, result: ShardResult, on_shard: ShardCallback | None) -> None:
        """Part first, marker second: the engine put the part in place (result.written); a part
        without a marker is redone, never trusted."""
        self.held.check()  # never vouch for a part after another run took the output over
        part = result.written
        assert part is not None, "the engine writes the part before the job marks it"
        marker = write_marker(self.layout, shard, part, result.rows, result.status_counts, self.manifest.runs)
        self._count_marker(marker)
        self.summary.subword_tokens += result.subword_tokens
        if on_shard is not None:
            on_shard(result)
        release_free_memory()  # memory stays flat however many shards follow
        self._check_bad_rows(shard)

    def _count_marker(self, marker: DoneMarker) -> None:
        replaced = self.markers.get(marker.shard_id)
        if replaced is not None and replaced.run > self.manifest.finished_run:
            self.new_bad_rows -= replaced.bad_rows
        self.markers[marker.shard_id] = marker
        self.new_bad_rows += marker.bad_rows
        self.summary.shards_written += 1
        self.summary.pairs_this_run += marker.pairs
        self.summary.rows_this_run += marker.rows

    def _check_bad_rows(self, shard: ShardSpan | None) -> None:
        limit = self.config.max_bad_rows
        if limit is not None and self.new_bad_rows > limit:
            where = f" (last in {show(shard.file.path)})" if shard is not None else " (in shards already written)"
            raise TooManyBadRows(
                f"{self.new_bad_rows} bad rows exceed --max-bad-rows {limit}{where}; see the status column of "
                f"{self.output}; finished shards are kept: a re-run with a higher limit goes on from there"
            )

    def _settle_files(self) -> bool:
        """For each input read to its end without error: markers past its last shard go (they
        cannot be of this file), and its pair count is recorded, so later runs believe only the
        markers that agree with it. True if the manifest learnt something."""
        learnt = False
        for file in self.files:
            counts = self.summary.files.get(file.key)
            record = self.manifest.inputs.get(file.key)
            if counts is None or record is None or counts.state != "done" or counts.error is not None:
                continue
            mine = [m for m in self.markers.values() if m.file_key == file.key]
            lasts = [m.index for m in mine if m.last]
            past = sorted(m.shard_id for m in mine if lasts and m.index > min(lasts))
            if past:
                log.warning(
                    "%s: %d done markers lie past the file's last shard; removing them", show(file.path), len(past)
                )
                self._unmark(past)
                mine = [m for m in mine if m.shard_id not in past]
            pairs = complete_pairs(mine, self.config.shard_rows)
            if pairs is not None and record.pairs != pairs:
                record.pairs = pairs
                learnt = True
        return learnt

    def end(self, code: ExitCode, outcome: str) -> None:
        """Count the output from the markers, then write the manifest and the summary. The store may
        be what failed: then the summary says so if it can be written, and the run's own error stands."""
        try:
            learnt = self._settle_files()
        except (BatchembedError, OSError, pa.ArrowException) as error:
            log.error("%s", error)
            learnt = False
        summary = self.summary
        summary.status_counts = Counter()
        summary.pairs_read = summary.rows_written = 0
        for marker in self.markers.values():
            counts = summary.files.get(marker.file_key)
            if counts is None:
                record = self.manifest.inputs.get(marker.file_key)
                counts = summary.files[marker.file_key] = FileCounts(
                    record.path if record else marker.file_key, record.format if record else "?"
                )
            counts.pairs += marker.pairs
            counts.rows += marker.rows
            counts.shards += 1
            counts.bad_rows += marker.bad_rows
            summary.pairs_read += marker.pairs
            summary.rows_written += marker.rows
            summary.status_counts.update(marker.status_counts)
        for counts in summary.files.values():
            if counts.error is not None:
                counts.state = "partial" if counts.shards else "failed"
        summary.new_bad_rows = self.new_bad_rows
        summary.finish(code, outcome)
        try:
            if code in (ExitCode.OK, ExitCode.BAD_ROWS):
                self.manifest.finished_run = self.manifest.runs
                self.manifest.save(self.layout)
            elif learnt:
                self.manifest.save(self.layout)
            summary.write(self.layout)
        except (OutputError, OSError, pa.ArrowException) as error:  # e.g. a full disk, a store gone
            log.error("%s", error)


INSPECTORS = 32  # concurrent metadata requests when comparing inputs on object storage


def _load_manifest_or_none(layout: OutputLayout) -> Manifest | None:
    try:
        return _load_manifest(layout)
    except OutputError:  # --overwrite of an output whose manifest is damaged: only marked parts go
        return None


def read_output(output: str) -> pa.Table:
    """All result parts of an output directory as one table (for tests and small results)."""
    import pyarrow.parquet as pq

    location = locate(output)
    return pq.read_table(location.path, filesystem=location.fs)
