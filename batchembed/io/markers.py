"""Done markers: `<output>.batchembed/done/<shard id>.json`, written only after the shard's part.

A part without a marker is unfinished (the run died between the two writes)
and is redone. A marker records how the shard was made, so a re-run can tell
whether the shard it is about to read is the same one (same first row, same
number of pairs, same "last shard of the file", same file size for a last
shard) and can count the output without opening a single part; and it records
the part's size and SHA-256, so a re-run vouches only for a part it has checked
byte for byte: a part damaged in place, even at the same size, is redone.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from batchembed import status
from batchembed.io.layout import OutputLayout
from batchembed.io.reader import InputShard
from batchembed.io.writer import WrittenPart

log = logging.getLogger(__name__)

READERS = 32  # concurrent marker reads on object storage


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
    part_bytes: int  # size of the part file
    part_sha256: str  # its SHA-256: checked before the marker is trusted
    run: int  # number of the run that wrote it (see manifest.py)
    status_counts: dict[str, int] = field(default_factory=dict)

    @property
    def bad_rows(self) -> int:
        return sum(n for s, n in self.status_counts.items() if status.is_bad_row(s))

    def matches(self, shard: InputShard) -> bool:
        """True if `shard`, as read now, is the shard this marker records as done."""
        return self.matches_extent(shard.index, shard.first_row, len(shard), shard.last, shard.file.extent)

    def matches_extent(self, index: int, first_row: int, pairs: int, last: bool, extent: int | None) -> bool:
        same = (self.index, self.first_row, self.pairs, self.last) == (index, first_row, pairs, last)
        # a last shard may have been cut short by the end of the file: it is only the same
        # shard if the file still ends where it did (a grown file gets its tail redone)
        return same and (not self.last or self.extent == extent)


def write_marker(
    layout: OutputLayout, shard: InputShard, part: WrittenPart, rows: int, counts: Counter[str], run: int
) -> DoneMarker:
    marker = DoneMarker(
        shard_id=shard.shard_id,
        file_key=shard.file.key,
        index=shard.index,
        first_row=shard.first_row,
        pairs=len(shard),
        rows=rows,
        last=shard.last,
        extent=shard.file.extent,
        part_bytes=part.bytes,
        part_sha256=part.sha256,
        run=run,
        status_counts=dict(sorted(counts.items())),
    )
    text = json.dumps(asdict(marker), sort_keys=True) + "\n"
    layout.marker(shard.shard_id).write_text(text, layout.temporary_dir())
    return marker


def _parse(layout: OutputLayout, shard_id: str) -> DoneMarker | None:
    where = layout.marker(shard_id)
    try:
        data: dict[str, Any] = json.loads(where.read_text())
        marker = DoneMarker(**data)
    except (OSError, ValueError, TypeError) as exc:
        log.warning("%s: unreadable done marker (%s); its shard will be redone", where, exc)
        return None
    return marker if marker.shard_id == shard_id else None


def part_verified(layout: OutputLayout, marker: DoneMarker) -> bool:
    """The part is there with the marker's size and SHA-256 (reads it whole)."""
    try:
        data = layout.part(marker.shard_id).read_bytes()
    except OSError:
        return False
    return len(data) == marker.part_bytes and hashlib.sha256(data).hexdigest() == marker.part_sha256


def load_markers(layout: OutputLayout, verify: bool = True) -> dict[str, DoneMarker]:
    """Markers whose part is present with the recorded size and, with `verify`, SHA-256. Any
    other marker is removed, so its shard counts as unfinished and is redone. Without `verify`
    the caller must have the parts checked before it trusts them (the Ray engine has its
    workers do it, so the driver reads no part)."""
    parts = layout.parts()
    shard_ids = marked_shards(layout)
    # marker reads are small and independent: on object storage, latency, not bandwidth, is the cost
    with ThreadPoolExecutor(max_workers=1 if layout.state.is_local else READERS) as pool:
        parsed = list(pool.map(lambda shard_id: _parse(layout, shard_id), shard_ids))
    markers: dict[str, DoneMarker] = {}
    for shard_id, marker in zip(shard_ids, parsed):
        if marker is None or parts.get(shard_id) != marker.part_bytes or (verify and not part_verified(layout, marker)):
            if marker is not None:
                log.warning("%s: part missing or changed since it was marked done; redoing it", layout.part(shard_id))
            layout.marker(shard_id).delete()
            continue
        markers[marker.shard_id] = marker
    return markers


def marked_shards(layout: OutputLayout) -> list[str]:
    """The shard ids of every marker file (not yet parsed or checked)."""
    names = [info.path.rsplit("/", 1)[-1] for info in layout.done.files(recursive=False, strict=True)]
    return [n[: -len(".json")] for n in names if n.endswith(".json") and not n.startswith(".")]


def forget(layout: OutputLayout, shard_ids: list[str]) -> None:
    """Unmark shards and delete their parts: marker first, so a crash in between leaves an
    unmarked part, which the next run deletes."""
    for shard_id in shard_ids:
        layout.marker(shard_id).delete()
    for shard_id in shard_ids:
        layout.part(shard_id).delete()
