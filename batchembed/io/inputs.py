"""What an input is: a file (a Location and its format) and a run of its pairs (a shard, or a
piece of one). Named from the file's identity, so the same input always gives the same shard ids."""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
from dataclasses import dataclass, field, replace
from typing import Any

from batchembed.io.storage import Location, locate
from batchembed.targets import TargetMode

KEY_STEM_CHARS = 48
__all__ = ["InputFile", "InputShard", "identity", "recorded_as", "safe_name"]


def safe_name(text: str) -> str:
    """Only [A-Za-z0-9._-], at most KEY_STEM_CHARS, never starting with '.' or '-': output file
    names derive from input names, and a hostile name must not escape or hide in the output."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", text)[:KEY_STEM_CHARS].lstrip(".-")
    return cleaned or "file"


def identity(location: Location) -> str:
    """What tells two names of one file apart from two files: the real path locally (symlinks and
    `./` resolved), the filesystem and path elsewhere."""
    if location.is_local:
        return os.path.realpath(location.path)
    return f"{location.kind}://{location.path}"


def recorded_as(file: InputFile, name: str | None) -> InputFile:
    """`file` labelled with the name the output recorded for it (None: its own spelling).

    One input keeps one name: a resume that spells the same file another way (relative or
    absolute, `./`, a symlink, `file://`) must label its rows as an uninterrupted run would, or
    the output would show one input under two `source_file` values and two pair-id patterns.
    The label is only how the file is shown: it is read through its own path, so a name recorded
    relative to another working directory does no harm."""
    if name is None or name == str(file.path):
        return file
    return replace(file, path=replace(file.path, shown=name))


def label_name(location: Location) -> str:
    """The file name in pair ids (`<file name>:<row>`): the last part of the name as shown."""
    return posixpath.basename(str(location).rstrip("/")) or location.name


@dataclass(frozen=True)
class InputFile:
    path: Location
    format: str  # "csv" or "parquet"
    extent: int | None = None  # CSV: read only this many bytes (the size the run recorded); None: to the end

    def __post_init__(self) -> None:
        if not isinstance(self.path, Location):  # a plain path or URI, for library callers
            object.__setattr__(self, "path", locate(self.path))

    @property
    def key(self) -> str:
        """A short stable id, safe as a file name: the sanitized name and a hash of the file's
        identity, both of the file itself (a symlink's name would give one file two keys)."""
        real = identity(self.path)
        stem = self.path.stem
        if self.path.is_local:
            name = posixpath.basename(real)
            dot = name.rfind(".")
            stem = name[:dot] if dot > 0 else name
        return f"{safe_name(stem)}-{hashlib.sha1(real.encode('utf-8', 'surrogateescape')).hexdigest()[:8]}"


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
    last: bool = True  # no row of the file (as read) follows this shard (or piece)
    ends_shard: bool = True  # a piece (read_pieces): the last of its shard
    kept: dict[str, list[Any]] = field(default_factory=dict)  # --keep-columns: column -> one value per pair

    @property
    def shard_id(self) -> str:
        return f"{self.file.key}-{self.index:06d}"

    def __len__(self) -> int:
        return len(self.ids)
