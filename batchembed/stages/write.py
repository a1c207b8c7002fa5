"""Write: a shard's assembled pieces -> its Parquet part, all or nothing.

`PartWriter` takes a shard's pieces one at a time as they are embedded and streams them
into the part: what it holds is one row group, not the shard. `ShardWriters` keeps one per
shard being written (in a Ray prepare actor, in the local engine's process or its writer
process). Either way the part appears under its name only when complete (a temporary file
renamed locally, one upload on object storage), and its done marker is written after it.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import replace

import pyarrow as pa
import pyarrow.parquet as pq

from batchembed.errors import OutputError
from batchembed.io.layout import OutputLayout
from batchembed.io.markers import WrittenPart
from batchembed.io.storage import TEMP_MARK, fsync_dir
from batchembed.stages.assemble import ShardResult, assemble, combine
from batchembed.stages.embed import EmbeddedShard
from batchembed.stages.pending import Ready
from batchembed.stages.prepare import PreparedShard

EMPTY = pa.table({})
ROW_GROUP_ROWS = 65_536  # rows buffered before a row group is written: bounded, and big enough to compress well
HASH_BLOCK = 1 << 20


class PartWriter:
    """One shard's part, written piece by piece; `finish()` puts it in place and returns its size
    and SHA-256, `discard()` leaves nothing behind."""

    def __init__(self, layout: OutputLayout, shard_id: str, schema: pa.Schema) -> None:
        self.layout, self.target, self.schema = layout, layout.part(shard_id), schema
        self.rows = 0
        self.buffered: list[pa.Table] = []
        self.buffered_rows = 0
        if self.target.is_local:  # a temporary file beside the bookkeeping, renamed when complete
            temporary_dir = layout.temporary_dir()
            assert temporary_dir is not None
            self.temporary: str | None = os.path.join(
                temporary_dir.path, f".{self.target.name}{TEMP_MARK}{os.getpid()}-{id(self):x}"
            )
            self.sink: str | pa.BufferOutputStream = self.temporary
        else:  # object storage: compressed bytes in memory, sent in one upload
            self.temporary = None
            self.sink = pa.BufferOutputStream()
        self.writer = pq.ParquetWriter(self.sink, schema, compression="zstd")

    def append(self, table: pa.Table) -> None:
        self.buffered.append(table)
        self.buffered_rows += table.num_rows
        self.rows += table.num_rows
        if self.buffered_rows >= ROW_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        if self.buffered:
            self.writer.write_table(pa.concat_tables(self.buffered).combine_chunks())
        self.buffered, self.buffered_rows = [], 0

    def finish(self) -> WrittenPart:
        try:
            if not self.rows:
                self.writer.write_table(self.schema.empty_table())
            self._flush()
            self.writer.close()
            if self.temporary is None:
                assert isinstance(self.sink, pa.BufferOutputStream)
                data = self.sink.getvalue().to_pybytes()
                self.target.write_atomic(data)
                return WrittenPart(len(data), hashlib.sha256(data).hexdigest())
            written = _hashed(self.temporary)
            os.replace(self.temporary, self.target.path)
            fsync_dir(os.path.dirname(self.target.path))
            return written
        except OSError as exc:
            raise OutputError(f"{self.target}: cannot write: {exc}; check free space and permissions") from exc
        finally:
            self.discard()

    def discard(self) -> None:
        if self.writer.is_open:
            self.writer.close()
        if self.temporary is not None and os.path.exists(self.temporary):
            os.unlink(self.temporary)


class ShardWriters:
    """The parts of the shards being written, each streamed as its pieces arrive in order:
    memory holds a row group per open shard, not the shards."""

    def __init__(self, layout: OutputLayout, schema: pa.Schema) -> None:
        self.layout, self.schema = layout, schema
        self.open: dict[str, tuple[PartWriter, list[ShardResult]]] = {}

    def append(self, shard_id: str, prepared: PreparedShard, embedded: EmbeddedShard) -> None:
        assembled = assemble(prepared, embedded, self.schema)
        if shard_id not in self.open:
            self.open[shard_id] = (PartWriter(self.layout, shard_id, self.schema), [])
        part, counts = self.open[shard_id]
        part.append(assembled.table)
        counts.append(replace(assembled, table=EMPTY))

    def finish(self, shard_id: str) -> Ready[ShardResult]:
        part, pieces = self.open.pop(shard_id)
        written = part.finish()
        total = combine(pieces)
        return Ready(replace(total, table=EMPTY, written=written, written_rows=part.rows))

    def discard(self, shard_id: str) -> None:
        if shard_id in self.open:
            self.open.pop(shard_id)[0].discard()

    def remove(self, shard_id: str) -> None:
        """Delete a part already in place (it will get no marker)."""
        self.layout.part(shard_id).delete()

    def close(self) -> None:
        for shard_id in list(self.open):
            self.discard(shard_id)


def _hashed(path: str) -> WrittenPart:
    """Size and SHA-256 of a closed local file, fsynced so the rename that follows is durable."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(HASH_BLOCK):
            digest.update(block)
        os.fsync(handle.fileno())
        return WrittenPart(handle.tell(), digest.hexdigest())
