"""Find input files and stream them as fixed-size shards of sentence pairs.

Files are read in record batches (pyarrow's streaming CSV reader, Parquet
`iter_batches`), never whole. Shards have a fixed number of rows per file, so
the same input and shard size always give the same shards.
"""

from __future__ import annotations

import glob
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa

from batchembed.config import Columns
from batchembed.errors import InputError
from batchembed.targets import TargetMode

log = logging.getLogger(__name__)

CSV_SUFFIXES = (".csv", ".tsv", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")
READ_BATCH_ROWS = 8192


@dataclass(frozen=True)
class InputFile:
    path: Path
    format: str  # "csv" or "parquet"

    @property
    def key(self) -> str:
        """A short stable id: the file's name and a hash of its absolute path."""
        digest = hashlib.sha1(str(self.path.resolve()).encode()).hexdigest()[:8]
        return f"{self.path.stem}-{digest}"


@dataclass
class InputShard:
    """`len(ids)` consecutive pairs of one file, as Python values."""

    file: InputFile
    index: int  # shard number within the file, from 0
    first_row: int  # 1-based data row number of the first pair (header not counted)
    mode: TargetMode
    ids: list[str]
    sentence1: list[Any]
    sentence2: list[Any]
    targets: list[tuple[Any, ...]]

    @property
    def shard_id(self) -> str:
        return f"{self.file.key}-{self.index:06d}"

    def __len__(self) -> int:
        return len(self.ids)


def _format_of(path: Path) -> str | None:
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        return "csv"
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    return None


def discover(specs: tuple[str, ...] | list[str]) -> list[InputFile]:
    """Expand paths, directories (recursively) and globs into a sorted list of input files."""
    found: dict[Path, InputFile] = {}
    for spec in specs:
        path = Path(spec)
        if path.is_dir():
            candidates = sorted(p for p in path.rglob("*") if p.is_file())
            candidates = [p for p in candidates if not p.name.startswith((".", "_"))]
            files = [p for p in candidates if _format_of(p)]
            if not files:
                raise InputError(f"{spec}: directory holds no .csv or .parquet file")
        elif path.is_file():
            if _format_of(path) is None:
                raise InputError(
                    f"{spec}: unknown file type {path.suffix!r}; use .csv, .tsv or .parquet"
                )
            files = [path]
        elif glob.has_magic(spec):
            files = sorted(Path(p) for p in glob.glob(spec, recursive=True) if _format_of(Path(p)))
            if not files:
                raise InputError(f"{spec}: no .csv or .parquet file matches this pattern")
        else:
            raise InputError(f"{spec}: no such file or directory")
        for file in files:
            found.setdefault(file, InputFile(file, _format_of(file) or ""))
    return list(found.values())


def _needed_columns(columns: Columns, available: list[str], where: str) -> tuple[TargetMode, list[str]]:
    present = set(available)
    for required in (columns.sentence1, columns.sentence2):
        if required not in present:
            raise InputError(
                f"{where}: missing column {required!r} (columns: {', '.join(available) or 'none'}); "
                "name the sentence columns with --sentence1-column/--sentence2-column"
            )
    mode = columns.detect_mode(present)
    needed = [columns.sentence1, columns.sentence2, *columns.target_columns(mode)]
    if columns.id in present:
        needed.append(columns.id)
    return mode, needed


def _csv_batches(file: InputFile, columns: Columns) -> tuple[TargetMode, Iterator[pa.RecordBatch]]:
    from pyarrow import csv

    delimiter = "\t" if file.path.suffix.lower() == ".tsv" else ","
    parse = csv.ParseOptions(delimiter=delimiter, newlines_in_values=True)
    read = csv.ReadOptions(block_size=1 << 20)
    try:
        with csv.open_csv(file.path, read_options=read, parse_options=parse) as probe:
            header = probe.schema.names
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{file.path}: cannot read as CSV: {exc}") from exc
    mode, needed = _needed_columns(columns, header, str(file.path))
    # Every column as raw bytes: types are checked per cell, so one odd value
    # (or invalid UTF-8) becomes a status row instead of killing the stream.
    convert = csv.ConvertOptions(
        include_columns=needed,
        column_types={name: pa.binary() for name in needed},
        strings_can_be_null=True,
        quoted_strings_can_be_null=False,
        null_values=[""],
    )
    reader = csv.open_csv(file.path, read_options=read, parse_options=parse, convert_options=convert)
    return mode, iter(reader)


def _parquet_batches(file: InputFile, columns: Columns) -> tuple[TargetMode, Iterator[pa.RecordBatch]]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(file.path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{file.path}: cannot read as Parquet: {exc}") from exc
    mode, needed = _needed_columns(columns, parquet.schema_arrow.names, str(file.path))
    for name in needed:
        kind = parquet.schema_arrow.field(name).type
        if pa.types.is_nested(kind):
            raise InputError(f"{file.path}: column {name!r} has type {kind}, expected text or integers")
    return mode, parquet.iter_batches(batch_size=READ_BATCH_ROWS, columns=needed)


def _cell(value: Any) -> Any:
    """bytes from CSV become text; undecodable bytes stay bytes (the pipeline flags them)."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value
    return value


def read_shards(file: InputFile, columns: Columns, shard_rows: int) -> Iterator[InputShard]:
    """Stream one file as consecutive shards of `shard_rows` pairs (the last may be shorter)."""
    opener = _csv_batches if file.format == "csv" else _parquet_batches
    mode, batches = opener(file, columns)
    target_names = columns.target_columns(mode)
    log.info("%s: target mode %s", file.path, mode.value)
    pending: dict[str, list[Any]] = {}
    shard_index, next_row = 0, 1

    def flush(count: int) -> InputShard:
        nonlocal shard_index, next_row
        take = {name: values[:count] for name, values in pending.items()}
        for name in pending:
            del pending[name][:count]
        ids = take.get(columns.id) or [None] * count
        shard = InputShard(
            file=file,
            index=shard_index,
            first_row=next_row,
            mode=mode,
            ids=[
                str(_cell(v)) if v is not None else f"{file.path.name}:{next_row + k}"
                for k, v in enumerate(ids)
            ],
            sentence1=[_cell(v) for v in take[columns.sentence1]],
            sentence2=[_cell(v) for v in take[columns.sentence2]],
            targets=list(zip(*[[_cell(v) for v in take[n]] for n in target_names]))
            if target_names
            else [()] * count,
        )
        shard_index += 1
        next_row += count
        return shard

    try:
        for batch in batches:
            for name in batch.schema.names:
                pending.setdefault(name, []).extend(batch.column(name).to_pylist())
            while pending and len(pending[columns.sentence1]) >= shard_rows:
                yield flush(shard_rows)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{file.path}: unreadable after data row {next_row - 1}: {exc}") from exc
    remaining = len(pending.get(columns.sentence1, []))
    if remaining:
        yield flush(remaining)
