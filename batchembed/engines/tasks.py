"""Work planned from metadata alone, done where the data is: the unit of a distributed run.

The driver cuts tasks without reading a row (engines/job.py `plan_tasks`): one
per pending shard of a Parquet file (rows counted from its footer; a shard
reads only the row groups it lies in), and one per CSV file, whose record
boundaries cannot be found without parsing from the start (a quoted field may
hold line breaks), so byte ranges would need a reader that scans anyway. A
worker runs a task with batchembed's own readers (every row accounted for, a
bad row a status row), embeds it, writes each part and then its done marker,
and returns only the markers (counts) to the driver.

A task is plain JSON, so it travels as a string through any scheduler, and
running it twice writes the same parts and markers again: that is what lets
Ray retry a task whose worker died.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa

from batchembed.config import Columns
from batchembed.embedders.base import Embedder
from batchembed.errors import InputError
from batchembed.io.layout import OutputLayout
from batchembed.io.markers import DoneMarker, part_verified, write_marker
from batchembed.io.reader import InputFile, InputShard, read_parquet_shard, read_shards
from batchembed.io.storage import portable, reopen
from batchembed.io.writer import write_part
from batchembed.pipeline import process_shard
from batchembed.tokenize import TokenizeMany


@dataclass(frozen=True)
class ShardTask:
    file: dict[str, str]  # portable() of the input file
    format: str
    extent: int | None
    run: int  # the run number its markers record
    shard: int | None = None  # Parquet: the shard's index; None: every shard of a CSV file
    rows: int = 0  # Parquet: the file's row count, from its footer
    done: list[list[Any]] = field(default_factory=list)  # CSV: shards already done, to skip

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ShardTask:
        return cls(**json.loads(text))

    def input_file(self) -> InputFile:
        return InputFile(reopen(self.file), self.format, self.extent)


@dataclass
class TaskResult:
    file_key: str
    markers: list[dict[str, Any]]  # asdict(DoneMarker) of each part written
    subword_tokens: int = 0
    skipped: int = 0  # shards of the task found done already
    error: str | None = None  # the file failed part-way (rows before it are written)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> TaskResult:
        return cls(**json.loads(text))

    def done_markers(self) -> list[DoneMarker]:
        return [DoneMarker(**m) for m in self.markers]


def _identity(marker: DoneMarker) -> list[Any]:
    return [marker.index, marker.first_row, marker.pairs, marker.last, marker.extent]


def csv_task(file: InputFile, run: int, done: Sequence[DoneMarker]) -> ShardTask:
    return ShardTask(portable(file.path), file.format, file.extent, run, done=[_identity(m) for m in done])


def parquet_task(file: InputFile, run: int, shard: int, rows: int) -> ShardTask:
    return ShardTask(portable(file.path), file.format, file.extent, run, shard=shard, rows=rows)


def _shards(task: ShardTask, columns: Columns, shard_rows: int, result: TaskResult) -> Iterator[InputShard]:
    file = task.input_file()
    if task.shard is not None:
        yield read_parquet_shard(file, columns, shard_rows, task.shard, task.rows)
        return
    done = {tuple(identity) for identity in task.done}
    for shard in read_shards(file, columns, shard_rows):
        if (shard.index, shard.first_row, len(shard), shard.last, shard.file.extent) in done:
            result.skipped += 1
            continue
        yield shard


def run_task(
    task: ShardTask,
    columns: Columns,
    shard_rows: int,
    layout: OutputLayout,
    schema: pa.Schema,
    tokenize_many: TokenizeMany,
    embedders: Sequence[Embedder],
) -> TaskResult:
    """Read, embed, write and mark every pending shard of one task; return what was written."""
    result = TaskResult(task.input_file().key, [])
    tokens_before = sum(e.stats.subword_tokens for e in embedders)
    try:
        for shard in _shards(task, columns, shard_rows, result):
            processed = process_shard(shard, tokenize_many, embedders, schema)
            part = write_part(layout, shard.shard_id, processed.table)
            marker = write_marker(layout, shard, part, processed.table.num_rows, processed.status_counts, task.run)
            result.markers.append(asdict(marker))
    except InputError as error:
        result.error = str(error)
    result.subword_tokens = sum(e.stats.subword_tokens for e in embedders) - tokens_before
    return result


def unverified_parts(layout: OutputLayout, markers: list[dict[str, Any]]) -> list[str]:
    """The shard ids among `markers` whose part does not have the marker's size and SHA-256."""
    return [m["shard_id"] for m in markers if not part_verified(layout, DoneMarker(**m))]
