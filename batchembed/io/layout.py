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
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from batchembed.io.storage import TEMP_MARK, Location

STATE_SUFFIX = ".batchembed"
PART_PREFIX = "part-"
PART_SUFFIX = ".parquet"


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
        if not shard_id or "/" in shard_id or "\\" in shard_id or shard_id.startswith("."):
            raise ValueError(f"unsafe shard id {shard_id!r}")
        return self.data.join(f"{PART_PREFIX}{shard_id}{PART_SUFFIX}")

    def marker(self, shard_id: str) -> Location:
        return self.done.join(f"{shard_id}.json")

    def temporary_dir(self) -> Location | None:
        """Where local files are written before their rename (None on object storage: one upload)."""
        return self.tmp if self.data.is_local else None

    def parts(self) -> dict[str, int]:
        """shard id -> size in bytes of every part in the output directory."""
        found = {}
        for info in self.data.files(recursive=False, strict=True):
            name = info.path.rsplit("/", 1)[-1]
            if name.startswith(PART_PREFIX) and name.endswith(PART_SUFFIX):
                found[name[len(PART_PREFIX) : -len(PART_SUFFIX)]] = info.size
        return found

    def remove_stray_temporaries(self) -> int:
        """Delete temporary files a killed run left. Only call while holding the lease."""
        removed = 0
        for directory in (self.tmp, self.data, self.done):
            for info in directory.files(recursive=False, strict=True):
                name = info.path.rsplit("/", 1)[-1]
                if name.startswith(".") and TEMP_MARK in name:
                    directory.child(info.path).delete()
                    removed += 1
        return removed
