"""Done markers: `_done/<shard id>.json`, written only after the shard's part is in place.

A part without a marker is unfinished (the run died between the two renames)
and is redone; a marker says how the shard was made, so a re-run can tell
whether the shard it is about to read is the same one (same first row, same
number of pairs, same "last shard of the file", same file size for a last
shard) and can count the output without opening a single part.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from batchembed import status
from batchembed.io.reader import InputShard
from batchembed.io.writer import fsync_dir, part_path, write_text_atomic

log = logging.getLogger(__name__)

DONE_DIR = "_done"


@dataclass(frozen=True)
class DoneMarker:
    shard_id: str
    file_key: str
    index: int
    first_row: int
    pairs: int  # input pairs in the shard
    rows: int  # output rows in its part
    last: bool  # the file's last shard when it was read
    extent: int | None  # bytes of the input file the run read (its recorded size)
    part_bytes: int  # size of the part file, checked before the marker is trusted
    run: int  # number of the run that wrote it (see manifest.py)
    status_counts: dict[str, int] = field(default_factory=dict)

    @property
    def bad_rows(self) -> int:
        return sum(n for s, n in self.status_counts.items() if status.is_bad_row(s))

    def matches(self, shard: InputShard) -> bool:
        """True if `shard`, as read now, is the shard this marker records as done."""
        same = (self.index, self.first_row, self.pairs, self.last) == (
            shard.index,
            shard.first_row,
            len(shard),
            shard.last,
        )
        # a last shard may have been cut short by the end of the file: it is only the same
        # shard if the file still ends where it did (a grown file gets its tail redone)
        return same and (not self.last or self.extent == shard.file.extent)


def marker_path(output: Path, shard_id: str) -> Path:
    return output / DONE_DIR / f"{shard_id}.json"


def write_marker(output: Path, shard: InputShard, rows: int, counts: Counter[str], run: int) -> DoneMarker:
    part = part_path(output, shard.shard_id)
    marker = DoneMarker(
        shard_id=shard.shard_id,
        file_key=shard.file.key,
        index=shard.index,
        first_row=shard.first_row,
        pairs=len(shard),
        rows=rows,
        last=shard.last,
        extent=shard.file.extent,
        part_bytes=part.stat().st_size,
        run=run,
        status_counts=dict(sorted(counts.items())),
    )
    (output / DONE_DIR).mkdir(exist_ok=True)
    write_text_atomic(marker_path(output, shard.shard_id), json.dumps(asdict(marker), sort_keys=True) + "\n")
    return marker


def _parse(path: Path) -> DoneMarker | None:
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        marker = DoneMarker(**data)
    except (OSError, ValueError, TypeError) as exc:
        log.warning("%s: unreadable done marker (%s); its shard will be redone", path, exc)
        return None
    return marker if marker.shard_id == path.stem else None


def load_markers(output: Path) -> dict[str, DoneMarker]:
    """Markers whose part is present with the recorded size. Any other marker is removed,
    so its shard counts as unfinished."""
    directory = output / DONE_DIR
    markers: dict[str, DoneMarker] = {}
    if not directory.is_dir():
        return markers
    for path in sorted(directory.glob("*.json")):
        marker = _parse(path)
        part = part_path(output, marker.shard_id) if marker else None
        if marker is None or part is None or not part.is_file() or part.stat().st_size != marker.part_bytes:
            if marker is not None:
                log.warning("%s: part missing or changed since it was marked done; the shard will be redone", part)
            path.unlink(missing_ok=True)
            continue
        markers[marker.shard_id] = marker
    return markers


def forget(output: Path, shard_ids: list[str]) -> None:
    """Unmark shards and delete their parts: marker first, so a crash in between leaves an
    unmarked part, which the next run deletes."""
    for shard_id in shard_ids:
        marker_path(output, shard_id).unlink(missing_ok=True)
    fsync_dir(output / DONE_DIR)
    for shard_id in shard_ids:
        part_path(output, shard_id).unlink(missing_ok=True)
    fsync_dir(output)
