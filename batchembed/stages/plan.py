"""Plan: the driver cuts tasks from metadata alone, never reading a row.

A Parquet file gives one task per pending shard (rows counted from its footer; a task reads
only the row groups its shard lies in), or, where the engine asks for it and none of its shards
is done, one task for the whole file, read in one pass. A CSV file gives one task for the whole file, with the
shards already done listed so they are read past but not redone: record boundaries cannot be
found without parsing from the start (a quoted field may hold line breaks).

A done marker is believed only where it agrees with the plan: the shard's index, its first
row, a full shard unless it is the file's last, and, for a last shard, the file still ending
where it did. Anything else is redone.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from batchembed.errors import InputError
from batchembed.io.markers import DoneMarker
from batchembed.io.reader import InputFile, parquet_shard_count
from batchembed.stages.task import Task

FOOTER_READERS = 32  # concurrent Parquet footer reads on object storage


@dataclass
class Plan:
    tasks: list[Task] = field(default_factory=list)
    skipped: int = 0  # shards found done
    done_files: list[str] = field(default_factory=list)  # keys of files with nothing left to do
    errors: dict[str, InputError] = field(default_factory=dict)  # by file key: no task could be planned
    tasks_per_file: dict[str, int] = field(default_factory=dict)
    stale: list[str] = field(default_factory=list)  # markers of shards the file does not have


def plan_tasks(
    files: Sequence[InputFile],
    markers: dict[str, DoneMarker],
    shard_rows: int,
    run: int,
    counted: dict[str, int | None] | None = None,
    one_pass_files: bool = False,
) -> Plan:
    """`counted`: each input's pairs as a run that read it to the end counted them (the manifest),
    against which a CSV file's markers must add up before it is taken as done without reading.
    `one_pass_files`: a Parquet file none of whose shards is done is one task (engines/local/,
    where one reader per file is cheapest; Ray spreads the shards over its prepare actors)."""
    plan = Plan()
    counted = counted or {}
    by_file: dict[str, dict[int, DoneMarker]] = {}
    for marker in markers.values():
        by_file.setdefault(marker.file_key, {})[marker.index] = marker
    footers = _footers([file for file in files if file.format == "parquet"], shard_rows)
    for file in files:
        known = by_file.get(file.key, {})
        if file.format == "parquet":
            footer = footers[file.key]
            if isinstance(footer, InputError):
                plan.errors[file.key] = footer
                continue
            tasks = _parquet_tasks(file, footer, known, shard_rows, run, plan)
            if one_pass_files and len(tasks) == footer[1] > 1:
                tasks = [Task(file, run, rows=footer[0])]
        else:
            tasks = _csv_tasks(file, known, shard_rows, run, plan, counted.get(file.key))
        plan.tasks += tasks
        plan.tasks_per_file[file.key] = len(tasks)
        if not tasks:
            plan.done_files.append(file.key)
    return plan


def _parquet_tasks(
    file: InputFile, footer: tuple[int, int], known: dict[int, DoneMarker], shard_rows: int, run: int, plan: Plan
) -> list[Task]:
    total, count = footer
    tasks = []
    for k in range(count):
        marker = known.get(k)
        pairs, last = min(shard_rows, total - k * shard_rows), k == count - 1
        if marker is not None and marker.matches_extent(k, k * shard_rows + 1, pairs, last, file.extent):
            plan.skipped += 1
        else:
            tasks.append(Task(file, run, shard=k, rows=total))
    plan.stale += [m.shard_id for k, m in known.items() if k >= count]
    return tasks


def _csv_tasks(
    file: InputFile, known: dict[int, DoneMarker], shard_rows: int, run: int, plan: Plan, counted: int | None
) -> list[Task]:
    done = {k for k, m in known.items() if _believed(m, k, shard_rows, file)}
    ends = [k for k in done if known[k].last]
    plan.stale += [m.shard_id for k, m in known.items() if ends and k > min(ends)]
    if ends and set(range(min(ends) + 1)) <= done:  # every shard up to the file's last is done ...
        whole = sum(known[k].pairs for k in range(min(ends) + 1))
        if counted == whole:  # ... and they add up to what a run that read it all counted
            plan.skipped += min(ends) + 1
            return []
        done.discard(min(ends))  # else the file is read through again, its last shard redone
    plan.skipped += len(done)
    return [Task(file, run, done=frozenset(done))]


def _believed(marker: DoneMarker, index: int, shard_rows: int, file: InputFile) -> bool:
    """A CSV shard's marker, checked without reading: the rows it records are still the file's."""
    if marker.first_row != index * shard_rows + 1 or marker.pairs < 1:
        return False
    if marker.last:
        return marker.pairs <= shard_rows and marker.extent == file.extent
    return marker.pairs == shard_rows


def _footers(files: list[InputFile], shard_rows: int) -> dict[str, tuple[int, int] | InputError]:
    """(rows, shards) of each Parquet file from its footer, or why it cannot be read. On object
    storage each read is a round trip, so they run 32 at a time (latency, not bandwidth, is the cost)."""

    def footer(file: InputFile) -> tuple[int, int] | InputError:
        try:
            return parquet_shard_count(file, shard_rows)
        except InputError as error:
            return error

    remote = any(not file.path.is_local for file in files)
    with ThreadPoolExecutor(max_workers=FOOTER_READERS if remote else 1) as pool:
        return dict(zip([file.key for file in files], pool.map(footer, files)))
