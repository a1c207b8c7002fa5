"""`manifest.json` in the output's bookkeeping directory: what the output was made from, so a
re-run can tell whether it may resume it.

The fingerprint holds everything that changes results: tool version, each
model's describe(), metrics, tokenizer, columns, shard size. Token budget and
device are left out on purpose: they change batching and speed, not results
(beyond fp tolerance).

Each input file is recorded with its size, modification time and content identity, and,
once a run has read all of it, its number of pairs (done markers are believed only where
they agree with it: io/markers.py).

- On a local disk the identity is a SHA-256 of the bytes, which also tells an unchanged
  file from one that grew by appended bytes (its old bytes hash the same) and from one that
  changed. Content decides because a client can set the mtime back (`touch -d`); hashing
  costs little next to embedding (BENCHMARKS.md).
- On object storage the driver reads no input byte: the identity is what the store says in
  the object's metadata, its ETag or else its version id (one metadata request per object;
  pyarrow's listings carry only size and time, so the ETag comes from opening the object,
  which sends a HEAD and no GET). The store's times have a resolution of one second, so a
  same-size rewrite within that second is told apart only by this identity. An object
  cannot be appended to, only rewritten, so a different identity means "changed" (the
  file's rows are redone under --incremental). A store that says neither gets its objects
  hashed, as local files are.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any

import pyarrow as pa

from batchembed.config import RunConfig
from batchembed.embedders.base import Described
from batchembed.embedders.distances import METRICS
from batchembed.errors import InputError, OutputError
from batchembed.io.layout import OutputLayout
from batchembed.io.reader import InputFile
from batchembed.io.sources import reason, show
from batchembed.io.storage import Location
from batchembed.version import __version__

MANIFEST_FORMAT = 1
HASH_BLOCK = 1 << 20


def fingerprint(config: RunConfig, embedders: Sequence[Described]) -> dict[str, Any]:
    return {
        "tool": "batchembed",
        "version": __version__,
        "models": [e.describe() for e in embedders],
        "metrics": list(METRICS),
        "tokenizer": config.tokenizer,
        "columns": config.columns.fingerprint(),
        "shard_rows": config.shard_rows,
        # only when given: outputs written before --keep-columns existed keep their fingerprint
        **({"keep_columns": list(config.columns.keep)} if config.columns.keep else {}),
        **({"use_vectors": True} if config.use_vectors else {}),
    }


# settings as the user gives them: the fingerprint's fields by their command-line flags
_FLAGS = {"tokenizer": "--tokenizer", "shard_rows": "--shard-rows", "version": "batchembed version"}
_COLUMN_FLAGS = {
    "--sentence1-column": ("sentence1",),
    "--sentence2-column": ("sentence2",),
    "--id-column": ("id",),
    "--span-columns": ("start1", "end1", "start2", "end2"),
    "--index-columns": ("index1", "index2"),
    "--word-columns": ("word1", "word2"),
    "--word-column": ("word",),
}
_MODEL_FLAGS = {
    "glove": {"source": "--glove", "name": "--glove-name"},
    "transformer": {
        "source": "--transformer",
        "name": "--transformer-name",
        "layers": "--layers",
        "subtoken_pooling": "--subtoken-pooling",
        "precision": "--precision",
    },
}
# what a model's metadata adds to its flags: named only when no flag of that model changed
_DERIVED = {
    "dim": "vector size",
    "vocabulary": "vocabulary size",
    "model_class": "model class",
    "weights": "weights dtype",
    "autocast": "autocast dtype",
}


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What differs, as the user sets it: `--layers -1 -> -2`, `--sentence1-column sentence1 -> text_a`."""
    changed = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        if key == "models" and isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
            for model_a, model_b in zip(a, b):  # the same models in the same order: name what changed in each
                if model_a != model_b and isinstance(model_a, dict) and isinstance(model_b, dict):
                    changed += _model_changes(model_a, model_b)
                elif model_a != model_b:
                    changed.append(f"models {_names([model_a])} -> {_names([model_b])}")
        elif key == "models":
            changed.append(f"models {_names(a)} -> {_names(b)}")
        elif key == "columns" and isinstance(a, dict) and isinstance(b, dict):
            for option, fields in _COLUMN_FLAGS.items():
                before, after = (",".join(str(d.get(f)) for f in fields) for d in (a, b))
                if before != after:
                    changed.append(f"{option} {before} -> {after}")
            if a.get("stopwords") != b.get("stopwords"):
                changed.append(f"--stopwords {_stopwords(a.get('stopwords'))} -> {_stopwords(b.get('stopwords'))}")
        else:
            changed.append(f"{_FLAGS.get(key, key)} {_shown(a)} -> {_shown(b)}")
    return changed


def _model_changes(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    kind = str(b.get("kind", b.get("name", "model")))
    flags = _MODEL_FLAGS.get(kind, {})
    named, derived = [], []
    for k, v in _changed(a, b):
        if k in flags:
            named.append(f"{flags[k]} {_shown(v)} -> {_shown(b.get(k))}")
        elif k == "layer_mean":
            named.append(f"--layer-mean {_shown(v)} -> {_shown(b.get(k))}")
        else:
            derived.append(f"{kind} {_DERIVED.get(k, k)} {_shown(v)} -> {_shown(b.get(k))}")
    return named or derived


def _stopwords(words: Any) -> str:
    return f"{len(words)} words" if isinstance(words, list) and words else "off"


def _shown(value: Any) -> str:
    return "none" if value is None else str(value)


def _changed(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, Any]]:
    return [(k, a.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def _names(models: Any) -> str:
    if not isinstance(models, list):
        return str(models)
    return ", ".join(str(m.get("name")) if isinstance(m, dict) else str(m) for m in models) or "none"


@dataclass
class InputRecord:
    path: str
    format: str
    bytes: int
    mtime_ns: int
    sha256: str | None  # of the first `bytes` bytes; None while the file could not be read, or when unread
    identity: str | None = None  # object storage: the store's ETag (or version id)
    pairs: int | None = None  # the file's pairs, once a run read all of it

    def same_content(self, other: InputRecord) -> bool:
        """Both records name one content (a rename, not a new file)."""
        if self.bytes != other.bytes:
            return False
        if self.identity and other.identity:
            return same_etag(self.identity, other.identity)
        return self.sha256 is not None and self.sha256 == other.sha256

    def valid(self) -> bool:
        def count(value: object) -> bool:
            return isinstance(value, int) and not isinstance(value, bool) and value >= 0

        texts = isinstance(self.path, str) and isinstance(self.format, str)
        optional = all(v is None or isinstance(v, str) for v in (self.sha256, self.identity))
        sized = count(self.bytes) and isinstance(self.mtime_ns, int) and not isinstance(self.mtime_ns, bool)
        return texts and optional and sized and (self.pairs is None or count(self.pairs))


def same_etag(a: str, b: str) -> bool:
    """Two ETags of one content. S3 makes a one-upload object's ETag the MD5 of its bytes, and a
    one-part multipart upload's the MD5 of that MD5 plus "-1"; a server-side copy (how objects are
    renamed) gets the first kind, so both kinds are compared. ETags of bigger multipart uploads
    depend on the part size and are compared as they are."""
    if a == b:
        return True
    plain = [x.removeprefix("etag:").strip('"').lower() for x in (a, b)]
    for one, other in (plain, plain[::-1]):
        if len(one) == 32 and other.endswith("-1"):
            try:
                if hashlib.md5(bytes.fromhex(one), usedforsecurity=False).hexdigest() == other[:-2]:
                    return True
            except ValueError:
                return False
    return False


class Change(str, Enum):
    NEW = "new"  # no record: never seen by this output
    SAME = "same"
    APPENDED = "appended"  # longer, and its recorded bytes are unchanged
    CHANGED = "changed"  # anything else: shorter, or recorded bytes differ


def _hashes(path: Location, prefix: int | None, size: int) -> tuple[str | None, str]:
    """SHA-256 of the first `prefix` bytes (if given) and of the first `size` bytes, in one pass."""
    whole = hashlib.sha256()
    head: str | None = None
    done = 0
    with path.open_stream() as handle:
        while done < size:
            if prefix is not None and head is None and done == prefix:
                head = whole.hexdigest()
            stop = size if prefix is None or done >= prefix else min(size, prefix)
            block = handle.read(min(HASH_BLOCK, stop - done))
            if not block:
                break  # shrank while we read: the caller's size check catches it next run
            whole.update(block)
            done += len(block)
    if prefix is not None and head is None and done == prefix:
        head = whole.hexdigest()
    return head, whole.hexdigest()


def inspect(file: InputFile, old: InputRecord | None) -> tuple[Change, InputRecord]:
    """Compare a file with its record (see the module's note on what proves it unchanged)."""
    try:
        info = file.path.info()
        if info.size is None:
            raise FileNotFoundError(f"{file.path}: no such file")
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"{show(file.path)}: cannot stat: {reason(exc)}") from exc
    mtime_ns = int(info.mtime_ns or 0)
    record = InputRecord(str(file.path), file.format, int(info.size), mtime_ns, None)
    if not file.path.is_local:
        try:
            record.identity = file.path.identity()
        except (OSError, pa.ArrowException) as exc:
            raise Unreadable(record, f"{show(file.path)}: cannot read: {reason(exc)}; check its permissions") from exc
        if record.identity is not None:
            return _by_identity(old, record), record
    prefix = old.bytes if old is not None and old.sha256 and old.bytes <= record.bytes else None
    try:
        head, record.sha256 = _hashes(file.path, prefix, record.bytes)
    except (OSError, pa.ArrowException) as exc:
        # keep the stat, so fixing the permissions (which leaves size and mtime alone) resumes
        raise Unreadable(record, f"{show(file.path)}: cannot read: {reason(exc)}; check its permissions") from exc
    if old is None:
        return Change.NEW, record
    if old.sha256 is None:  # recorded while unreadable, never read since: nothing of it is in the output
        return (Change.SAME if (old.bytes, old.mtime_ns) == (record.bytes, record.mtime_ns) else Change.CHANGED), record
    if old.bytes == record.bytes:
        change = Change.SAME if record.sha256 == old.sha256 else Change.CHANGED
    else:
        change = Change.APPENDED if head == old.sha256 else Change.CHANGED
    if change is Change.SAME:
        record.pairs = old.pairs
    return change, record


def _by_identity(old: InputRecord | None, record: InputRecord) -> Change:
    """An object compared by the store's own identity: no byte of it read."""
    if old is None:
        return Change.NEW
    same_size = old.bytes == record.bytes
    if old.identity is not None:
        same = same_size and old.identity == record.identity
    else:  # recorded before identities were kept (or while unreadable): size and time, as then
        same = same_size and old.mtime_ns == record.mtime_ns
    if same:
        record.pairs = old.pairs
        record.sha256 = old.sha256
    return Change.SAME if same else Change.CHANGED


class Unreadable(InputError):
    """The file can be stat'ed but not read; `record` still goes into the manifest."""

    def __init__(self, record: InputRecord, message: str) -> None:
        super().__init__(message)
        self.record = record


@dataclass
class Manifest:
    fingerprint: dict[str, Any]
    inputs: dict[str, InputRecord] = field(default_factory=dict)  # by file key
    runs: int = 0  # runs started on this output
    finished_run: int = 0  # the last run that processed every input without error

    def to_json(self) -> str:
        data = {
            "format": MANIFEST_FORMAT,
            "fingerprint": self.fingerprint,
            "inputs": {key: asdict(record) for key, record in sorted(self.inputs.items())},
            "runs": self.runs,
            "finished_run": self.finished_run,
        }
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    def save(self, layout: OutputLayout) -> None:
        layout.manifest.write_text(self.to_json(), layout.temporary_dir())


def load_manifest(layout: OutputLayout) -> Manifest | None:
    path = layout.manifest
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except UnicodeDecodeError:
        text = ""
    try:
        data = json.loads(text)
        if not isinstance(data, dict) or not isinstance(data.get("fingerprint"), dict):
            raise ValueError(f"a JSON {type(data).__name__} without a fingerprint, not a batchembed manifest")
        if data.get("format") != MANIFEST_FORMAT:
            raise ValueError(f"format {data.get('format')!r}, expected {MANIFEST_FORMAT}")
        inputs = {key: InputRecord(**record) for key, record in data["inputs"].items()}
        bad = next((key for key, r in inputs.items() if not isinstance(key, str) or not r.valid()), None)
        if bad is not None:
            raise ValueError(f"the record of input {bad!r} has fields of the wrong type")
        runs, finished = data["runs"], data["finished_run"]
        if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in (runs, finished)):
            raise ValueError(f"run counts {runs!r}, {finished!r} are not whole numbers")
        return Manifest(data["fingerprint"], inputs, runs, finished)
    except (ValueError, KeyError, TypeError, AttributeError, OverflowError) as exc:
        why = reason(exc)
        raise OutputError(f"{path}: unreadable manifest ({why}); pass --overwrite to start this output over") from exc


def keys_named_in(layout: OutputLayout, keys: set[str]) -> set[str]:
    """The file keys among `keys` that the manifest's text names, however damaged it is: what
    --overwrite may take for batchembed's when the manifest no longer parses. A key holds an
    8-digit hash of the input's identity, so a key quoted there is no coincidence."""
    try:
        text = layout.manifest.read_bytes().decode("utf-8", "replace")
    except (OSError, pa.ArrowException):
        return set()
    return {key for key in keys if f'"{key}"' in text}
