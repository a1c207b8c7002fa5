"""What an input is: a file (a Location and its format) and a run of its pairs (a shard, or a
piece of one). Named from the file's identity, so the same input always gives the same shard ids."""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from typing import Any

from batchembed.io.storage import Location, locate
from batchembed.targets import TargetMode

KEY_STEM_CHARS = 48
__all__ = ["InputFile", "InputShard", "identity", "safe_name"]


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
        """A short stable id, safe as a file name: the sanitized name and a hash of the file's identity."""
        absolute = identity(self.path).encode("utf-8", "surrogateescape")
        return f"{safe_name(self.path.stem)}-{hashlib.sha1(absolute).hexdigest()[:8]}"


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
