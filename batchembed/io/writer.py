"""Write into the output directory so that every file is either absent or complete.

Each file is written to a temporary name starting with '.', fsynced, renamed
into place, and the directory fsynced, so neither kill -9 nor a power cut can
leave a half-written part, marker or manifest under its final name. Readers
(pyarrow, Spark, DuckDB globs on part-*) skip names starting with '.' or '_'.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from batchembed.errors import OutputError

PART_PREFIX = "part-"
TEMP_MARK = ".tmp-"


def part_path(output: Path, shard_id: str) -> Path:
    # shard ids come from sanitized file keys (reader.safe_name); refuse anything else outright
    if not shard_id or "/" in shard_id or "\\" in shard_id or shard_id.startswith("."):
        raise ValueError(f"unsafe shard id {shard_id!r}")
    return output / f"{PART_PREFIX}{shard_id}.parquet"


def temporary_path(final: Path) -> Path:
    return final.with_name(f".{final.name}{TEMP_MARK}{os.getpid()}")


def fsync_dir(directory: Path) -> None:
    """Make renames and unlinks in `directory` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on directories; the rename itself is still atomic
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _cannot_write(path: Path, exc: OSError) -> OutputError:
    why = " ".join(str(exc.strerror or exc).split())
    return OutputError(f"{path}: cannot write: {why}; check free space and permissions")


def write_part(output: Path, shard_id: str, table: pa.Table) -> Path:
    """Write one shard so that it is either absent or complete, never half-written."""
    final = part_path(output, shard_id)
    temporary = temporary_path(final)
    try:
        pq.write_table(table, temporary, compression="zstd")
        _fsync_file(temporary)
        os.replace(temporary, final)
        fsync_dir(output)
    except OSError as exc:
        raise _cannot_write(final, exc) from exc
    finally:
        temporary.unlink(missing_ok=True)
    return final


def write_text_atomic(path: Path, text: str) -> None:
    """Replace `path` with `text` in one step (markers, manifest, summary)."""
    temporary = temporary_path(path)
    try:
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        fsync_dir(path.parent)
    except OSError as exc:
        raise _cannot_write(path, exc) from exc
    finally:
        temporary.unlink(missing_ok=True)


def existing_parts(output: Path) -> list[Path]:
    return sorted(output.glob(f"{PART_PREFIX}*.parquet")) if output.is_dir() else []


def remove_stray_temporaries(directory: Path) -> int:
    """Delete temporary files a killed run left behind. Only call while holding the output lock:
    then no other writer can own them."""
    removed = 0
    if directory.is_dir():
        for path in directory.iterdir():
            if path.name.startswith(".") and TEMP_MARK in path.name and path.is_file():
                path.unlink(missing_ok=True)
                removed += 1
    return removed
