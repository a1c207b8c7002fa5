"""One task end to end, the same function in both engines: read -> prepare -> embed -> assemble
-> write the part -> mark it done, streaming in pieces of at most PIECE_PAIRS pairs.

A task is what the driver planned from metadata alone (stages/plan.py): one shard of a
Parquet file, or a whole CSV file (whose record boundaries cannot be found without parsing
from the start) less the shards already done. It travels pickled, its input as a Location
object (filesystem + exact path), so a worker opens exactly the file the driver listed.

Only the model forward is the caller's: `embed` hands a prepared piece to the model (in this
process, or a Ray model actor) and returns a function that waits for its vectors, so the next
piece is prepared while the model runs this one. Memory is bounded by the pieces in flight and
one row group, whatever the shard size. Running a task twice writes the same parts and markers:
that is what lets an engine retry a task whose worker died.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import pyarrow as pa

from batchembed.config import Columns
from batchembed.embedders.base import Preparer
from batchembed.errors import InputError
from batchembed.io.layout import OutputLayout
from batchembed.io.markers import DoneMarker, write_marker
from batchembed.io.reader import InputFile, InputShard, read_parquet_shard, read_pieces
from batchembed.stages.embed import EmbeddedShard
from batchembed.stages.prepare import PreparedShard, prepare
from batchembed.stages.write import ShardWriters
from batchembed.tokenize import TokenizeMany

PIECE_PAIRS = 1024  # ~2,000 sentences, ~75,000 subword tokens of ordinary prose: many batches even on a GPU
PIECES_AHEAD = 2  # pieces handed to the model before waiting for the oldest: the model never waits on prepare

Embed = Callable[[PreparedShard], Callable[[], EmbeddedShard]]


@dataclass(frozen=True)
class Task:
    file: InputFile
    run: int  # the run number its markers record
    shard: int | None = None  # Parquet: the shard's index; None: every shard of a CSV file
    rows: int = 0  # Parquet: the file's row count, from its footer
    done: frozenset[int] = frozenset()  # CSV: shards already done, read past but not redone

    @property
    def file_key(self) -> str:
        return self.file.key


@dataclass
class TaskResult:
    file_key: str
    markers: list[DoneMarker] = field(default_factory=list)  # one per part written, in order
    subword_tokens: int = 0
    error: str | None = None  # the file failed part-way (rows before it are written)
    stopped: bool = False  # the worker stopped because the run no longer owned the output


@dataclass
class TaskContext:
    """What a worker needs, besides the models, to run any task of a run."""

    columns: Columns
    shard_rows: int
    layout: OutputLayout
    schema: pa.Schema
    piece_pairs: int = PIECE_PAIRS


@dataclass(frozen=True)
class ShardSpan:
    """A shard as its done marker records it, built from its pieces."""

    file: InputFile
    index: int
    first_row: int
    pairs: int
    last: bool

    @property
    def shard_id(self) -> str:
        return f"{self.file.key}-{self.index:06d}"

    def __len__(self) -> int:
        return self.pairs


def task_pieces(task: Task, context: TaskContext) -> Iterator[InputShard]:
    """Read: the task's pending rows as pieces, each within one shard (InputShard.ends_shard)."""
    if task.shard is not None:
        yield from read_parquet_shard(
            task.file, context.columns, context.shard_rows, task.shard, task.rows, context.piece_pairs
        )
        return
    for piece in read_pieces(task.file, context.columns, context.shard_rows, context.piece_pairs):
        if piece.index not in task.done:
            yield piece


def run_task(
    task: Task,
    context: TaskContext,
    tokenize_many: TokenizeMany,
    preparers: Sequence[Preparer],
    embed: Embed,
    check_owner: Callable[[], None],
) -> TaskResult:
    """Every pending shard of one task, written and marked; `check_owner()` raises once the run
    that owns the output has ended or lost it, and is called before each part and each marker."""
    result = TaskResult(task.file_key)
    in_flight: deque[tuple[InputShard, PreparedShard, Callable[[], EmbeddedShard]]] = deque()
    writers = ShardWriters(context.layout, context.schema)
    first: InputShard | None = None  # the first piece of the shard being written

    def finish_oldest() -> None:
        nonlocal first
        piece, prepared, vectors = in_flight.popleft()
        embedded = vectors()
        result.subword_tokens += embedded.subword_tokens
        first = first or piece
        writers.append(piece.shard_id, prepared, embedded)
        if piece.ends_shard:
            check_owner()  # part first, marker second, each only while the run owns the output
            written = writers.finish(piece.shard_id)
            check_owner()
            assert written.written is not None
            span = ShardSpan(piece.file, piece.index, first.first_row, written.pairs, piece.last)
            result.markers.append(
                write_marker(context.layout, span, written.written, written.rows, written.status_counts, task.run)
            )
            first = None

    try:
        try:
            for piece in task_pieces(task, context):
                prepared = prepare(piece, tokenize_many, preparers)
                in_flight.append((piece, prepared, embed(prepared)))
                while len(in_flight) > PIECES_AHEAD:
                    finish_oldest()
        except InputError as error:  # the rows read before it are still written
            result.error = str(error)
        while in_flight:
            finish_oldest()
    finally:
        writers.close()  # stopped mid-shard: no partial part may stay
    return result
