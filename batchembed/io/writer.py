"""Write result shards into the output directory: temp file, then an atomic rename."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

PART_PREFIX = "part-"


def part_path(output: Path, shard_id: str) -> Path:
    return output / f"{PART_PREFIX}{shard_id}.parquet"


def write_part(output: Path, shard_id: str, table: pa.Table) -> Path:
    """Write one shard so that it is either absent or complete, never half-written."""
    final = part_path(output, shard_id)
    temporary = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    try:
        pq.write_table(table, temporary, compression="zstd")
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, final)
    finally:
        temporary.unlink(missing_ok=True)
    return final


def existing_parts(output: Path) -> list[Path]:
    return sorted(output.glob(f"{PART_PREFIX}*.parquet")) if output.is_dir() else []
