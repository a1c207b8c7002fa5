"""Write a part so that it is either absent or complete, and say what was written.

The table is serialized in memory and written in one step (io/storage.py:
rename locally, one upload on object storage). Its size and SHA-256 go into the
shard's done marker, so a later run can prove the part is the one it marked.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from batchembed.io.layout import OutputLayout


@dataclass(frozen=True)
class WrittenPart:
    bytes: int
    sha256: str


def part_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()


def write_part(layout: OutputLayout, shard_id: str, table: pa.Table) -> WrittenPart:
    data = part_bytes(table)
    layout.part(shard_id).write_atomic(data, layout.temporary_dir())
    return WrittenPart(len(data), hashlib.sha256(data).hexdigest())
