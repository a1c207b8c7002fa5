"""Before a run's first task: the output reconciled with what the run finds there.

Temporary files and unmarked parts of a killed run are deleted (only where their names and
inputs say batchembed wrote them), the manifest (io/manifest.py) must match the configuration,
and each input is compared with its record (same, appended, changed, new, gone, renamed).
Markers that disagree with the record are not believed: their shards are redone.
"""

from __future__ import annotations

import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from batchembed.engines.account import RunAccount
from batchembed.errors import BatchembedError, InputError, OutputError
from batchembed.io.inputs import recorded_as
from batchembed.io.layout import PART_PREFIX, PART_SUFFIX, OutputLayout, shard_of
from batchembed.io.manifest import Change, InputRecord, Manifest, Unreadable, differences, inspect, keys_named_in
from batchembed.io.manifest import load_manifest as _load_manifest
from batchembed.io.markers import disagreeing, forget, load_markers, marked_shards
from batchembed.io.reader import InputFile
from batchembed.io.sources import show
from batchembed.results.summary import FileCounts

log = logging.getLogger(__name__)

CONFLICTS_SHOWN = 3


class OutputReconciler(RunAccount):
    """The reconciling half of a run (engines/job.py's _Job): `prepare(discovered)`; the state it
    works on is declared by RunAccount."""

    def _wipe(self, manifest: Manifest | None) -> None:
        """--overwrite: remove what batchembed wrote here, and nothing else. Batchembed's are the
        parts whose names parse (io/layout.py; check_output refused every other name already)
        and whose input the manifest records, or a marker names where the manifest is unreadable.
        What it would refuse is refused before anything is deleted."""
        layout = self.layout
        marked = marked_shards(layout)
        known = set(manifest.inputs) if manifest else set()
        known |= {shard.file_key for shard_id in marked if (shard := shard_of(shard_id)) is not None}
        parts = layout.parts()
        if manifest is None:  # unreadable (or gone): the keys its text still names are batchembed's
            known |= keys_named_in(layout, {shard.file_key for s in parts if (shard := shard_of(s)) is not None})
        self._refuse_foreign(sorted(s for s in parts if (shard := shard_of(s)) is None or shard.file_key not in known))
        forget(layout, sorted(set(marked) | set(parts)))
        layout.manifest.delete()
        layout.summary.delete()

    def prepare(self, discovered: list[InputFile]) -> None:
        layout, output = self.layout, self.output
        layout.remove_stray_temporaries()
        if self.config.overwrite:
            self._wipe(_load_manifest_or_none(layout))
        manifest = _load_manifest(layout)
        if manifest is not None and not binds(layout):
            log.info("%s: no part was written under the recorded settings; they do not bind it", output)
            manifest = None
        if manifest is None:
            self._refuse_foreign(sorted(layout.parts()))
        elif manifest.fingerprint != self.manifest.fingerprint:
            raise OutputError(
                f"{output}: holds results made with other settings "
                f"({', '.join(differences(manifest.fingerprint, self.manifest.fingerprint))}); "
                "pass --overwrite to replace them, or choose another --output"
            )
        else:
            self.manifest = manifest
        started_before = manifest is not None
        # one input keeps one name: the spelling this output first recorded (io/inputs.py)
        recorded = self.manifest.inputs
        discovered = [recorded_as(f, recorded[f.key].path if f.key in recorded else None) for f in discovered]
        self.markers = load_markers(layout, verify=False)  # the engine checks the parts (execute)
        with_rows = Counter(m.file_key for m in self.markers.values())
        changes = self._inspect(discovered)
        gone = [key for key in self.manifest.inputs if key not in {f.key for f in discovered} and with_rows[key]]
        if not self.incremental:
            self._refuse_changes(changes, gone, with_rows, started_before)
        for file, change in changes:
            if change is Change.CHANGED and with_rows[file.key]:
                log.warning("%s: changed since it was processed (not only appended to); redoing it", show(file.path))
                forget(layout, [m.shard_id for m in self.markers.values() if m.file_key == file.key])
                self.markers = {k: m for k, m in self.markers.items() if m.file_key != file.key}
            elif change is Change.APPENDED and with_rows[file.key]:
                log.info("%s: grew since the last run; processing the new rows", show(file.path))
        gone = self._renamed(changes, gone)
        self._unbelieved(changes)
        for key in gone:
            record = self.manifest.inputs[key]
            log.warning("%s: no longer among the inputs; its rows stay in the output", record.path)
            self.summary.files[key] = FileCounts(record.path, record.format, state="kept")
        self._drop_orphans()
        self.manifest.runs += 1
        self.summary.run = self.manifest.runs
        self.manifest.save(layout)
        finished = self.manifest.finished_run
        self.new_bad_rows = sum(m.bad_rows for m in self.markers.values() if m.run > finished)

    def _renamed(self, changes: list[tuple[InputFile, Change]], gone: list[str]) -> list[str]:
        """A new input with the content of one that is gone is that file, renamed: its old parts go
        and it is done again under its new name (pair ids and source columns carry the name), so its
        rows are in the output once. Returns the inputs still gone."""
        left = list(gone)
        for file, change in changes:
            record = self.manifest.inputs[file.key]
            old = next(
                (key for key in left if change is Change.NEW and self.manifest.inputs[key].same_content(record)), None
            )
            if old is None:
                continue
            log.warning(
                "%s: the same content as %s, which is gone: taken as renamed, its rows are redone under the new name",
                show(file.path),
                self.manifest.inputs[old].path,
            )
            self._forget_file(old)
            del self.manifest.inputs[old]
            left.remove(old)
        return left

    def _forget_file(self, file_key: str) -> None:
        forget(self.layout, sorted(k for k, m in self.markers.items() if m.file_key == file_key))
        self.markers = {k: m for k, m in self.markers.items() if m.file_key != file_key}

    def _unbelieved(self, changes: list[tuple[InputFile, Change]]) -> None:
        """Markers that disagree with the manifest's record of their input are not believed: their
        parts are redone, so the output's row account is the inputs' own (io/markers.py)."""
        known = {
            file.key: record.pairs
            for file, change in changes
            if change is Change.SAME and (record := self.manifest.inputs[file.key]).pairs is not None
        }
        wrong = disagreeing(self.markers, self.config.shard_rows, self.manifest.runs, known)
        for shard_id, why in sorted(wrong.items()):
            log.warning("%s: done marker not believed (%s); redoing its part", self.layout.marker(shard_id), why)
        forget(self.layout, sorted(wrong))
        self.markers = {k: m for k, m in self.markers.items() if k not in wrong}

    def _inspect(self, discovered: list[InputFile]) -> list[tuple[InputFile, Change]]:
        """Compare every input with the manifest; record what this run reads. On object storage
        each comparison is a metadata request: they run INSPECTORS at a time."""

        def compare(found: InputFile) -> tuple[Change, InputRecord] | BatchembedError:
            try:
                return inspect(found, self.manifest.inputs.get(found.key))
            except InputError as error:
                return error

        remote = any(not found.path.is_local for found in discovered)
        with ThreadPoolExecutor(max_workers=INSPECTORS if remote else 1) as pool:
            compared = list(pool.map(compare, discovered))
        changes = []
        for found, outcome in zip(discovered, compared):
            self._counts(found)
            try:
                if isinstance(outcome, BatchembedError):
                    raise outcome
                change, record = outcome
            except Unreadable as error:
                # recorded (size and mtime), so fixing permissions is not an input change; an
                # earlier record, made when the file was read, is kept as the better one
                self.manifest.inputs.setdefault(found.key, error.record)
                self.fail(found, error)
                continue
            except InputError as error:
                self.fail(found, error)
                continue
            self.manifest.inputs[found.key] = record
            file = InputFile(found.path, found.format, extent=record.bytes)
            self.files.append(file)
            changes.append((file, change))
        return changes

    def _refuse_changes(
        self, changes: list[tuple[InputFile, Change]], gone: list[str], with_rows: Counter[str], started_before: bool
    ) -> None:
        """Without --incremental the inputs must be those the output was started from; a file
        may differ only if nothing of it is in the output yet (e.g. it failed to read and was fixed)."""
        words = {Change.NEW: "is new", Change.APPENDED: "grew", Change.CHANGED: "changed"}
        conflicts = [
            f"{show(file.path)} {words[change]}"
            for file, change in changes
            if (change is Change.NEW and started_before)
            or (change in (Change.APPENDED, Change.CHANGED) and with_rows[file.key])
        ]
        conflicts += [f"{self.manifest.inputs[key].path} is no longer an input" for key in gone]
        if conflicts:
            more = f" and {len(conflicts) - CONFLICTS_SHOWN} more" if len(conflicts) > CONFLICTS_SHOWN else ""
            raise OutputError(
                f"{self.output}: the inputs changed since this output was started "
                f"({'; '.join(conflicts[:CONFLICTS_SHOWN])}{more}); pass --incremental to process what is new, "
                "or --overwrite to start over"
            )

    def _drop_orphans(self) -> None:
        """Markers of files the manifest does not know, and parts without a marker, are
        leftovers of interrupted runs: delete them so no row can appear twice. A part without a
        marker goes only if its input is the manifest's; any other is refused, before anything
        is deleted."""
        unmarked = [shard for shard in self.layout.parts() if shard not in self.markers]
        known = self.manifest.inputs
        self._refuse_foreign([s for s in unmarked if (shard := shard_of(s)) is None or shard.file_key not in known])
        orphans = {m.shard_id for m in self.markers.values() if m.file_key not in known}
        if orphans:
            log.warning("%s: removing %d parts of unknown input files", self.output, len(orphans))
            forget(self.layout, sorted(orphans))
            self.markers = {k: m for k, m in self.markers.items() if k not in orphans}
        for shard_id in unmarked:
            self.layout.part(shard_id).delete()
        if unmarked:
            log.info("%s: removed %d unfinished parts of an interrupted run", self.output, len(unmarked))

    def _refuse_foreign(self, shards: list[str]) -> None:
        """Parts no manifest or marker says batchembed wrote are the user's: never delete them."""
        if shards:
            more = f" and {len(shards) - CONFLICTS_SHOWN} more" if len(shards) > CONFLICTS_SHOWN else ""
            names = ", ".join(f"{PART_PREFIX}{shard}{PART_SUFFIX}" for shard in shards[:CONFLICTS_SHOWN])
            raise OutputError(
                f"{self.output}: holds Parquet parts that batchembed did not write, or whose input its manifest does "
                f"not record ({names}{more}); move them away, or choose another --output"
            )


INSPECTORS = 32  # concurrent metadata requests when comparing inputs on object storage


def _load_manifest_or_none(layout: OutputLayout) -> Manifest | None:
    try:
        return _load_manifest(layout)
    except OutputError:  # --overwrite of an output whose manifest is damaged: only marked parts go
        return None


def binds(layout: OutputLayout) -> bool:
    """Whether the output holds any part or done marker: only then do its settings bind it."""
    try:
        marked = marked_shards(layout)
    except FileNotFoundError:
        marked = []
    except OSError:  # damaged bookkeeping (a directory made a file): the checks that follow say so
        return True
    return bool(marked) or bool(layout.parts())
