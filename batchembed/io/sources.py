"""Open one input file as its target mode and a stream of column chunks of Python values.

CSV is parsed with Python's `csv` module, record by record, because a hostile
file must cost one row, not the file: pyarrow's CSV reader rejects a whole block
on the first record with the wrong number of fields, and cannot say which data
row it was. Here every record is one data row with an exact number, a record
whose field count differs from the header's becomes a MALFORMED row (the
pipeline writes it as a `malformed_record` status row), and bytes that are not
UTF-8 survive as `bytes` (written as `invalid_encoding`). Parquet is streamed
with pyarrow in record batches. Neither is ever loaded whole.
"""

from __future__ import annotations

import codecs
import csv
import io
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from batchembed.config import Columns
from batchembed.errors import InputError
from batchembed.targets import TargetMode

if TYPE_CHECKING:
    from batchembed.io.reader import InputFile

log = logging.getLogger(__name__)

Chunk = dict[str, list[Any]]  # column name -> values, all lists the same length
CHUNK_ROWS = 8192
# Python's default (128 KiB) would turn a long but legitimate document into a bad row;
# the cap still stops one unterminated quote from swallowing gigabytes into one field.
MAX_FIELD_CHARS = 16 << 20
DELIMITERS = (",", "\t", ";", "|")
MALFORMED_LOGGED = 5  # per file; the rest are counted


class Malformed:
    """A sentence cell of a CSV record that could not be split into the header's fields.

    Deliberately neither text nor bytes nor None, so the pipeline reports the
    row as `malformed_record` instead of guessing which field is which.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "<malformed CSV record>"


MALFORMED = Malformed()


def show(value: object) -> str:
    """A path or name for a one-line message: control characters escaped, surrogates replaced."""
    text = str(value).encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text)


def reason(exc: BaseException) -> str:
    """An exception's message on one line (Arrow's span several), for `file: what (why); fix` errors."""
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return " ".join(str(text).split())


def needed_columns(columns: Columns, available: list[str], where: str) -> tuple[TargetMode, list[str]]:
    present = set(available)
    for required in (columns.sentence1, columns.sentence2):
        if required not in present:
            raise InputError(
                f"{where}: missing column {required!r} (columns: {', '.join(map(show, available)) or 'none'}); "
                "name the sentence columns with --sentence1-column/--sentence2-column"
            )
    mode = columns.detect_mode(present)
    needed = [columns.sentence1, columns.sentence2, *columns.target_columns(mode)]
    if columns.id in present:
        needed.append(columns.id)
    for name in needed:
        if available.count(name) > 1:
            count = available.count(name)
            raise InputError(f"{where}: column {name!r} appears {count} times in the header; rename one of them")
    return mode, needed


# -- CSV -----------------------------------------------------------------------------------


class _Bounded(io.RawIOBase):
    """The first `limit` bytes of a binary file: rows appended while a run reads the file
    belong to the next run (the manifest recorded this size and hash)."""

    def __init__(self, raw: Any, limit: int | None) -> None:
        self.raw, self.left = raw, limit

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer)
        if self.left is not None:
            view = view[: max(0, self.left)]
        count = self.raw.readinto(view) or 0
        if self.left is not None:
            self.left -= count
        return count

    def close(self) -> None:
        self.raw.close()
        super().close()


def _cell(text: str) -> str | bytes | None:
    """Empty -> None (as pyarrow reads an empty CSV field); undecodable bytes stay bytes."""
    if not text:
        return None
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: surrogateescape'd invalid UTF-8 bytes
            return text.encode("utf-8", "surrogateescape")
    return text


def _split_header(line: str, suffix: str, columns: Columns) -> tuple[str, list[str]]:
    """The delimiter and the column names. The suffix's delimiter (tab for .tsv, else comma)
    wins; another common one is used only if it alone yields both sentence columns."""
    default = "\t" if suffix == ".tsv" else ","
    candidates = [default, *(d for d in DELIMITERS if d != default)]
    parsed = {d: next(csv.reader([line], delimiter=d), []) for d in candidates}
    for delimiter in candidates:
        names = parsed[delimiter]
        if columns.sentence1 in names and columns.sentence2 in names:
            return delimiter, names
    return default, parsed[default]


def csv_chunks(file: InputFile, columns: Columns) -> tuple[TargetMode, Iterator[Chunk]]:
    where = show(file.path)
    try:
        raw = file.path.open_file()  # random access on every filesystem; closed by the generator below
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"{where}: cannot open: {reason(exc)}; check that it exists and is readable") from exc
    try:
        start = raw.read(4)
        raw.seek(0)
    except OSError as exc:
        raw.close()
        raise InputError(f"{where}: cannot read: {reason(exc)}") from exc
    if start.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raw.close()
        raise InputError(f"{where}: the file is UTF-16 (it starts with a UTF-16 byte-order mark); save it as UTF-8")
    # utf-8-sig drops a leading BOM; surrogateescape keeps invalid bytes for the per-cell check
    text = io.TextIOWrapper(
        io.BufferedReader(_Bounded(raw, file.extent)), encoding="utf-8-sig", errors="surrogateescape", newline=""
    )
    try:
        header_line = text.readline()
    except OSError as exc:
        text.close()
        raise InputError(f"{where}: cannot read: {reason(exc)}") from exc
    if not header_line.strip():
        text.close()
        raise InputError(f"{where}: empty file or empty first line; the first line must be the header")
    csv.field_size_limit(max(csv.field_size_limit(), MAX_FIELD_CHARS))
    try:
        delimiter, header = _split_header(header_line, file.path.suffix.lower(), columns)
    except csv.Error as exc:
        text.close()
        why = reason(exc)
        raise InputError(f"{where}: cannot parse the header line ({why}); the first line must be the header") from exc
    header = [show(name) for name in header]
    if delimiter != ("\t" if file.path.suffix.lower() == ".tsv" else ","):
        log.warning("%s: the header is %r-separated; reading the file with that delimiter", where, delimiter)
    try:
        mode, needed = needed_columns(columns, header, where)
    except InputError:
        text.close()
        raise
    reader = csv.reader(text, delimiter=delimiter, strict=False)
    return mode, _csv_records(text, reader, header, needed, columns, where)


def _csv_records(
    text: io.TextIOWrapper, reader: Any, header: list[str], needed: list[str], columns: Columns, where: str
) -> Iterator[Chunk]:
    positions = {name: header.index(name) for name in needed}
    sentences = {columns.sentence1, columns.sentence2}
    chunk: Chunk = {name: [] for name in needed}
    row, malformed = 0, 0
    with text:
        while True:
            problem = ""
            try:
                record = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:  # e.g. a field over MAX_FIELD_CHARS: one bad row, then go on
                record, problem = None, str(exc)
            if record == []:  # a blank line is not a row (pyarrow skips them too)
                continue
            row += 1
            if record is None or len(record) != len(header):
                malformed += 1
                if malformed <= MALFORMED_LOGGED:
                    found = problem or f"{len(record or [])} fields, the header has {len(header)}"
                    log.warning(
                        "%s: row %d (ending on line %d) is malformed (%s); written as invalid_sentence — "
                        "quote fields that contain the delimiter, quotes or line breaks",
                        where,
                        row,
                        reader.line_num + 1,
                        found,
                    )
                for name in needed:
                    chunk[name].append(MALFORMED if name in sentences else None)
            else:
                for name, position in positions.items():
                    chunk[name].append(_cell(record[position]))
            if row % CHUNK_ROWS == 0:
                yield chunk
                chunk = {name: [] for name in needed}
    if malformed > MALFORMED_LOGGED:
        log.warning("%s: %d malformed rows in all (first %d logged)", where, malformed, MALFORMED_LOGGED)
    if chunk[needed[0]]:
        yield chunk


# -- Parquet ---------------------------------------------------------------------------------


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


def parquet_chunks(file: InputFile, columns: Columns) -> tuple[TargetMode, Iterator[Chunk]]:
    import pyarrow.parquet as pq

    where = show(file.path)
    try:
        parquet = pq.ParquetFile(file.path.path, filesystem=file.path.fs)
        names = parquet.schema_arrow.names
    except OSError as exc:
        why = reason(exc)
        raise InputError(f"{where}: cannot read as Parquet ({why}); check that it exists and is readable") from exc
    except (pa.ArrowException, ValueError) as exc:
        why = reason(exc)
        raise InputError(f"{where}: not a readable Parquet file ({why}); is it truncated or being written?") from exc
    mode, needed = needed_columns(columns, names, where)
    for name in needed:
        kind = parquet.schema_arrow.field(name).type
        if pa.types.is_nested(kind):
            parquet.close()
            raise InputError(f"{where}: column {name!r} has type {kind}, expected text or integers")

    def chunks() -> Iterator[Chunk]:
        with parquet:
            for batch in parquet.iter_batches(batch_size=CHUNK_ROWS, columns=needed):
                yield {name: _values(batch.column(name), name == columns.id) for name in needed}

    return mode, chunks()
