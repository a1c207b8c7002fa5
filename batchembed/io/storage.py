"""Every input and output location, local or remote, through one small API over `pyarrow.fs`.

A location is a path on a filesystem: a local path (relative or absolute), or a
URI that pyarrow's filesystems understand (`s3://`, `gs://`, `hdfs://`,
`abfs://`, `file://`). Credentials and endpoints come from the environment and
the usual config files, as pyarrow resolves them (`AWS_ENDPOINT_URL`,
`AWS_PROFILE`, `~/.aws/config`, ...). Nothing here speaks HTTP itself.

Writes are all-or-nothing, on every filesystem: locally a temporary file is
fsynced and renamed into place; on object storage, which has no rename, the
bytes are built in memory and sent in one upload, which the store makes visible
only once complete (a killed upload leaves nothing under the key).

A store over the network fails now and then for a moment (a dropped connection, a
503, throttling): every call on a remote location that fails that way is tried again,
`BATCHEMBED_STORE_ATTEMPTS` times in all (default 4) with a doubling pause (1, 2, 4 s),
on top of the retries of the store's own client. Past that the store is taken to be
down: the call raises StoreUnavailable, and later calls to the same bucket are tried
once only for a minute, so a run that must stop stops within seconds, not minutes.
Errors that another try cannot fix (no such key, access denied) are raised at once.
"""

from __future__ import annotations

import fnmatch
import glob as globlib
import logging
import os
import posixpath
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar

import pyarrow as pa
import pyarrow.fs as pafs

from batchembed.errors import OutputError, UsageError
from batchembed.messages import one_line as _one_line

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
TEMP_MARK = ".tmp-"
BUCKET_SCHEMES = ("s3", "gs", "gcs")  # scheme://bucket/key, the key any string the store allows
log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_ATTEMPTS = 4
FIRST_PAUSE = 1.0  # seconds before the second attempt; doubled before each next one
DOWN_FOR = 60.0  # seconds a store that exhausted its attempts gets one attempt per call
# how the store's clients (AWS SDK, Google Cloud, Azure) word errors another try may cure
_TRANSIENT = re.compile(
    r"NETWORK_CONNECTION|SLOW_DOWN|SERVICE_UNAVAILABLE|INTERNAL_FAILURE|REQUEST_TIMEOUT|THROTTL|"
    r"REQUEST_LIMIT_EXCEEDED|HTTP status 5\d\d|curlCode|[Cc]onnection (reset|refused|closed|aborted)|"
    r"[Tt]imed? ?out|[Tt]emporar|[Bb]roken pipe|UNAVAILABLE|DEADLINE_EXCEEDED"
)
_down_until: dict[tuple[str, str], float] = {}  # (kind, bucket) -> until when it gets one attempt a call
_down_lock = threading.Lock()


class StoreUnavailable(OSError):
    """A remote store kept failing with errors another try might cure (network, 5xx, throttling)."""


def transient(exc: BaseException) -> bool:
    """An error of a remote store that another attempt may not meet again."""
    if isinstance(exc, StoreUnavailable):
        return True
    if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)):
        return False
    return isinstance(exc, (OSError, pa.ArrowException)) and bool(_TRANSIENT.search(str(exc)))


def _attempts() -> int:
    try:
        return max(1, int(os.environ.get("BATCHEMBED_STORE_ATTEMPTS", DEFAULT_ATTEMPTS)))
    except ValueError:
        return DEFAULT_ATTEMPTS


def is_uri(spec: str) -> bool:
    return bool(_SCHEME.match(spec))


@dataclass(frozen=True, eq=False)
class Location:
    """A file or directory on some filesystem. `shown` is how messages and output columns name it:
    the user's own spelling (a relative path stays relative, a URI stays a URI)."""

    fs: pafs.FileSystem = field(compare=False, repr=False)
    path: str  # the filesystem's own path: absolute locally, `bucket/key` on object storage
    shown: str = field(compare=False)
    kind: str = "local"  # the filesystem's type name; with `path`, the identity of the location

    # -- naming -------------------------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        """Same filesystem kind and path; a local location also equals a local path to the same place."""
        if isinstance(other, Location):
            return (self.kind, self.path) == (other.kind, other.path)
        if isinstance(other, os.PathLike) and self.is_local:
            return self.path == os.path.abspath(os.fspath(other))
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.kind, self.path))

    def __str__(self) -> str:
        return self.shown

    def __fspath__(self) -> str:
        if not self.is_local:
            raise TypeError(f"{self.shown} is not a local path")
        return self.path

    @property
    def is_local(self) -> bool:
        return self.kind == "local"

    @property
    def name(self) -> str:
        return posixpath.basename(self.path.rstrip("/"))

    @property
    def stem(self) -> str:
        name = self.name
        return name[: -len(self.suffix)] if self.suffix else name

    @property
    def suffix(self) -> str:
        name = self.name
        dot = name.rfind(".")
        return name[dot:] if dot > 0 else ""

    def join(self, *names: str) -> Location:
        for name in names:
            if not name or "/" in name or name in (".", ".."):
                raise ValueError(f"unsafe name {name!r}")
        path = posixpath.join(self.path, *names)
        shown = self.shown.rstrip("/") + "/" + "/".join(names)
        return Location(self.fs, path, shown, self.kind)

    def sibling(self, name: str) -> Location:
        parent = posixpath.dirname(self.path.rstrip("/"))
        shown_parent = self.shown.rstrip("/").rsplit("/", 1)[0] if "/" in self.shown.rstrip("/") else ""
        shown = f"{shown_parent}/{name}" if shown_parent else name
        return Location(self.fs, posixpath.join(parent, name), shown, self.kind)

    def child(self, path: str) -> Location:
        """A location found under this directory by a listing (`path` is the filesystem's own)."""
        relative = posixpath.relpath(path, self.path)
        return Location(self.fs, path, self.shown.rstrip("/") + "/" + relative, self.kind)

    def is_inside(self, directory: Location) -> bool:
        return self.kind == directory.kind and (
            self.path == directory.path or self.path.startswith(directory.path.rstrip("/") + "/")
        )

    # -- retrying ------------------------------------------------------------------------------

    def _store(self) -> tuple[str, str]:
        return self.kind, self.path.split("/", 1)[0]

    def retrying(self, call: Callable[[], T], what: str = "call") -> T:
        """`call()`, tried again after transient store errors (see the module's note); locally once.
        Raises StoreUnavailable once the attempts are spent, any other error at once."""
        if self.is_local:
            return call()
        store = self._store()
        with _down_lock:
            attempts = 1 if _down_until.get(store, 0.0) > time.monotonic() else _attempts()
        pause = FIRST_PAUSE
        for attempt in range(1, attempts + 1):
            try:
                result = call()
            except (OSError, pa.ArrowException) as exc:
                if not transient(exc):
                    raise
                if attempt == attempts:
                    with _down_lock:
                        _down_until[store] = time.monotonic() + DOWN_FOR
                    tries = f"{attempts} attempts" if attempts > 1 else "one more attempt"
                    raise StoreUnavailable(f"{_one_line(exc)} (after {tries})") from exc
                log.warning("%s: %s failed (%s); trying again in %.0f s", self, what, _one_line(exc), pause)
                time.sleep(pause)
                pause *= 2
                continue
            with _down_lock:
                _down_until.pop(store, None)
            return result
        raise AssertionError("unreachable")

    # -- looking ------------------------------------------------------------------------------

    def info(self) -> pafs.FileInfo:
        return self.retrying(lambda: self.fs.get_file_info(self.path), "looking it up")

    def exists(self) -> bool:
        return self.info().type != pafs.FileType.NotFound

    def is_dir(self) -> bool:
        return self.info().type == pafs.FileType.Directory

    def is_file(self) -> bool:
        return self.info().type == pafs.FileType.File

    def files(self, recursive: bool = True, strict: bool = False) -> list[Entry]:
        """The files below this directory, sorted by path; [] when it does not exist. A listing
        that fails gives [] too, unless `strict` (the output's own bookkeeping: an empty answer
        there would mean "nothing is done"), which raises."""
        if self.is_local:  # os.walk: pyarrow cannot list names that are not UTF-8
            return _local_files(self.path, recursive, strict)
        selector = pafs.FileSelector(self.path, allow_not_found=True, recursive=recursive)
        try:
            found = self.retrying(lambda: self.fs.get_file_info(selector), "listing it")
        except (OSError, pa.ArrowException):
            if strict:
                raise
            return []
        return sorted((Entry(i.path, i.size or 0) for i in found if i.type == pafs.FileType.File), key=_by_path)

    # -- reading ------------------------------------------------------------------------------

    def open_stream(self) -> Any:
        return self.retrying(lambda: self.fs.open_input_stream(self.path), "opening it")

    def open_file(self) -> Any:
        """Random access (Parquet footers, row groups)."""
        return self.retrying(lambda: self.fs.open_input_file(self.path), "opening it")

    def identity(self) -> str | None:
        """What the store says tells this object's content from other content, without reading a
        byte (one metadata request: no body is sent): the ETag, which S3-compatible stores derive
        from the content (so a copy under another key has the same one), else a version id or GCS
        generation (new on every write). None locally and where the store says none of these."""
        if self.is_local:
            return None

        def head() -> dict[str, str]:
            with self.fs.open_input_file(self.path) as handle:  # S3: a HEAD request, no GET
                found = handle.metadata() or {}
            return {_text(k).lower(): _text(v) for k, v in found.items()}

        metadata = self.retrying(head, "asking for its metadata")
        for key in ("etag", "versionid", "version-id", "generation"):
            value = metadata.get(key, "").strip()
            if value and value.lower() != "null":  # S3 says "null" for an unversioned bucket
                return f"{key}:{value}"
        return None

    def read_bytes(self) -> bytes:
        def read() -> bytes:
            with self.fs.open_input_stream(self.path) as stream:
                return bytes(stream.read())

        return self.retrying(read, "reading it")

    def read_text(self) -> str:
        return self.read_bytes().decode("utf-8")

    # -- writing ------------------------------------------------------------------------------

    def make_dirs(self) -> None:
        try:
            self.fs.create_dir(self.path, recursive=True)
        except (OSError, pa.ArrowException) as exc:
            raise OutputError(f"{self}: cannot create the directory: {_one_line(exc)}") from exc

    def write_atomic(self, data: bytes, temporary_dir: Location | None = None) -> None:
        """Replace this file with `data` in one step: it is either absent, the old file, or all of `data`.

        Locally the temporary file lives in `temporary_dir` (default: beside the file), which must be
        on the same filesystem: then the rename is atomic.
        """

        def upload() -> None:  # one upload of the whole object: visible only once complete
            with self.fs.open_output_stream(self.path) as stream:
                stream.write(data)

        try:
            if self.is_local:
                _write_local(self.path, data, temporary_dir.path if temporary_dir else None)
            else:
                self.retrying(upload, "writing it")
        except UnicodeEncodeError as exc:
            raise OutputError(f"{show_path(self.shown)}: the name is not valid UTF-8; choose a UTF-8 name") from exc
        except (OSError, pa.ArrowException) as exc:
            if transient(exc):
                raise OutputError(
                    f"{self}: cannot write: the store is unreachable: {_one_line(exc)}; {RUN_AGAIN}"
                ) from exc
            raise OutputError(f"{self}: cannot write: {_one_line(exc)}; check free space and permissions") from exc

    def write_text(self, text: str, temporary_dir: Location | None = None) -> None:
        self.write_atomic(text.encode("utf-8"), temporary_dir)

    def delete(self) -> None:
        try:
            self.retrying(lambda: self.fs.delete_file(self.path), "deleting it")
        except FileNotFoundError:
            pass
        except (OSError, pa.ArrowException) as exc:
            if transient(exc):
                raise OutputError(
                    f"{self}: cannot delete: the store is unreachable: {_one_line(exc)}; {RUN_AGAIN}"
                ) from exc
            try:
                gone = not self.exists()
            except (OSError, pa.ArrowException):
                gone = False
            if not gone:
                raise OutputError(f"{self}: cannot delete: {_one_line(exc)}") from exc


RUN_AGAIN = "check the endpoint, network and credentials, then run the same command again (finished parts are kept)"


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def show_path(text: str) -> str:
    """A name for a message: invalid UTF-8 bytes (surrogate escapes) and control characters shown escaped."""
    raw = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in raw)


class Entry(NamedTuple):
    """A file found by a listing."""

    path: str
    size: int


def _by_path(entry: Entry) -> str:
    return entry.path


def _local_files(top: str, recursive: bool, strict: bool = False) -> list[Entry]:
    found = []

    def refuse(error: OSError) -> None:
        if strict and not isinstance(error, FileNotFoundError):
            raise error

    for directory, subdirectories, names in os.walk(top, onerror=refuse):
        for name in names:
            path = os.path.join(directory, name)
            try:
                if os.path.isfile(path):
                    found.append(Entry(path, os.path.getsize(path)))
            except OSError:
                continue
        if not recursive:
            subdirectories.clear()
    return sorted(found, key=_by_path)


def _write_local(path: str, data: bytes, temporary_dir: str | None) -> None:
    directory = temporary_dir or os.path.dirname(path)
    temporary = os.path.join(directory, f".{os.path.basename(path)}{TEMP_MARK}{os.getpid()}")
    try:
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        fsync_dir(os.path.dirname(path))
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def fsync_dir(directory: str) -> None:
    """Make renames and unlinks in `directory` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on directories; the rename itself is still atomic
    finally:
        os.close(fd)


def locate(spec: str | os.PathLike[str]) -> Location:
    """The location a user named: a local path, or a URI for one of pyarrow's filesystems."""
    spec = os.fspath(spec)
    if not spec:
        raise UsageError("an empty path names no file or directory")
    if not is_uri(spec):
        return Location(pafs.LocalFileSystem(), os.path.abspath(spec), spec, "local")
    scheme, rest = spec.split("://", 1)
    literal = scheme.lower() in BUCKET_SCHEMES
    bucket, _, key = rest.partition("/")
    try:
        # an object key is taken as written ('%41', '+', ' ', '?', '[' are characters of the key):
        # only the bucket goes through pyarrow's URI parser, which would decode or reject them
        fs, path = pafs.FileSystem.from_uri(f"{scheme}://{bucket}" if literal else spec)
    except (OSError, pa.ArrowException, ValueError) as exc:
        raise UsageError(f"{spec}: cannot open this location ({_one_line(exc)})") from exc
    if literal:
        path = f"{bucket}/{key}" if key.strip("/") else bucket
    kind = "local" if isinstance(fs, pafs.LocalFileSystem) else fs.type_name
    return Location(fs, path.rstrip("/") or path, spec.rstrip("/") or spec, kind)


def glob(spec: str) -> Iterator[Location]:
    """Files matching a glob pattern (`*`, `?`, `[...]`, `**` across directories), on any filesystem."""
    if not is_uri(spec):
        for match in sorted(globlib.glob(spec, recursive=True)):
            yield locate(match)
        return
    scheme_end = spec.index("://") + 3
    magic = min(i for i, c in enumerate(spec) if c in "*?[" and i >= scheme_end)
    base_spec = spec[: spec.rfind("/", 0, magic)]
    base = locate(base_spec)
    segments = spec[len(base_spec) :].strip("/").split("/")
    recursive = "**" in segments or len(segments) > 1
    for info in base.files(recursive=recursive):
        parts = info.path[len(base.path) :].strip("/").split("/")
        if _matches(segments, parts):
            yield base.child(info.path)


def _matches(segments: list[str], parts: list[str]) -> bool:
    """Glob segments against path parts; `**` stands for any number of directories."""
    if not segments:
        return not parts
    if segments[0] == "**":
        return any(_matches(segments[1:], parts[i:]) for i in range(len(parts) + 1))
    return bool(parts) and fnmatch.fnmatchcase(parts[0], segments[0]) and _matches(segments[1:], parts[1:])
