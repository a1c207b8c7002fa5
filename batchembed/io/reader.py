"""Find input files and stream them as fixed-size shards of sentence pairs.

Files are read in chunks (io/sources.py), never whole. Shards have a fixed
number of rows per file, so the same input and shard size always give the same
shards: that is what lets a re-run skip the shards an earlier run finished.
"""

from __future__ import annotations

import glob
import logging
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
from pyarrow.fs import FileType

from batchembed.config import Columns
from batchembed.errors import InputError
from batchembed.io.inputs import InputFile, InputShard, identity, label_name
from batchembed.io.sources import Chunk, csv_chunks, kept_field, kept_key, parquet_chunks, parquet_rows, reason, show
from batchembed.io.storage import Location, locate
from batchembed.io.storage import glob as glob_files
from batchembed.targets import TargetMode

log = logging.getLogger(__name__)

CSV_SUFFIXES = (".csv", ".tsv", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")
# a directory or glob picks up only these: a README.txt beside the data is not an input; a .txt
# file is read (as CSV) when named explicitly, by its path or by a glob ending in .txt
SCANNED_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq")
KNOWN_TYPES = ".csv, .tsv, .parquet or .pq"
DUPLICATE_IDS_TRACKED = 200_000  # ids remembered per file for the duplicate warning (bounded memory)
DUPLICATES_LOGGED = 3


def _format_of(path: Location) -> str | None:
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        return "csv"
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    return None


def _inside(path: Location, excluded: tuple[Location, ...]) -> bool:
    """True for files in the output directory or its bookkeeping: when they lie inside an input
    directory, they must not be read back as inputs."""
    return any(path.is_inside(directory) for directory in excluded)


def _scanned(path: Location, txt: bool) -> bool:
    suffix = path.suffix.lower()
    return suffix in SCANNED_SUFFIXES or (txt and suffix == ".txt")


def _nothing_found(
    spec: str, what: str, candidates: list[Location], exclude: tuple[Location, ...], txt: bool
) -> InputError:
    """Why a directory or glob gave no input: the output directory's own files, .txt files
    (never scanned), or no data file at all."""
    if any(_scanned(p, txt) and _inside(p, exclude) for p in candidates):
        return InputError(
            f"{show(spec)}: {what} only files in the output directory, which are excluded because they are the "
            "output; write the output to another directory (-o)"
        )
    if not txt and any(p.suffix.lower() == ".txt" for p in candidates):
        return InputError(
            f"{show(spec)}: {what} no {KNOWN_TYPES} file (.txt files are read as CSV only when named: "
            "give their paths or a glob ending in .txt)"
        )
    return InputError(f"{show(spec)}: {what} no {KNOWN_TYPES} file")


def _expand(spec: str, exclude: tuple[Location, ...]) -> list[Location]:
    path = locate(spec)
    try:
        info = path.info()
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"{show(spec)}: cannot read this location ({reason(exc)})") from exc
    if info.type == FileType.Directory:
        candidates = [path.child(i.path) for i in path.files(recursive=True)]
        # names starting with '.' or '_' are skipped at any depth (.git/, _done/, _tmp files)
        prefix = len(path.path.rstrip("/")) + 1
        candidates = [p for p in candidates if not any(n.startswith((".", "_")) for n in p.path[prefix:].split("/"))]
        files = [p for p in candidates if _scanned(p, txt=False) and not _inside(p, exclude)]
        if not files:
            raise _nothing_found(spec, "the directory holds", candidates, exclude, txt=False)
        return files
    if info.type == FileType.File:
        if _format_of(path) is None:
            raise InputError(
                f"{show(spec)}: unknown file type {path.suffix!r}; use {KNOWN_TYPES} (or .txt, read as CSV)"
            )
        return [path]
    if glob.has_magic(spec):
        txt = spec.lower().endswith(".txt")
        candidates = [p for p in glob_files(spec) if p.is_file()]
        files = [p for p in candidates if _scanned(p, txt) and not _inside(p, exclude)]
        if not files:
            raise _nothing_found(spec, "the pattern matches", candidates, exclude, txt)
        return files
    raise InputError(f"{show(spec)}: no such file or directory")


def discover_all(
    specs: tuple[str, ...] | list[str], exclude: tuple[Location, ...] = ()
) -> tuple[list[InputFile], list[InputError]]:
    """Expand paths, directories (recursively) and globs into input files, and one error per
    spec or file that cannot be used, so a run can process the others."""
    found: dict[str, InputFile] = {}
    errors: list[InputError] = []
    for spec in specs:
        try:
            files = _expand(spec, exclude)
        except InputError as error:
            errors.append(error)
            continue
        for file in files:
            try:  # the name ends up in the output's text columns, which must be UTF-8
                str(file).encode("utf-8")
            except UnicodeEncodeError:
                errors.append(InputError(f"{show(file)}: the file name is not valid UTF-8; rename the file"))
                continue
            # one file named twice (a/x.csv and ./a/x.csv, a symlink) is read once: same key, same shards
            found.setdefault(identity(file), InputFile(file, _format_of(file) or ""))
    return list(found.values()), errors


def discover(specs: tuple[str, ...] | list[str]) -> list[InputFile]:
    """Like discover_all, but the first problem is raised."""
    files, errors = discover_all(specs)
    if errors:
        raise errors[0]
    return files


def _id_text(value: Any, fallback: str) -> str:
    if value is None:
        return fallback
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return str(value)


class _DuplicateIds:
    """Warns about ids seen before in the same file (rows stay apart by source_file/source_row)."""

    def __init__(self, where: str, column: str) -> None:
        self.where, self.column = where, column
        self.seen: dict[str, int] = {}
        self.count = 0

    def check(self, ids: list[Any], first_row: int) -> None:
        for offset, value in enumerate(ids):
            if value is None:
                continue
            key = _id_text(value, "")
            earlier = self.seen.get(key)
            if earlier is not None:
                self.count += 1
                if self.count <= DUPLICATES_LOGGED:
                    log.warning(
                        "%s: row %d: column %r value %r repeats row %d (kept; rows are told apart by "
                        "source_file and source_row)",
                        self.where,
                        first_row + offset,
                        self.column,
                        key,
                        earlier,
                    )
            elif len(self.seen) < DUPLICATE_IDS_TRACKED:
                self.seen[key] = first_row + offset

    def report(self) -> None:
        if self.count > DUPLICATES_LOGGED:
            log.warning("%s: %d rows repeat an earlier id in column %r", self.where, self.count, self.column)


class _ShardBuilder:
    """Collects column chunks and cuts them into pieces of numbered shards."""

    def __init__(self, file: InputFile, mode: TargetMode, columns: Columns) -> None:
        self.file, self.mode, self.columns = file, mode, columns
        self.targets = columns.target_columns(mode)
        # shared-word mode's one target cell: the word types to leave out (one object shared by every row)
        self.shared: tuple[Any, ...] = (frozenset(columns.stopwords),) if columns.stopwords else ()
        self.pending: dict[str, list[Any]] = {}
        self.next_row = 1

    def add(self, chunk: Chunk) -> None:
        for name, values in chunk.items():
            self.pending.setdefault(name, []).extend(values)

    def __len__(self) -> int:
        return len(self.pending.get(self.columns.sentence1, ()))

    def take(self, count: int, index: int, ends_shard: bool) -> InputShard:
        taken = {name: values[:count] for name, values in self.pending.items()}
        for values in self.pending.values():
            del values[:count]
        name, row = label_name(self.file.path), self.next_row
        ids = taken.get(self.columns.id) or [None] * count
        shard = InputShard(
            file=self.file,
            index=index,
            first_row=row,
            mode=self.mode,
            ids=[_id_text(v, f"{name}:{row + k}") for k, v in enumerate(ids)],
            sentence1=taken[self.columns.sentence1],
            sentence2=taken[self.columns.sentence2],
            targets=list(zip(*[taken[n] for n in self.targets])) if self.targets else [self.shared] * count,
            last=False,
            ends_shard=ends_shard,
            kept={name: taken[kept_key(name)] for name in self.columns.keep},
        )
        self.next_row += count
        return shard


class _Cutter:
    """Where the next piece ends: at `piece_rows`, or earlier at the end of its shard, so a piece
    never spans two shards (shard k is always rows k * shard_rows + 1 ..., whatever the piece size)."""

    def __init__(self, builder: _ShardBuilder, shard_rows: int, piece_rows: int) -> None:
        self.builder, self.shard_rows, self.piece_rows = builder, shard_rows, min(piece_rows, shard_rows)

    def next_size(self) -> int:
        into_shard = (self.builder.next_row - 1) % self.shard_rows
        return min(self.piece_rows, self.shard_rows - into_shard)

    def take(self, count: int) -> InputShard:
        row = self.builder.next_row - 1
        ends = (row % self.shard_rows) + count == self.shard_rows
        return self.builder.take(count, row // self.shard_rows, ends)


def read_shards(file: InputFile, columns: Columns, shard_rows: int) -> Iterator[InputShard]:
    """Stream one file as consecutive shards of `shard_rows` pairs (the last may be shorter)."""
    return read_pieces(file, columns, shard_rows, shard_rows)


def read_pieces(file: InputFile, columns: Columns, shard_rows: int, piece_rows: int) -> Iterator[InputShard]:
    """Stream one file as consecutive pieces of at most `piece_rows` pairs, each within one shard of
    `shard_rows` pairs (InputShard.index is the shard's number, `ends_shard` closes it), so memory
    is bounded by the piece, not the shard.

    One piece is held back so the file's last piece can say so (`last`). If the file
    fails part-way, the rows read before the failure are still yielded, then an
    InputError names the first row that could not be read.
    """
    opener = csv_chunks if file.format == "csv" else parquet_chunks
    mode, chunks = opener(file, columns)
    where = show(file.path)
    log.info("%s: target mode %s", where, mode.value)
    builder = _ShardBuilder(file, mode, columns)
    cutter = _Cutter(builder, shard_rows, piece_rows)
    duplicates = _DuplicateIds(where, columns.id)
    held: InputShard | None = None
    try:
        for chunk in chunks:
            if columns.id in chunk:
                duplicates.check(chunk[columns.id], builder.next_row + len(builder))
            builder.add(chunk)
            while len(builder) >= cutter.next_size():
                if held is not None:
                    yield held
                held = cutter.take(cutter.next_size())
    except (pa.ArrowException, OSError, ValueError, MemoryError) as exc:
        failed_at = builder.next_row + len(builder)
        rest = [held] if held is not None else []
        while len(builder):
            rest.append(cutter.take(min(len(builder), cutter.next_size())))
        if rest:  # the shard cut short by the failure is written as far as it was read
            rest[-1].ends_shard = True
        yield from rest
        raise InputError(
            f"{where}: cannot read data row {failed_at} or later ({reason(exc)}); the rows before it are written"
        ) from exc
    while len(builder):
        if held is not None:
            yield held
        held = cutter.take(min(len(builder), cutter.next_size()))
    if held is not None:
        held.last = held.ends_shard = True
        yield held
    duplicates.report()


def parquet_shard_count(file: InputFile, shard_rows: int) -> tuple[int, int]:
    """(rows, shards) of a Parquet file, from its footer alone: shards are cut without reading rows."""
    rows = parquet_rows(file)
    return rows, -(-rows // shard_rows)


def read_parquet_shard(
    file: InputFile, columns: Columns, shard_rows: int, index: int, rows: int, piece_rows: int | None = None
) -> Iterator[InputShard]:
    """Shard `index` of a Parquet file of `rows` rows, in pieces of at most `piece_rows` pairs: the
    same rows read_pieces yields, read from the row groups the shard lies in only. Unreadable row
    groups are status rows, as in read_pieces."""
    start, stop = index * shard_rows, min((index + 1) * shard_rows, rows)
    mode, chunks = parquet_chunks(file, columns, range(start, stop))
    builder = _ShardBuilder(file, mode, columns)
    builder.next_row = start + 1
    cutter = _Cutter(builder, shard_rows, piece_rows or shard_rows)
    try:
        for chunk in chunks:
            builder.add(chunk)
            while len(builder) > cutter.next_size() or (
                len(builder) == cutter.next_size() and builder.next_row - 1 + len(builder) < stop
            ):
                yield cutter.take(cutter.next_size())
    except (pa.ArrowException, OSError, ValueError, MemoryError) as exc:
        failed_at = builder.next_row + len(builder)
        raise InputError(f"{show(file.path)}: cannot read data row {failed_at} or later ({reason(exc)})") from exc
    piece = cutter.take(len(builder))
    piece.ends_shard, piece.last = True, stop >= rows
    yield piece


def kept_fields(files: list[InputFile], keep: tuple[str, ...]) -> list[pa.Field]:
    """The output fields of the kept columns (--keep-columns), typed as in the inputs: one type when
    the files agree, their common promotion (int32 and int64: int64) when pyarrow has one, else text."""
    fields = []
    for name in keep:
        found = [f for f in (kept_field(file, name) for file in files) if f is not None]
        try:
            unified = pa.unify_schemas([pa.schema([f]) for f in found], promote_options="permissive")
            fields.append(pa.field(name, unified.field(name).type if found else pa.string()))
        except (pa.ArrowException, ValueError):
            fields.append(pa.field(name, pa.string()))
    return fields
