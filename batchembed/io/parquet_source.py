"""A Parquet input as its target mode and a stream of column chunks of Python values.

Streamed with pyarrow in record batches, row group by row group: a row group that cannot be
decoded becomes UNREADABLE rows (its row count is in the footer; written as
`unreadable_row_group`) and the next group is read. Never loaded whole.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from batchembed import status
from batchembed.config import Columns
from batchembed.errors import InputError
from batchembed.io.inputs import InputFile
from batchembed.io.source_columns import (
    CHUNK_ROWS,
    MALFORMED,
    MALFORMED_LOGGED,
    UNREADABLE,
    Chunk,
    _kept_values,
    kept_key,
    needed_columns,
)
from batchembed.messages import one_line as reason
from batchembed.messages import show
from batchembed.targets import TargetMode

log = logging.getLogger(__name__)

# An unreadable row group may claim at most this many rows per byte of its columns (or
# 1M rows): a corrupted footer must not turn into billions of status rows.
UNREADABLE_ROWS_PER_BYTE = 1024


def _values(array: pa.Array | pa.ChunkedArray, is_id: bool) -> list[Any]:
    """Python values of one column, text checked cell by cell like CSV's."""
    kind = array.type
    if pa.types.is_dictionary(kind):
        array = array.dictionary_decode()
        kind = array.type
    if is_id and not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        try:  # numbers, dates...: their text; nulls stay null and get the default id
            return [None if v is None else str(v) for v in array.cast(pa.string()).to_pylist()]
        except (pa.ArrowException, ValueError):
            pass
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        # Parquet strings are not validated as UTF-8 on read: decode ourselves, per cell
        array = array.cast(pa.large_binary() if pa.types.is_large_string(kind) else pa.binary())
        kind = array.type
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_fixed_size_binary(kind):
        return [None if v is None else _decode(v) for v in array.to_pylist()]
    try:
        return array.to_pylist()
    except (pa.ArrowException, ValueError, OverflowError):  # e.g. timestamps out of Python's range
        return [None if v is None else MALFORMED for v in array.cast(pa.string(), safe=False).to_pylist()]


def _decode(value: bytes) -> str | bytes:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value


def _rows(first: int, last: int) -> str:
    return f"data row {first} is" if first == last else f"data rows {first}-{last} are"


# what remote filesystems' errors say when the storage, not the data, failed (pyarrow gives them no errno)
STORAGE_FAILURES = ("AWS Error", "curlCode", "NETWORK", "google::cloud", "Azure", "HDFS", "timed out", "Connection")


def _storage_failed(exc: BaseException) -> bool:
    if not isinstance(exc, OSError):
        return False
    return bool(exc.errno) or any(mark in str(exc) for mark in STORAGE_FAILURES)


def _open_parquet(file: InputFile) -> Any:
    """The file's footer read, or why it cannot be: one wording for the planner and the reader."""
    import pyarrow.parquet as pq

    where = show(file.path)
    try:
        return pq.ParquetFile(file.path.path, filesystem=file.path.fs)
    except OSError as exc:
        why = reason(exc)
        raise InputError(f"{where}: cannot read as Parquet ({why}); check that it exists and is readable") from exc
    except (pa.ArrowException, ValueError) as exc:
        why = reason(exc)
        raise InputError(f"{where}: not a readable Parquet file ({why}); is it truncated or being written?") from exc


def parquet_rows(file: InputFile) -> int:
    """The file's row count, from its footer alone (the planner cuts shards with it)."""
    with _open_parquet(file) as parquet:
        return int(parquet.metadata.num_rows)


def parquet_chunks(file: InputFile, columns: Columns, rows: range | None = None) -> tuple[TargetMode, Iterator[Chunk]]:
    """The file's rows as chunks; with `rows` (0-based), only those, reading only the row groups they
    lie in."""
    where = show(file.path)
    parquet = _open_parquet(file)
    names = parquet.schema_arrow.names
    mode, needed = needed_columns(columns, names, where)
    for name in needed:
        kind = parquet.schema_arrow.field(name).type
        if pa.types.is_nested(kind):
            parquet.close()
            raise InputError(f"{where}: column {name!r} has type {kind}, expected text or integers")

    sentences = {columns.sentence1, columns.sentence2}
    read = list(dict.fromkeys([*needed, *columns.keep]))

    def chunks() -> Iterator[Chunk]:
        unreadable: list[tuple[int, int]] = []  # first and last data row of each group lost
        with parquet:
            first = 1  # data row number of the group's first row
            groups = parquet.metadata.num_row_groups
            start, stop = (rows.start, rows.stop) if rows is not None else (0, parquet.metadata.num_rows)
            for group in range(groups):
                metadata = parquet.metadata.row_group(group)
                size, done = metadata.num_rows, 0
                if first - 1 + size <= start or first - 1 >= stop:  # no wanted row in this group
                    first += size
                    continue
                try:
                    for batch in parquet.iter_batches(batch_size=CHUNK_ROWS, row_groups=[group], columns=read):
                        at = first - 1 + done  # 0-based row of the batch's first row
                        lo, hi = max(start, at), min(stop, at + batch.num_rows)
                        if lo < hi:
                            part = batch.slice(lo - at, hi - lo)
                            chunk = {name: _values(part.column(name), name == columns.id) for name in needed}
                            chunk.update({kept_key(name): _kept_values(part.column(name)) for name in columns.keep})
                            yield chunk
                        done += batch.num_rows
                except (pa.ArrowException, OSError, ValueError) as exc:
                    if _storage_failed(exc):  # not the data: stop the file, a re-run reads it again
                        raise
                    lost = size - done
                    if not 0 <= lost <= max(1 << 20, UNREADABLE_ROWS_PER_BYTE * metadata.total_byte_size):
                        raise  # the footer's count is not believable: the file stops here
                    lo, hi = max(start, first - 1 + done), min(stop, first - 1 + size)  # lost and wanted
                    if lo < hi:
                        unreadable.append((lo + 1, hi))
                        if len(unreadable) <= MALFORMED_LOGGED:
                            log.warning(
                                "%s: row group %d of %d cannot be read (%s); its %s written as %s",
                                where,
                                group + 1,
                                groups,
                                reason(exc),
                                _rows(lo + 1, hi),
                                status.UNREADABLE_ROW_GROUP,
                            )
                    for begin in range(lo, hi, CHUNK_ROWS):
                        count = min(CHUNK_ROWS, hi - begin)
                        keys = [*needed, *map(kept_key, columns.keep)]
                        yield {key: [UNREADABLE if key in sentences else None] * count for key in keys}
                    done = size
                first += done
            if len(unreadable) > MALFORMED_LOGGED:
                log.warning(
                    "%s: %d row groups cannot be read in all (%d rows, first %d logged), written as %s",
                    where,
                    len(unreadable),
                    sum(last - begin + 1 for begin, last in unreadable),
                    MALFORMED_LOGGED,
                    status.UNREADABLE_ROW_GROUP,
                )

    return mode, chunks()


def parquet_kept_field(file: InputFile, name: str) -> pa.Field | None:
    """A kept column's output field: the Parquet column's own type (dictionaries decoded); None
    when the file or the column cannot be read (the reader reports it)."""
    try:
        with _open_parquet(file) as parquet:
            kind = parquet.schema_arrow.field(name).type
    except (InputError, KeyError):
        return None
    return pa.field(name, kind.value_type if pa.types.is_dictionary(kind) else kind)
