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
import os
import re
import sys
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from types import FrameType
from typing import Protocol

from batchembed import status
from batchembed.io.inputs import InputFile, InputShard
from batchembed.io.layout import OutputLayout, marker_shard, shard_of

log = logging.getLogger(__name__)

READERS = 32  # concurrent marker reads on object storage


@dataclass(frozen=True)
class WrittenPart:
    """What was written: a part's size and SHA-256, which go into its shard's done marker, so a
    later run can prove the part is the one it marked (the writing itself: stages/write.py)."""

    bytes: int
    sha256: str


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
        return status.bad_rows(self.status_counts)

    def vouches_for(self, data: bytes) -> bool:
        """True if `data`, a part's bytes, has the size and SHA-256 this marker recorded."""
        return len(data) == self.part_bytes and hashlib.sha256(data).hexdigest() == self.part_sha256

    def matches(self, shard: InputShard) -> bool:
        """True if `shard`, as read now, is the shard this marker records as done."""
        return self.matches_extent(shard.index, shard.first_row, len(shard), shard.last, shard.file.extent)

    def matches_extent(self, index: int, first_row: int, pairs: int, last: bool, extent: int | None) -> bool:
        same = (self.index, self.first_row, self.pairs, self.last) == (index, first_row, pairs, last)
        # a last shard may have been cut short by the end of the file: it is only the same
        # shard if the file still ends where it did (a grown file gets its tail redone)
        return same and (not self.last or self.extent == extent)


class MarkedShard(Protocol):
    """What a marker records of a shard: a shard's span of pieces (stages/task.py ShardSpan)."""

    @property
    def shard_id(self) -> str: ...

    @property
    def file(self) -> InputFile: ...

    @property
    def index(self) -> int: ...

    @property
    def first_row(self) -> int: ...

    @property
    def last(self) -> bool: ...

    def __len__(self) -> int: ...


def write_marker(
    layout: OutputLayout, shard: MarkedShard, part: WrittenPart, rows: int, counts: Counter[str], run: int
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
    _trace(marker.shard_id)
    return marker


TRACE_VARIABLE = "BATCHEMBED_TRACE_MARKERS"  # a directory: who wrote each marker, for the one-path test


def _trace(shard_id: str) -> None:
    """With TRACE_VARIABLE set, record the functions on the stack that wrote this marker (one
    JSON line per marker, a file per process), so a test can show which code path marks shards."""
    directory = os.environ.get(TRACE_VARIABLE)
    if not directory:
        return
    frame: FrameType | None = sys._getframe(1)
    stack: list[str] = []
    while frame is not None:
        stack.append(f"{frame.f_globals.get('__name__')}.{frame.f_code.co_name}")
        frame = frame.f_back
    with open(os.path.join(directory, f"{os.getpid()}.jsonl"), "a", encoding="utf-8") as trace:
        trace.write(json.dumps({"shard": shard_id, "stack": stack}) + "\n")


_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_INTS = ("index", "first_row", "pairs", "rows", "part_bytes", "run")


def marker_from(data: object) -> DoneMarker:
    """A marker from its JSON, every field checked: markers are input too (a damaged one must
    cost its shard, not the run). Raises ValueError naming the first bad field."""
    if not isinstance(data, dict):
        raise ValueError(f"a JSON {type(data).__name__}, not an object")
    names = {f.name for f in fields(DoneMarker)}
    if set(data) - names or names - set(data) - {"status_counts"}:
        raise ValueError(f"fields {sorted(set(data) ^ names)} unexpected or missing")

    def integer(value: object) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0

    for name in _INTS:
        if not integer(data[name]):
            raise ValueError(f"{name} is {data[name]!r}, not a whole number")
    if not (isinstance(data["shard_id"], str) and isinstance(data["file_key"], str)):
        raise ValueError("shard_id and file_key must be strings")
    if not isinstance(data["last"], bool):
        raise ValueError(f"last is {data['last']!r}, not true or false")
    if data["extent"] is not None and not integer(data["extent"]):
        raise ValueError(f"extent is {data['extent']!r}, not a size in bytes")
    if not (isinstance(data["part_sha256"], str) and _SHA256.match(data["part_sha256"])):
        raise ValueError("part_sha256 is not a SHA-256 in hex")
    counts = data.get("status_counts", {})
    if not isinstance(counts, dict) or not all(isinstance(k, str) and integer(v) for k, v in counts.items()):
        raise ValueError("status_counts is not a map of status to count")
    marker = DoneMarker(**data)
    if shard_of(marker.shard_id) is None:
        raise ValueError(f"shard_id {marker.shard_id!r} is not a name batchembed writes")
    if marker.shard_id != f"{marker.file_key}-{marker.index:06d}":
        raise ValueError(f"shard_id {marker.shard_id!r} is not shard {marker.index} of {marker.file_key!r}")
    if marker.pairs < 1 or marker.rows < marker.pairs or sum(counts.values()) != marker.rows:
        raise ValueError(f"{marker.pairs} pairs, {marker.rows} rows and statuses {counts} do not add up")
    return marker


def _parse(layout: OutputLayout, shard_id: str) -> DoneMarker | None:
    where = layout.marker(shard_id)
    try:
        text = where.read_text()
    except FileNotFoundError:
        return None
    except UnicodeDecodeError:
        text = ""
    try:
        marker = marker_from(json.loads(text))
    except ValueError as exc:  # JSONDecodeError included
        log.warning("%s: invalid done marker (%s); its shard will be redone", where, exc)
        return None
    return marker if marker.shard_id == shard_id else None


def disagreeing(
    markers: Mapping[str, DoneMarker], shard_rows: int, runs: int, known_pairs: Mapping[str, int]
) -> dict[str, str]:
    """The markers that cannot be true of their input, each with why (shard id -> reason).

    A marker is believed only where it agrees with the plan: its row range is its index's
    (`shard_rows` pairs a shard), it comes from a run that happened, and, per file, no marker
    lies past the file's last shard: past the first marker that says "last", and, where the
    file's pair count is known (`known_pairs`, recorded once a run read all of it, for files
    unchanged since), past that count, with "last" exactly on the last shard."""
    wrong: dict[str, str] = {}
    by_file: dict[str, list[DoneMarker]] = {}
    for marker in markers.values():
        if marker.first_row != marker.index * shard_rows + 1 or marker.pairs > shard_rows:
            wrong[marker.shard_id] = f"rows {marker.first_row}+{marker.pairs} are not shard {marker.index}'s"
        elif not 1 <= marker.run <= runs:
            wrong[marker.shard_id] = f"written by run {marker.run}, but this output has had {runs}"
        else:
            by_file.setdefault(marker.file_key, []).append(marker)
    for file_key, found in by_file.items():
        total = known_pairs.get(file_key)
        if total is not None:
            count = -(-total // shard_rows)
            for m in found:
                expected = min(shard_rows, total - m.index * shard_rows)
                if m.index >= count or m.last != (m.index == count - 1) or m.pairs != expected:
                    wrong[m.shard_id] = f"the file has {total} pairs: shard {m.index} cannot hold {m.pairs}"
            continue
        lasts = [m.index for m in found if m.last]
        if lasts:
            for m in found:
                if m.index > min(lasts):
                    wrong[m.shard_id] = f"shard {m.index} lies past the file's last shard, {min(lasts)}"
    return wrong


def complete_pairs(markers: list[DoneMarker], shard_rows: int) -> int | None:
    """The file's pair count, if these markers (one file's) cover it from its first to its last shard."""
    ordered = sorted(markers, key=lambda m: m.index)
    if not ordered or not ordered[-1].last:
        return None
    for i, m in enumerate(ordered):
        if m.index != i or m.first_row != i * shard_rows + 1 or (not m.last and m.pairs != shard_rows):
            return None
    return sum(m.pairs for m in ordered)


def part_verified(layout: OutputLayout, marker: DoneMarker) -> bool:
    """The part is there with the marker's size and SHA-256 (reads it whole)."""
    try:
        data = layout.part(marker.shard_id).read_bytes()
    except OSError:
        return False
    return marker.vouches_for(data)


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


def unreported_markers(layout: OutputLayout, known: dict[str, DoneMarker], run: int) -> list[DoneMarker]:
    """Markers of run `run` that `known` lacks, with their parts in place: written by a task that
    had passed its last check when the driver stopped counting (a run stopped by an error)."""
    unknown = [shard_id for shard_id in marked_shards(layout) if shard_id not in known]
    if not unknown:
        return []
    parts = layout.parts()
    found = [_parse(layout, shard_id) for shard_id in unknown]
    return [m for m in found if m is not None and m.run == run and parts.get(m.shard_id) == m.part_bytes]


def marked_shards(layout: OutputLayout) -> list[str]:
    """The shard ids of every marker file (not yet parsed or checked). Files in done/ whose name
    does not parse as a marker's are not batchembed's: never read, never deleted."""
    names = [info.path.rsplit("/", 1)[-1] for info in layout.done.files(recursive=False, strict=True)]
    return [shard.shard_id for name in names if (shard := marker_shard(name)) is not None]


def forget(layout: OutputLayout, shard_ids: list[str]) -> None:
    """Unmark shards and delete their parts: marker first, so a crash in between leaves an
    unmarked part, which the next run deletes."""
    for shard_id in shard_ids:
        layout.marker(shard_id).delete()
    for shard_id in shard_ids:
        layout.part(shard_id).delete()
