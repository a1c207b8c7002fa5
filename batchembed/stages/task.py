"""One task end to end, the ONE function both engines call: read -> prepare -> embed -> assemble
-> write the part -> mark it done, streaming in pieces of at most PIECE_PAIRS pairs.

A task is what the driver planned from metadata alone (stages/plan.py): one shard of a
Parquet file, or a whole file read in one pass (a CSV file, whose record boundaries cannot
be found without parsing from the start, or a Parquet file none of whose shards is done),
less the shards already done. It travels pickled, its input as a Location object (filesystem
+ exact path), so a worker opens exactly the file the driver listed.

Where each step runs is the caller's `Placement`: engines/local/ prepares in worker
processes, embeds on the model's thread and writes in a writer process; engines/ray.py
prepares and writes in a Ray prepare actor and embeds on a model actor. Each step hands back
a `Pending` result, so the next pieces move while one is worked on. Memory is bounded by the
pieces in flight and one row group, whatever the shard size. Running a task twice writes the
same parts and markers: that is what lets an engine retry a task whose worker died.

The marker is written here, after its part is in place and the owner check, on every engine;
each one is reported (`report`) as it is written, so the driver counts shards as they finish.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

import pyarrow as pa

from batchembed.config import Columns
from batchembed.errors import InputError
from batchembed.io.layout import OutputLayout
from batchembed.io.markers import DoneMarker, write_marker
from batchembed.io.reader import InputFile, InputShard, read_parquet_shard, read_pieces
from batchembed.io.schema import is_vector_schema
from batchembed.stages.assemble import ShardResult
from batchembed.stages.embed import EmbeddedShard
from batchembed.stages.memory import release_free_memory
from batchembed.stages.pending import Pending
from batchembed.stages.prepare import PreparedShard

PIECE_PAIRS = 1024  # ~2,000 sentences, ~75,000 subword tokens of ordinary prose: many batches even on a GPU


class Writer(Protocol):
    """The write step: a shard's pieces streamed into its part (stages/write.py ShardWriters)."""

    def append(self, shard_id: str, prepared: PreparedShard, embedded: EmbeddedShard) -> object: ...

    def finish(self, shard_id: str) -> Pending[ShardResult]:
        """Put the part in place; its result carries the part's size and SHA-256 for the marker."""
        ...

    def discard(self, shard_id: str) -> object:
        """Drop an unfinished part."""
        ...

    def remove(self, shard_id: str) -> None:
        """Delete a part already in place (it will get no marker)."""
        ...


class Placement(Protocol):
    """Where a task's steps run, and how many pieces each keeps in flight before the task waits
    for its oldest one (the model never waits on prepare, the writer never on the model)."""

    prepare_ahead: int
    embed_ahead: int
    writes_ahead: int
    writer: Writer

    def prepare(self, piece: InputShard) -> Pending[PreparedShard]: ...

    def embed(self, prepared: PreparedShard) -> Pending[EmbeddedShard]: ...


@dataclass(frozen=True)
class Task:
    file: InputFile
    run: int  # the run number its markers record
    shard: int | None = None  # Parquet: the shard's index; None: every pending shard, in one pass
    rows: int = 0  # Parquet: the file's row count, from its footer
    done: frozenset[int] = frozenset()  # shards already done, read past but not redone

    @property
    def file_key(self) -> str:
        return self.file.key


@dataclass(frozen=True)
class PieceWritten:
    """A piece's rows handed to its part: what progress counts."""

    pairs: int


@dataclass
class TaskResult:
    file_key: str
    markers: list[DoneMarker] = field(default_factory=list)  # one per part written, each reported as written
    subword_tokens: int = 0
    error: str | None = None  # the file failed part-way (rows before it are written)
    stopped: bool = False  # the worker stopped because the run no longer owned the output


TaskEvent = PieceWritten | DoneMarker | TaskResult
ProgressCallback = Callable[[int], None]  # the pairs of each piece written


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
    placement: Placement,
    check_owner: Callable[[], None],
    report: Callable[[PieceWritten | DoneMarker], None] | None = None,
) -> TaskResult:
    """Every pending shard of one task, written and marked; `check_owner()` raises once the run
    that owns the output has ended or lost it, and is called before each part and each marker."""
    return _TaskRun(task, context, placement, check_owner, report or (lambda event: None)).run()


class _TaskRun:
    """The pieces of one task in flight: being prepared, being embedded, parts being finished."""

    def __init__(
        self,
        task: Task,
        context: TaskContext,
        placement: Placement,
        check_owner: Callable[[], None],
        report: Callable[[PieceWritten | DoneMarker], None],
    ) -> None:
        self.task, self.context, self.placement, self.check_owner, self.report = (
            task,
            context,
            placement,
            check_owner,
            report,
        )
        self.result = TaskResult(task.file_key)
        self.preparing: deque[tuple[InputShard, Pending[PreparedShard]]] = deque()
        self.embedding: deque[tuple[InputShard, PreparedShard, Pending[EmbeddedShard]]] = deque()
        self.finishing: deque[tuple[ShardSpan, Pending[ShardResult]]] = deque()
        self.opened: InputShard | None = None  # the first piece of the shard being appended to
        self.pairs = 0  # pairs appended to that shard

    def run(self) -> TaskResult:
        try:
            try:
                for piece in task_pieces(self.task, self.context):
                    self.preparing.append((piece, self.placement.prepare(piece)))
                    self._advance(drain=False)
            except InputError as error:  # the rows read before it are still written
                self.result.error = str(error)
            self._advance(drain=True)
            if self.opened is not None:  # the file failed mid-shard: that shard is not complete
                self.placement.writer.discard(self.opened.shard_id)
                self.opened = None
        except BaseException:
            self._abandon()
            raise
        return self.result

    def _advance(self, drain: bool) -> None:
        placement = self.placement
        while len(self.preparing) > (0 if drain else placement.prepare_ahead):
            self._to_model()
            while len(self.embedding) > placement.embed_ahead:
                self._to_writer()
        while self.embedding and drain:
            self._to_writer()
        while self.finishing and (drain or self.finishing[0][1].done() or len(self.finishing) > placement.writes_ahead):
            self._mark_oldest()

    def _to_model(self) -> None:
        piece, preparing = self.preparing.popleft()
        prepared = preparing.result()
        prepared.keep_vectors = is_vector_schema(self.context.schema)  # the uses job writes vectors
        self.embedding.append((piece, prepared, self.placement.embed(prepared)))

    def _to_writer(self) -> None:
        piece, prepared, embedding = self.embedding.popleft()
        embedded = embedding.result()
        self.result.subword_tokens += embedded.subword_tokens
        self.opened = self.opened or piece
        self.pairs += prepared.pairs
        self.placement.writer.append(piece.shard_id, prepared, embedded)
        self.report(PieceWritten(prepared.pairs))
        if piece.ends_shard:
            self.check_owner()  # part first, marker second, each only while the run owns the output
            span = ShardSpan(piece.file, piece.index, self.opened.first_row, self.pairs, piece.last)
            self.finishing.append((span, self.placement.writer.finish(piece.shard_id)))
            self.opened, self.pairs = None, 0

    def _mark_oldest(self) -> None:
        span, finishing = self.finishing[0]  # left in place until marked: _abandon removes its part
        written = finishing.result()
        self.check_owner()
        assert written.written is not None
        marker = write_marker(
            self.context.layout, span, written.written, written.rows, written.status_counts, self.task.run
        )
        self.finishing.popleft()
        self.result.markers.append(marker)
        self.report(marker)
        release_free_memory()  # memory stays flat however many shards follow

    def _abandon(self) -> None:
        """Stopped early: no partial part stays, and no part finished without its marker."""
        writer = self.placement.writer
        if self.opened is not None:
            writer.discard(self.opened.shard_id)
        for span, finishing in self.finishing:
            with contextlib.suppress(Exception):
                finishing.result()
            with contextlib.suppress(Exception):
                writer.remove(span.shard_id)
