"""Reading a finished output back, refusing one that is unfinished or damaged.

An output is believed only as far as its own bookkeeping vouches for it (io/layout.py): the
manifest says the last run finished; every part has a done marker and every marker its part, with
the marker's size and SHA-256; each input's markers run from its first shard to its last with no
gap; and the finished run's summary counts the same pairs and rows. Nothing here writes or
deletes: a damaged output is the next run's to repair (it redoes what fails these checks).
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from batchembed.errors import BatchembedError, OutputError

if TYPE_CHECKING:
    import pyarrow as pa

    from batchembed.io.layout import OutputLayout
    from batchembed.io.manifest import Manifest
    from batchembed.io.markers import DoneMarker

READERS = 8  # concurrent part reads on object storage: each is a round trip
RESUME = "run the same job again to finish it"
REPAIR = "run the same job again: it redoes what is missing or damaged"


def read_output(output: str | os.PathLike[str]) -> pa.Table:
    """Every row of a finished output as one table, parts in input order, with the output's
    schema and key-value metadata. `output` is a local path or a URI (s3://...).

    For the output of `batchembed uses`, its words table (one row per word and pair of groupings).

    Raises OutputError, and only OutputError (its `exit_code` is the CLI's), when the output is
    not a batchembed output, when its last run did not finish (still running, stopped,
    interrupted, or input files failed), when it holds a file batchembed did not write, when an
    input the manifest records is not covered from its first shard to its last, or when a part
    or done marker is missing, extra, unreadable or changed.
    """
    import pyarrow as pa

    from batchembed.io.layout import OutputLayout
    from batchembed.io.storage import locate
    from batchembed.usage.job import read_uses_output

    try:
        words = read_uses_output(locate(os.fspath(output)))
        if words is not None:  # a uses output (batchembed uses): its words table
            return words
        layout = OutputLayout.of(locate(os.fspath(output)))
    except BatchembedError as exc:
        raise OutputError(f"{os.fspath(output)}: {exc.message}") from exc
    shown = str(layout.data)
    try:
        return _read(layout, shown)
    except OutputError:
        raise
    except (OSError, ValueError, pa.ArrowException, BatchembedError) as exc:  # a directory made a file, a store gone
        raise OutputError(f"{shown}: cannot read this output ({_one_line(exc)}); {REPAIR}") from exc


def _read(layout: OutputLayout, shown: str) -> pa.Table:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from batchembed.io.manifest import load_manifest
    from batchembed.io.outputs import foreign_files
    from batchembed.io.schema import output_schema

    manifest = load_manifest(layout)
    if manifest is None:
        raise OutputError(f"{shown}: not a batchembed output (no {layout.manifest}); write it with batchembed run")
    summary = _summary(layout)
    if manifest.runs == 0 or manifest.finished_run != manifest.runs:
        outcome = summary.get("outcome", "did not finish") if summary.get("run") == manifest.runs else "did not finish"
        raise OutputError(f"{shown}: unfinished: its last run (run {manifest.runs}) {_said(outcome)}; {RESUME}")
    foreign = foreign_files(layout)
    if foreign:
        raise OutputError(
            f"{shown}: holds files batchembed did not write ({', '.join(foreign[:3])}); move them away, then read it"
        )
    markers = _markers(layout)
    _check_complete(shown, layout, markers, set(manifest.inputs))
    _check_coverage(shown, markers, manifest)
    _check_summary(shown, markers, summary if summary.get("run") == manifest.runs else {})
    ordered = sorted(markers.values(), key=lambda m: (m.file_key, m.index))
    if not ordered:
        names = [model["name"] for model in manifest.fingerprint.get("models", [])]
        return output_schema(names).empty_table()

    def read(marker: DoneMarker) -> pa.Table:
        part = layout.part(marker.shard_id)
        try:
            data = part.read_bytes()
        except (OSError, pa.ArrowException) as exc:
            raise OutputError(f"{part}: cannot read ({_one_line(exc)}); {REPAIR}") from exc
        if not marker.vouches_for(data):
            raise OutputError(f"{part}: changed since it was written (size or SHA-256 differ); {REPAIR}")
        try:
            return pq.read_table(pa.BufferReader(data))
        except pa.ArrowException as exc:
            raise OutputError(f"{part}: not a readable Parquet file ({_one_line(exc)}); {REPAIR}") from exc

    with ThreadPoolExecutor(max_workers=1 if layout.data.is_local else READERS) as pool:
        tables = list(pool.map(read, ordered))
    try:
        return pa.concat_tables(tables)
    except pa.ArrowInvalid as exc:
        raise OutputError(f"{shown}: its parts have different schemas ({_one_line(exc)}); {REPAIR}") from exc


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _check_coverage(shown: str, markers: dict[str, DoneMarker], manifest: Manifest) -> None:
    """Every input the manifest records is in the output whole: its markers run from shard 0 to
    its last, and where the manifest counted its pairs, they hold exactly that many. The
    manifest decides, not the summary (which a user may delete with the parts)."""
    shard_rows = manifest.fingerprint.get("shard_rows")
    by_file: dict[str, list[DoneMarker]] = defaultdict(list)
    for marker in markers.values():
        by_file[marker.file_key].append(marker)
    for key, record in sorted(manifest.inputs.items()):
        found = sorted(by_file.get(key, []), key=lambda m: m.index)
        held = sum(m.pairs for m in found)
        if record.pairs is not None and held != record.pairs:
            raise OutputError(f"{shown}: input {record.path} has {record.pairs} pairs, its parts hold {held}; {REPAIR}")
        if found and isinstance(shard_rows, int) and shard_rows > 0:
            wrong = [m.shard_id for m in found if m.first_row != m.index * shard_rows + 1]
            if wrong:
                raise OutputError(f"{shown}: the part {wrong[0]} does not hold the rows its shard should; {REPAIR}")


def _said(outcome: str) -> str:
    """A summary's outcome as what the last run did."""
    words = {"running": "is still running, or was killed", "interrupted": "was interrupted"}
    return words.get(outcome, outcome)  # "stopped: ...", "finished with input errors", "crashed", ...


def _summary(layout: OutputLayout) -> dict[str, Any]:
    try:
        data = json.loads(layout.summary.read_text()) if layout.summary.exists() else {}
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _markers(layout: OutputLayout) -> dict[str, DoneMarker]:
    from batchembed.io.markers import marked_shards, marker_from

    markers = {}
    for shard_id in marked_shards(layout):
        where = layout.marker(shard_id)
        try:
            marker = marker_from(json.loads(where.read_text()))
        except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError included
            raise OutputError(f"{where}: unreadable done marker ({_one_line(exc)}); {REPAIR}") from exc
        if marker.shard_id != shard_id:
            raise OutputError(f"{where}: the done marker of another part ({marker.shard_id}); {REPAIR}")
        markers[shard_id] = marker
    return markers


def _check_complete(shown: str, layout: OutputLayout, markers: dict[str, DoneMarker], inputs: set[str]) -> None:
    parts = layout.parts()
    unmarked = sorted(set(parts) - set(markers))
    if unmarked:
        raise OutputError(f"{layout.part(unmarked[0])}: a part without a done marker; {REPAIR}")
    for shard_id, marker in sorted(markers.items()):
        if shard_id not in parts:
            raise OutputError(f"{layout.part(shard_id)}: missing (its done marker is there); {REPAIR}")
        if parts[shard_id] != marker.part_bytes:
            raise OutputError(f"{layout.part(shard_id)}: changed since it was written (size differs); {REPAIR}")
        if marker.file_key not in inputs:
            raise OutputError(f"{layout.part(shard_id)}: from an input the manifest does not record; {REPAIR}")
    by_file: dict[str, list[DoneMarker]] = defaultdict(list)
    for marker in markers.values():
        by_file[marker.file_key].append(marker)
    for file_key, found in by_file.items():
        found.sort(key=lambda m: m.index)
        if [m.index for m in found] != list(range(len(found))) or not found[-1].last:
            raise OutputError(f"{shown}: the parts of input {file_key} have a gap; {REPAIR}")


def _check_summary(shown: str, markers: dict[str, DoneMarker], summary: dict[str, Any]) -> None:
    """The finished run's summary, where there is one, counts what the markers count."""
    counted = (sum(m.pairs for m in markers.values()), sum(m.rows for m in markers.values()))
    if summary and counted != (summary.get("pairs_read"), summary.get("rows_written")):
        raise OutputError(
            f"{shown}: holds {counted[0]} pairs in {counted[1]} rows, its last run wrote "
            f"{summary.get('pairs_read')} pairs in {summary.get('rows_written')} rows; {REPAIR}"
        )
