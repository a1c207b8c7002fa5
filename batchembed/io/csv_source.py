"""A CSV/TSV input as its target mode and a stream of column chunks of Python values.

Parsed with Python's `csv` module, record by record, because a hostile file must cost one row,
not the file: pyarrow's CSV reader rejects a whole block on the first record with the wrong
number of fields, and cannot say which data row it was. Here every record is one data row with
an exact number, a record whose field count differs from the header's becomes a MALFORMED row
(written as a `malformed_record` status row), and bytes that are not UTF-8 survive as `bytes`
(written as `invalid_encoding`). A quoted field that runs away (its quote not closed within
MAX_RECORD_LINES lines or MAX_RECORD_CHARS characters, or by the end of the file), or a record of
several lines with the wrong number of fields, costs only its first line: that line becomes one
malformed row and parsing resumes on the next line, so later row numbers stay true. Never read
whole into memory. `csv_row_count` counts the same rows, through the same record loop, without
building their cells (a progress bar's total).
"""

from __future__ import annotations

import codecs
import csv
import io
import logging
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa

from batchembed.config import Columns
from batchembed.errors import InputError
from batchembed.io.inputs import InputFile
from batchembed.io.source_columns import (
    CHUNK_ROWS,
    MALFORMED,
    MALFORMED_LOGGED,
    Chunk,
    _kept_cell,
    kept_key,
    needed_columns,
)
from batchembed.messages import one_line as reason
from batchembed.messages import show
from batchembed.targets import TargetMode

log = logging.getLogger(__name__)

# One CSV record (all its fields and lines) may hold this many characters: Python's field
# default (128 KiB) would turn a long but legitimate document into a bad row; the cap still
# stops one unterminated quote from swallowing gigabytes.
MAX_RECORD_CHARS = 16 << 20
# A quoted field may span this many lines; past it, its opening quote is taken for damage.
MAX_RECORD_LINES = 1_000
DELIMITERS = (",", "\t", ";", "|")
SNIFF_BYTES = 4096  # read to recognize UTF-16/32 and binary files
WIDE_CODECS = (("utf-32-le", "UTF-32"), ("utf-32-be", "UTF-32"), ("utf-16-le", "UTF-16"), ("utf-16-be", "UTF-16"))


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


def csv_header(file: InputFile, columns: Columns) -> list[str]:
    """A CSV file's column names: its first line split as csv_chunks splits it, no row read."""
    where = show(file.path)
    try:
        with file.path.open_stream() as raw:
            first = raw.read(MAX_RECORD_CHARS).split(b"\n", 1)[0]
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"{where}: cannot read: {reason(exc)}; check that it exists and is readable") from exc
    line = first.decode("utf-8-sig", "replace").rstrip("\r")
    return _split_header(line, file.path.suffix, columns)[1]


def csv_chunks(file: InputFile, columns: Columns) -> tuple[TargetMode, Iterator[Chunk]]:
    opened = _Opened(file, columns)
    if opened.delimiter != ("\t" if file.path.suffix.lower() == ".tsv" else ","):
        log.warning(
            "%s: the header is %r-separated; reading the file with that delimiter", opened.where, opened.delimiter
        )
    return opened.mode, _csv_records(opened, columns)


def csv_row_count(file: InputFile, columns: Columns, stopped: Callable[[], bool] = lambda: False) -> int | None:
    """The data rows csv_chunks gives, bad rows included, counted without building a cell (a progress
    bar's total); None once `stopped()`, asked every CHUNK_ROWS rows. Where every record is one line
    (nearly every file), csv.reader counts them as the lines come, at twice _rows' speed; at the first
    record that is not one plain line, the file is counted again by _rows, whose notion of a row this
    is: so a file may be read twice (call this for local files). Raises InputError where csv_chunks
    does, OSError where a read fails; logs nothing."""
    try:
        return _count_one_line_records(_Opened(file, columns, warn=False), stopped)
    except _NotOneLine:
        pass
    opened = _Opened(file, columns, warn=False)
    count = 0
    with opened.text:
        for _ in _rows(opened.text, opened.delimiter, len(opened.header)):
            count += 1
            if count % CHUNK_ROWS == 0 and stopped():
                return None
    return count


class _NotOneLine(Exception):
    """A record of several lines, a line too long to take whole, or one csv.reader refuses."""


def _count_one_line_records(opened: _Opened, stopped: Callable[[], bool]) -> int | None:
    """The rows of a file whose every record is one line: its records but the blank lines."""
    limit = MAX_RECORD_CHARS  # read here: tests lower it

    def lines() -> Iterator[str]:
        while line := opened.text.readline(limit + 1):
            if len(line) > limit:
                raise _NotOneLine
            yield line

    reader = csv.reader(lines(), delimiter=opened.delimiter, strict=False)
    records, count = 0, 0
    with opened.text:
        try:
            for record in reader:
                records += 1
                if reader.line_num != records:
                    raise _NotOneLine
                if record:
                    count += 1
                    if count % CHUNK_ROWS == 0 and stopped():
                        return None
        except csv.Error as exc:
            raise _NotOneLine from exc
    return count


class _Opened:
    """A CSV file opened for its records: its header read and split, its target mode and the columns
    it needs found (`warn`: logging where one target mode hides another). Raises InputError (the file
    closed) where the file cannot be read as CSV."""

    def __init__(self, file: InputFile, columns: Columns, warn: bool = True) -> None:
        self.where = where = show(file.path)
        try:
            raw = file.path.open_file()  # random access on every filesystem; closed with self.text
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
        self.text = io.TextIOWrapper(
            io.BufferedReader(_Bounded(raw, file.extent)), encoding="utf-8-sig", errors="surrogateescape", newline=""
        )
        try:
            self._header(file, columns, warn)
        except BaseException:
            self.text.close()
            raise

    def _header(self, file: InputFile, columns: Columns, warn: bool) -> None:
        where = self.where
        try:
            header_line = self.text.readline(MAX_RECORD_CHARS + 1)
        except OSError as exc:
            raise InputError(f"{where}: cannot read: {reason(exc)}") from exc
        if not header_line.strip():
            raise InputError(f"{where}: empty file or empty first line; the first line must be the header")
        if len(header_line) > MAX_RECORD_CHARS:
            raise InputError(
                f"{where}: the first line is longer than {MAX_RECORD_CHARS:,} characters; is it a CSV file?"
            )
        csv.field_size_limit(max(csv.field_size_limit(), MAX_RECORD_CHARS + 1))
        try:
            self.delimiter, header = _split_header(header_line, file.path.suffix.lower(), columns)
        except csv.Error as exc:
            why = reason(exc)
            raise InputError(
                f"{where}: cannot parse the header line ({why}); the first line must be the header"
            ) from exc
        self.header = [show(name) for name in header]
        self.mode, self.needed = needed_columns(columns, self.header, where, warn)


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


def _rows(text: io.TextIOWrapper, delimiter: str, width: int) -> Iterator[tuple[list[str] | None, str, int, int]]:
    """Every data row as (its record, or None where it is damage; what is wrong, if anything; its
    first and last line): the one notion of a row that csv_chunks writes and csv_row_count counts.
    A record whose field count is not `width` is malformed too (its problem told by the caller)."""
    lines = _Lines(text)
    reader = csv.reader(lines, delimiter=delimiter, strict=False)
    while True:
        lines.begin()
        problem = ""
        try:
            record: list[str] | None = next(reader)
        except StopIteration:
            return
        except (_Runaway, csv.Error) as exc:  # a runaway quote, an over-long line: one bad row, then go on
            record, problem = None, reason(exc)
        if record == []:  # a blank line is not a row (pyarrow skips them too)
            lines.finish()
            continue
        if record is not None and lines.open_at_end:
            record, problem = None, "a quoted field is not closed by the end of the file"
        if record is not None and len(record) != width and len(lines.taken) > 1:
            problem = f"{_fields(len(record))} over {len(lines.taken)} lines, the header has {width}"
            record = None
        if record is None and len(lines.taken) > 1:
            lines.resync()
            problem += "; reading resumes on the next line"
        first, last = lines.finish()
        yield record, problem, first, last


def _csv_records(opened: _Opened, columns: Columns) -> Iterator[Chunk]:
    header, needed, where = opened.header, opened.needed, opened.where
    positions = {name: header.index(name) for name in needed}
    kept = {kept_key(name): header.index(name) for name in columns.keep}
    keys = [*needed, *kept]
    sentences = {columns.sentence1, columns.sentence2}
    chunk: Chunk = {key: [] for key in keys}
    row, malformed = 0, 0
    with opened.text:
        for record, problem, first, last in _rows(opened.text, opened.delimiter, len(header)):
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
