"""A run's account: what it read and wrote, counted from the done markers, and how it ended.

The driver counts each marker as a task reports it (with --max-bad-rows checked as each one is
counted, on every engine), records each input's problem once, and at the end writes the
manifest and the summary (results/summary.py) from the markers, so they always agree.
"""

from __future__ import annotations

import logging
from collections import Counter

import pyarrow as pa

from batchembed.config import RunConfig
from batchembed.errors import BatchembedError, ExitCode, OutputError, TooManyBadRows
from batchembed.io.layout import OutputLayout
from batchembed.io.manifest import Manifest
from batchembed.io.markers import DoneMarker, complete_pairs, forget, unreported_markers
from batchembed.io.reader import InputFile
from batchembed.io.sources import show
from batchembed.io.storage import Location
from batchembed.results.summary import FileCounts, RunSummary

log = logging.getLogger(__name__)


class RunAccount:
    """The counting half of a run (engines/job.py's _Job)."""

    # the run's state, kept by engines/job.py's _Job
    config: RunConfig
    layout: OutputLayout
    output: Location
    incremental: bool
    manifest: Manifest
    markers: dict[str, DoneMarker]
    files: list[InputFile]
    summary: RunSummary
    new_bad_rows: int
    files_by_key: dict[str, InputFile]

    def fail(self, file: InputFile | None, error: BatchembedError) -> None:
        """Record a problem: once per input file, however many of its tasks ran into it."""
        if file is not None:
            counts = self._counts(file)
            if counts.error is not None:
                log.debug("%s (again)", error)
                return
            counts.error = str(error)
        log.info("%s", error)
        self.summary.errors.append(str(error))

    def _counts(self, file: InputFile) -> FileCounts:
        return self.summary.files.setdefault(file.key, FileCounts(show(file.path), file.format))

    def _unmark(self, shard_ids: list[str]) -> None:
        forget(self.layout, shard_ids)
        for shard_id in shard_ids:
            marker = self.markers.pop(shard_id)
            if marker.run > self.manifest.finished_run:
                self.new_bad_rows -= marker.bad_rows

    def _count_marker(self, marker: DoneMarker) -> None:
        replaced = self.markers.get(marker.shard_id)
        if replaced is not None and replaced.run > self.manifest.finished_run:
            self.new_bad_rows -= replaced.bad_rows
        self.markers[marker.shard_id] = marker
        self.new_bad_rows += marker.bad_rows
        self.summary.shards_written += 1
        self.summary.pairs_this_run += marker.pairs
        self.summary.rows_this_run += marker.rows

    def _check_bad_rows(self, marker: DoneMarker | None) -> None:
        """One rule on every engine: checked as each shard's marker is counted."""
        limit = self.config.max_bad_rows
        if limit is not None and self.new_bad_rows > limit:
            where = " (in shards already written)"
            if marker is not None:
                where = f" (last in {show(self.files_by_key[marker.file_key].path)})"
            raise TooManyBadRows(
                f"{self.new_bad_rows} bad rows exceed --max-bad-rows {limit}{where}; see the status column of "
                f"{self.output}; finished shards are kept: a re-run with a higher limit goes on from there"
            )

    def _settle_files(self) -> bool:
        """For each input read to its end without error: markers past its last shard go (they
        cannot be of this file), and its pair count is recorded, so later runs believe only the
        markers that agree with it. True if the manifest learnt something."""
        learnt = False
        for file in self.files:
            counts = self.summary.files.get(file.key)
            record = self.manifest.inputs.get(file.key)
            if counts is None or record is None or counts.state != "done" or counts.error is not None:
                continue
            mine = [m for m in self.markers.values() if m.file_key == file.key]
            lasts = [m.index for m in mine if m.last]
            past = sorted(m.shard_id for m in mine if lasts and m.index > min(lasts))
            if past:
                log.warning(
                    "%s: %d done markers lie past the file's last shard; removing them", show(file.path), len(past)
                )
                self._unmark(past)
                mine = [m for m in mine if m.shard_id not in past]
            pairs = complete_pairs(mine, self.config.shard_rows)
            if pairs is not None and record.pairs != pairs:
                record.pairs = pairs
                learnt = True
        return learnt

    def end(self, code: ExitCode, outcome: str) -> None:
        """Count the output from the markers, then write the manifest and the summary. The store may
        be what failed: then the summary says so if it can be written, and the run's own error stands."""
        try:
            if code not in (ExitCode.OK, ExitCode.BAD_ROWS):  # stopped: what landed as it stopped is counted too
                for marker in unreported_markers(self.layout, self.markers, self.manifest.runs):
                    self._count_marker(marker)
            learnt = self._settle_files()
        except (BatchembedError, OSError, pa.ArrowException) as error:
            log.error("%s", error)
            learnt = False
        summary = self.summary
        summary.status_counts = Counter()
        summary.pairs_read = summary.rows_written = 0
        for marker in self.markers.values():
            counts = summary.files.get(marker.file_key)
            if counts is None:
                record = self.manifest.inputs.get(marker.file_key)
                counts = summary.files[marker.file_key] = FileCounts(
                    record.path if record else marker.file_key, record.format if record else "?"
                )
            counts.pairs += marker.pairs
            counts.rows += marker.rows
            counts.shards += 1
            counts.bad_rows += marker.bad_rows
            summary.pairs_read += marker.pairs
            summary.rows_written += marker.rows
            summary.status_counts.update(marker.status_counts)
        for counts in summary.files.values():
            if counts.error is not None:
                counts.state = "partial" if counts.shards else "failed"
        summary.new_bad_rows = self.new_bad_rows
        summary.finish(code, outcome)
        try:
            if code in (ExitCode.OK, ExitCode.BAD_ROWS):
                self.manifest.finished_run = self.manifest.runs
                self.manifest.save(self.layout)
            elif learnt:
                self.manifest.save(self.layout)
            summary.write(self.layout)
        except (OutputError, OSError, pa.ArrowException) as error:  # e.g. a full disk, a store gone
            log.error("%s", error)
