"""Open one input file as its target mode and a stream of column chunks of Python values.

CSV is parsed with Python's `csv` module, record by record, because a hostile
file must cost one row, not the file: pyarrow's CSV reader rejects a whole block
on the first record with the wrong number of fields, and cannot say which data
row it was. Here every record is one data row with an exact number, a record
whose field count differs from the header's becomes a MALFORMED row (the
pipeline writes it as a `malformed_record` status row), and bytes that are not
UTF-8 survive as `bytes` (written as `invalid_encoding`). A quoted field that
runs away (its quote not closed within MAX_RECORD_LINES lines or MAX_RECORD_CHARS
characters, or by the end of the file), or a record of several lines with the
wrong number of fields, costs only its first line: that line becomes one
malformed row and parsing resumes on the next line, so later row numbers stay true.

Parquet is streamed with pyarrow in record batches, row group by row group: a row
group that cannot be decoded becomes UNREADABLE rows (its row count is in the
footer; written as `unreadable_row_group`) and the next group is read. Neither
format is ever loaded whole.
"""

from __future__ import annotations

import codecs
import csv
import io
import logging
from collections import deque
from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from batchembed import status
from batchembed.config import TARGET_OPTIONS, Columns
from batchembed.errors import InputError
from batchembed.io.inputs import InputFile
from batchembed.messages import one_line as reason
from batchembed.messages import show
from batchembed.targets import TargetMode

log = logging.getLogger(__name__)

Chunk = dict[str, list[Any]]  # column name (or kept_key(name)) -> values, all lists the same length
KEPT = "\x00kept:"  # no real column name starts with NUL: kept values never collide with a needed column's
CHUNK_ROWS = 8192
# One CSV record (all its fields and lines) may hold this many characters: Python's field
# default (128 KiB) would turn a long but legitimate document into a bad row; the cap still
# stops one unterminated quote from swallowing gigabytes.
MAX_RECORD_CHARS = 16 << 20
# A quoted field may span this many lines; past it, its opening quote is taken for damage.
MAX_RECORD_LINES = 1_000
DELIMITERS = (",", "\t", ";", "|")
MALFORMED_LOGGED = 5  # per file; the rest are counted
SNIFF_BYTES = 4096  # read to recognize UTF-16/32 and binary files
WIDE_CODECS = (("utf-32-le", "UTF-32"), ("utf-32-be", "UTF-32"), ("utf-16-le", "UTF-16"), ("utf-16-be", "UTF-16"))
# An unreadable row group may claim at most this many rows per byte of its columns (or
# 1M rows): a corrupted footer must not turn into billions of status rows.
UNREADABLE_ROWS_PER_BYTE = 1024


class Malformed:
    """A sentence cell of a row that could not be read: a CSV record that could not be split
    into the header's fields, or a row of a Parquet row group that cannot be decoded.

    Deliberately neither text nor bytes nor None, so the pipeline writes the row with
    `status` instead of guessing which field is which.
    """

    __slots__ = ("status",)

    def __init__(self, status: str) -> None:
        self.status = status

    def __repr__(self) -> str:
        return f"<{self.status}>"


MALFORMED = Malformed(status.MALFORMED_RECORD)
UNREADABLE = Malformed(status.UNREADABLE_ROW_GROUP)


def _quoted(names: list[str]) -> str:
    return ", ".join(repr(show(n)) for n in names)


def _check_target_columns(columns: Columns, available: list[str], where: str) -> None:
    """Target columns the user named must exist, and a mode's columns come all or none: a
    file that silently fell back to shared-word mode would write the wrong comparisons."""
    present = set(available)
    listed = ", ".join(map(show, available)) or "none"
    named = columns.named_modes()
    for mode, option in TARGET_OPTIONS.items():
        wanted = list(columns.target_columns(mode))
        missing = [name for name in wanted if name not in present]
        if not missing:
            continue
        s = "s" if len(missing) > 1 else ""
        if mode in named:
            raise InputError(
                f"{where}: missing column{s} {_quoted(missing)} named by {option} (columns: {listed}); "
                f"check the name{s}, or leave {option} out"
            )
        if len(missing) < len(wanted):
            have = [name for name in wanted if name in present]
            raise InputError(
                f"{where}: has {mode.value} target column{'s' if len(have) > 1 else ''} {_quoted(have)} but not "
                f"{_quoted(missing)} (columns: {listed}); add the missing column{s}, or name the "
                f"{len(wanted)} columns with {option}"
            )


def needed_columns(columns: Columns, available: list[str], where: str) -> tuple[TargetMode, list[str]]:
    present = set(available)
    for required in (columns.sentence1, columns.sentence2):
        if required not in present:
            raise InputError(
                f"{where}: missing column {required!r} (columns: {', '.join(map(show, available)) or 'none'}); "
                "name the sentence columns with --sentence1-column/--sentence2-column"
            )
    _check_target_columns(columns, available, where)
    mode = columns.detect_mode(present)
    for named in sorted(columns.named_modes()):
        if named is not mode:  # all its columns are here (else _check_target_columns raised): mode ranks higher
            log.warning(
                "%s: the %s target columns take precedence over those named by %s; comparing %s",
                where,
                mode.value,
                TARGET_OPTIONS[named],
                mode.value,
            )
    needed = [columns.sentence1, columns.sentence2, *columns.target_columns(mode)]
    if columns.id in present:
        needed.append(columns.id)
    missing = [name for name in columns.keep if name not in present]
    if missing:
        s = "s" if len(missing) > 1 else ""
        raise InputError(
            f"{where}: missing column{s} {_quoted(missing)} named by --keep-columns (columns: "
            f"{', '.join(map(show, available)) or 'none'}); check the name{s}, or leave {'them' if s else 'it'} out"
        )
    for name in [*needed, *columns.keep]:
        if available.count(name) > 1:
            count = available.count(name)
            raise InputError(f"{where}: column {name!r} appears {count} times in the header; rename one of them")
    return mode, needed


def kept_key(name: str) -> str:
    """The chunk key of a kept column's values (--keep-columns): kept apart from the needed columns'
    values, which the reader turns into ids and checked sentences."""
    return KEPT + name


def kept_field(file: InputFile, name: str) -> pa.Field | None:
    """A kept column's output field: text for CSV; the Parquet column's own type (dictionaries
    decoded); None when the file or the column cannot be read (the reader reports it)."""
    if file.format != "parquet":
        return pa.field(name, pa.string())
    try:
        with _open_parquet(file) as parquet:
            kind = parquet.schema_arrow.field(name).type
    except (InputError, KeyError):
        return None
    return pa.field(name, kind.value_type if pa.types.is_dictionary(kind) else kind)


def _kept_values(array: pa.Array | pa.ChunkedArray) -> list[Any]:
    """A kept column's Python values; text that is not valid UTF-8 keeps its readable part (the
    output's text columns must be UTF-8), where a sentence would get a status."""
    kind = array.type
    if pa.types.is_dictionary(kind):
        array = array.dictionary_decode()
        kind = array.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        array = array.cast(pa.large_binary() if pa.types.is_large_string(kind) else pa.binary())
        return [None if v is None else v.decode("utf-8", "replace") for v in array.to_pylist()]
    return array.to_pylist()


def _kept_cell(value: Any) -> Any:
    """A CSV cell as a kept value: undecodable bytes keep their readable part."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


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


def _wide_encoding(sample: bytes) -> str | None:
    """What a file that is not UTF-8 text looks like, from its first bytes: UTF-16/32 with
    or without a byte-order mark, or binary (NUL bytes); None for anything else."""
    if sample.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):  # before UTF-16: FF FE 00 00
        return "the file is UTF-32 (it starts with a UTF-32 byte-order mark); save it as UTF-8"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "the file is UTF-16 (it starts with a UTF-16 byte-order mark); save it as UTF-8"
    if b"\x00" not in sample.split(b"\n", 1)[0]:
        return None
    for codec, name in WIDE_CODECS:
        try:  # incremental: a character cut at the sample's end is not an error
            text = codecs.getincrementaldecoder(codec)().decode(sample, final=False)
        except UnicodeDecodeError:
            continue
        line = text.split("\n", 1)[0]
        if line.strip() and all(c.isprintable() or c.isspace() for c in line):
            return f"the file looks {name} (no byte-order mark); save it as UTF-8"
    return "the first line holds NUL bytes: this is not a text file (compressed? binary?); save it as UTF-8 CSV"


def header_columns(file: InputFile, columns: Columns) -> list[str]:
    """An input's column names, without reading a row: a Parquet file's schema from its footer, a
    CSV file's first line split as csv_chunks splits it. Raises InputError naming the file."""
    where = show(file.path)
    if file.format == "parquet":
        with _open_parquet(file) as parquet:
            return list(parquet.schema_arrow.names)
    try:
        with file.path.open_stream() as raw:
            first = raw.read(MAX_RECORD_CHARS).split(b"\n", 1)[0]
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"{where}: cannot read: {reason(exc)}; check that it exists and is readable") from exc
    line = first.decode("utf-8-sig", "replace").rstrip("\r")
    return _split_header(line, file.path.suffix, columns)[1]


def csv_chunks(file: InputFile, columns: Columns) -> tuple[TargetMode, Iterator[Chunk]]:
    where = show(file.path)
    try:
        raw = file.path.open_file()  # random access on every filesystem; closed by the generator below
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"{where}: cannot open: {reason(exc)}; check that it exists and is readable") from exc
    try:
        start = raw.read(SNIFF_BYTES if file.extent is None else min(SNIFF_BYTES, file.extent))
        raw.seek(0)
    except OSError as exc:
        raw.close()
        raise InputError(f"{where}: cannot read: {reason(exc)}") from exc
    encoding_problem = _wide_encoding(start)
    if encoding_problem:
        raw.close()
        raise InputError(f"{where}: {encoding_problem}")
    # utf-8-sig drops a leading BOM; surrogateescape keeps invalid bytes for the per-cell check
    text = io.TextIOWrapper(
        io.BufferedReader(_Bounded(raw, file.extent)), encoding="utf-8-sig", errors="surrogateescape", newline=""
    )
    try:
        header_line = text.readline(MAX_RECORD_CHARS + 1)
    except OSError as exc:
        text.close()
        raise InputError(f"{where}: cannot read: {reason(exc)}") from exc
    if not header_line.strip():
        text.close()
        raise InputError(f"{where}: empty file or empty first line; the first line must be the header")
    if len(header_line) > MAX_RECORD_CHARS:
        text.close()
        raise InputError(f"{where}: the first line is longer than {MAX_RECORD_CHARS:,} characters; is it a CSV file?")
    csv.field_size_limit(max(csv.field_size_limit(), MAX_RECORD_CHARS + 1))
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
    return mode, _csv_records(text, delimiter, header, needed, columns, where)


class _Runaway(Exception):
    """A record that cannot be right: only its first line is taken as a (malformed) row."""


_LONG_LINE = "\x00<a line over MAX_RECORD_CHARS>"  # stands for a line too long to keep (never a real line)


class _Lines:
    """The physical lines of a CSV file, for csv.reader, one record at a time.

    The lines of the current record are kept (at most MAX_RECORD_LINES lines and
    MAX_RECORD_CHARS characters, else _Runaway is raised mid-record), so that a record
    found to be damage can give back all but its first line: `resync` puts them back to
    be read again as the records they are.
    """

    def __init__(self, text: io.TextIOWrapper) -> None:
        self.text = text
        self.replay: deque[str] = deque()
        self.taken: list[str] = []
        self.chars = 0
        self.line = 1  # the last line of the records finished so far (1: the header)
        self.open_at_end = False  # the current record ran into the end of the file (an open quote)

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        if len(self.taken) >= MAX_RECORD_LINES:
            raise _Runaway(f"a quoted field is not closed within {MAX_RECORD_LINES:,} lines")
        line = self.replay.popleft() if self.replay else self._read()
        if not line:
            if self.taken:
                self.open_at_end = True
            raise StopIteration
        self.taken.append(line)
        if line is _LONG_LINE:
            raise _Runaway(f"a line longer than {MAX_RECORD_CHARS:,} characters")
        self.chars += len(line)
        if self.chars > MAX_RECORD_CHARS:
            raise _Runaway(f"a quoted field is not closed within {MAX_RECORD_CHARS:,} characters")
        return line

    def _read(self) -> str:
        line = self.text.readline(MAX_RECORD_CHARS + 1)
        if len(line) <= MAX_RECORD_CHARS or line.endswith(("\n", "\r")):
            return line
        while line and not line.endswith(("\n", "\r")):  # skip the rest of that line
            line = self.text.readline(1 << 20)
        return _LONG_LINE

    def begin(self) -> None:
        self.taken, self.chars, self.open_at_end = [], 0, False

    def resync(self) -> None:
        """Keep only the record's first line: the others are read again."""
        self.replay.extendleft(reversed(self.taken[1:]))
        del self.taken[1:]

    def finish(self) -> tuple[int, int]:
        """The first and last line of the record just read."""
        first = self.line + 1
        self.line += len(self.taken)
        return first, self.line


def _fields(count: int) -> str:
    return "1 field" if count == 1 else f"{count} fields"


def _csv_records(
    text: io.TextIOWrapper, delimiter: str, header: list[str], needed: list[str], columns: Columns, where: str
) -> Iterator[Chunk]:
    positions = {name: header.index(name) for name in needed}
    kept = {kept_key(name): header.index(name) for name in columns.keep}
    keys = [*needed, *kept]
    sentences = {columns.sentence1, columns.sentence2}
    chunk: Chunk = {key: [] for key in keys}
    lines = _Lines(text)
    reader = csv.reader(lines, delimiter=delimiter, strict=False)
    row, malformed = 0, 0
    with text:
        while True:
            lines.begin()
            problem = ""
            try:
                record: list[str] | None = next(reader)
            except StopIteration:
                break
            except (_Runaway, csv.Error) as exc:  # a runaway quote, an over-long line: one bad row, then go on
                record, problem = None, reason(exc)
            if record == []:  # a blank line is not a row (pyarrow skips them too)
                lines.finish()
                continue
            if record is not None and lines.open_at_end:
                record, problem = None, "a quoted field is not closed by the end of the file"
            if record is not None and len(record) != len(header) and len(lines.taken) > 1:
                problem = f"{_fields(len(record))} over {len(lines.taken)} lines, the header has {len(header)}"
                record = None
            if record is None and len(lines.taken) > 1:
                lines.resync()
                problem += "; reading resumes on the next line"
            first, last = lines.finish()
            row += 1
            if record is None or len(record) != len(header):
                malformed += 1
                if malformed <= MALFORMED_LOGGED:
                    found = problem or f"{_fields(len(record or []))}, the header has {len(header)}"
                    log.warning(
                        "%s: row %d (%s) is malformed (%s); written as malformed_record — "
                        "quote fields that contain the delimiter, quotes or line breaks",
                        where,
                        row,
                        f"line {first}" if first == last else f"lines {first}-{last}",
                        found,
                    )
                for key in keys:
                    chunk[key].append(MALFORMED if key in sentences else None)
            else:
                for name, position in positions.items():
                    chunk[name].append(_cell(record[position]))
                for key, position in kept.items():
                    chunk[key].append(_kept_cell(_cell(record[position])))
            if row % CHUNK_ROWS == 0:
                yield chunk
                chunk = {key: [] for key in keys}
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
