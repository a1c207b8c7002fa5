"""A progress bar's total: the pairs a run's pending tasks will write, known as soon as it can be.

A Parquet file's pairs are in its footer, read when the tasks were planned (stages/plan.py), so
they are known at once. A CSV file's are known only once it is read through: the local CSV files
still pending are counted by a background thread (io/csv_source.csv_row_count: exactly the rows
the reader gives, bad rows included), less the shards already done, and the total is known once
the last is counted; until then the bar has none. The run never waits for the count: the thread
reads the files beside it, faster than the run reads them (no cell is built), and stops when the
run does.

CSV files on object storage are not counted: that would read each of them twice over the network.
A run with one of them has no total (a count and a rate, no percentage and no ETA).

The total is exact, never an estimate: a bar that has one reaches 100% when the last pending pair
is written, and stays short of it where a file fails part-way or a run stops early.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator, Sequence

from batchembed.config import Columns
from batchembed.errors import InputError
from batchembed.io.csv_source import csv_row_count
from batchembed.stages.task import Task

log = logging.getLogger(__name__)

STOP_WAIT_S = 1.0  # at the run's end, how long to wait for the counting thread to see it should stop

Total = Callable[[], int | None]  # the pairs pending when the run began; None while not known


@contextlib.contextmanager
def pending_total(tasks: Sequence[Task], shard_rows: int, columns: Columns) -> Iterator[Total]:
    """The pairs `tasks` will write, as a function to ask at each update: known at once where every
    task reads Parquet, once counted where some read local CSV files, never where one reads CSV on
    object storage. The counting stops when the block ends."""
    known, csv_tasks = 0, []
    for task in tasks:
        if task.file.format == "parquet":
            known += _parquet_pending(task, shard_rows)
        else:
            csv_tasks.append(task)
    if not csv_tasks:
        yield lambda: known
        return
    if not all(task.file.path.is_local for task in csv_tasks):  # counting would read them twice
        yield lambda: None
        return
    counting = _Counting(known, csv_tasks, shard_rows, columns)
    thread = threading.Thread(target=counting.count, name="batchembed-csv-total", daemon=True)
    thread.start()
    try:
        yield lambda: counting.total
    finally:
        counting.stop.set()
        thread.join(STOP_WAIT_S)  # a file left open past the run would surprise a caller deleting it


def _parquet_pending(task: Task, shard_rows: int) -> int:
    if task.shard is None:  # the whole file, in one pass
        return task.rows
    return min(shard_rows, task.rows - task.shard * shard_rows)


def csv_pending(rows: int, shard_rows: int, done: frozenset[int]) -> int:
    """The pairs a CSV task of a file of `rows` data rows writes: all but those of its `done` shards."""
    return rows - sum(min(shard_rows, rows - k * shard_rows) for k in done if k * shard_rows < rows)


class _Counting:
    """The CSV tasks' rows, counted one file after another on the counting thread; `total` is set
    once, when the last is counted (a single assignment: the bar reads it from another thread)."""

    def __init__(self, known: int, tasks: list[Task], shard_rows: int, columns: Columns) -> None:
        self.known, self.tasks, self.shard_rows, self.columns = known, tasks, shard_rows, columns
        self.stop = threading.Event()
        self.total: int | None = None

    def count(self) -> None:
        total = self.known
        for task in self.tasks:
            try:
                rows = csv_row_count(task.file, self.columns, self.stop.is_set)
            except InputError:  # the reader fails the same way: the task writes no pair of it
                rows = 0
            except Exception as exc:  # a read that failed: no total rather than a wrong one
                log.debug("%s: not counted for the progress bar: %s", task.file.path, exc)
                return
            if rows is None:  # the run ended first
                return
            total += csv_pending(rows, self.shard_rows, task.done)
        self.total = total
