"""Where a run's files go: the output directory holds only the Parquet parts; its bookkeeping
lives in a sibling directory `<output>.batchembed/`.

So a finished output, local or on object storage, reads as one table with every tool's plain
expression on the directory (Polars refuses a directory holding anything but Parquet files,
DuckDB's `**` glob tries to read every file it finds). The bookkeeping directory holds:

    manifest.json   what the output was made from (io/manifest.py)
    summary.json    what the last run did (summary.py)
    done/<shard>.json   one done marker per finished part (io/markers.py)
    lock | lease.json   one run at a time (io/lease.py)
    tmp/            local temporary files, renamed into place when complete

One grammar names batchembed's own files: a part is `part-<file key>-<shard index>.parquet`, a
marker `<file key>-<shard index>.json`, where the file key is `<name>-<8 hex digits>` (io/inputs.py:
a sanitized name and a hash of the file's identity) and the index has at least 6 digits, written
as batchembed writes it. A name counts as batchembed's only if it parses wholly (`shard_of`);
anything else in the output is foreign: refused, never deleted (io/outputs.py, engines/job.py).
So `part-<key>-000000 (1).parquet`, a file manager's copy, is the user's, however its dashes fall.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from batchembed.io.storage import TEMP_MARK, Location

STATE_SUFFIX = ".batchembed"
PART_PREFIX = "part-"
PART_SUFFIX = ".parquet"
MARKER_SUFFIX = ".json"
_SHARD = re.compile(r"(?P<key>[A-Za-z0-9_][A-Za-z0-9._-]{0,47}-[0-9a-f]{8})-(?P<index>[0-9]{6,})")


@dataclass(frozen=True)
class ShardName:
    """A shard id that parses: the input's file key and the shard's index."""

    file_key: str
    index: int

    @property
    def shard_id(self) -> str:
        return f"{self.file_key}-{self.index:06d}"


def shard_of(shard_id: str) -> ShardName | None:
    """The parsed shard id, or None if `shard_id` is not one batchembed writes (see the note)."""
    match = _SHARD.fullmatch(shard_id)
    if match is None:
        return None
    name = ShardName(match["key"], int(match["index"]))
    return name if name.shard_id == shard_id else None  # 0000001 is not how index 1 is written


def part_shard(name: str) -> ShardName | None:
    """The shard of a part's file name (`part-<shard id>.parquet`), or None if it is not a part's."""
    if not (name.startswith(PART_PREFIX) and name.endswith(PART_SUFFIX)):
        return None
    return shard_of(name[len(PART_PREFIX) : -len(PART_SUFFIX)])


def marker_shard(name: str) -> ShardName | None:
    """The shard of a marker's file name (`<shard id>.json`), or None if it is not a marker's."""
    return shard_of(name[: -len(MARKER_SUFFIX)]) if name.endswith(MARKER_SUFFIX) else None


def temporary_of(name: str) -> str | None:
    """The name a temporary file (`.<name>.tmp-<suffix>`) is to be renamed to, or None."""
    if name.startswith(".") and TEMP_MARK in name:
        return name[1 : name.index(TEMP_MARK)]
    return None


@dataclass(frozen=True)
class OutputLayout:
    data: Location  # the output directory: Parquet parts only
    state: Location  # the bookkeeping directory beside it

    @classmethod
    def of(cls, output: Location) -> OutputLayout:
        """The layout of `output`. A local output is resolved to its real path first (symlinks
        anywhere in it), so that every name of one directory finds the same bookkeeping and lock."""
        if output.is_local:
            real = os.path.realpath(output.path)
            if real != output.path:
                resolved = Location(output.fs, real, output.shown, output.kind)
                state = Location(output.fs, real + STATE_SUFFIX, real + STATE_SUFFIX, output.kind)
                return cls(resolved, state)
        return cls(output, output.sibling(output.name + STATE_SUFFIX))

    @property
    def manifest(self) -> Location:
        return self.state.join("manifest.json")

    @property
    def summary(self) -> Location:
        return self.state.join("summary.json")

    @property
    def done(self) -> Location:
        return self.state.join("done")

    @property
    def tmp(self) -> Location:
        return self.state.join("tmp")

    def part(self, shard_id: str) -> Location:
        # shard ids come from sanitized file keys (io/inputs.py safe_name); refuse anything else outright
        if shard_of(shard_id) is None:
            raise ValueError(f"not a shard id: {shard_id!r}")
        return self.data.join(f"{PART_PREFIX}{shard_id}{PART_SUFFIX}")

    def marker(self, shard_id: str) -> Location:
        if shard_of(shard_id) is None:
            raise ValueError(f"not a shard id: {shard_id!r}")
        return self.done.join(f"{shard_id}{MARKER_SUFFIX}")

    def temporary_dir(self) -> Location | None:
        """Where local files are written before their rename (None on object storage: one upload)."""
        return self.tmp if self.data.is_local else None

    def parts(self) -> dict[str, int]:
        """shard id -> size in bytes of every part in the output directory (names that parse
        wholly; anything else there is foreign: io/outputs.py refuses it)."""
        found = {}
        for info in self.data.files(recursive=False, strict=True):
            shard = part_shard(info.path.rsplit("/", 1)[-1])
            if shard is not None:
                found[shard.shard_id] = info.size
        return found

    def remove_stray_temporaries(self) -> int:
        """Delete temporary files a killed run left: anything temporary in tmp/ (batchembed's
        own), and in the output and done/ only the temporaries of names that parse as a part's or
        a marker's. Only call while holding the lease."""
        removed = 0
        for directory, ours in ((self.tmp, None), (self.data, part_shard), (self.done, marker_shard)):
            for info in directory.files(recursive=False, strict=True):
                target = temporary_of(info.path.rsplit("/", 1)[-1])
                if target is not None and (ours is None or ours(target) is not None):
                    directory.child(info.path).delete()
                    removed += 1
        return removed
