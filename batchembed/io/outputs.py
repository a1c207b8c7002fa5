"""The rules an output location must meet before a run writes anything there.

- One output, however it is named: a local output is resolved to its real path (symlinks
  anywhere in it, `..`, relative or absolute) before its bookkeeping is located, so two
  names of one directory share one lock and one manifest (io/layout.py).
- Not a root: the bookkeeping lives beside the output (`<output>.batchembed`), which a
  file system root or a bucket has no place for.
- Only batchembed's parts in it: a directory that holds other files no longer reads as one
  table, and batchembed deletes only what it wrote, so such a directory is refused, never
  cleaned. A part is batchembed's only if its whole name parses (io/layout.py); this check
  runs before anything, --overwrite included, deletes a file.
- A name pyarrow can write: valid UTF-8.
- A refused output leaves nothing behind: directories are created only once every check
  passed, and removed again (when still empty) if creating the rest failed.

Every refusal is an OutputError: one line that names the location and says what to do.
"""

from __future__ import annotations

import contextlib
import os
import posixpath

import pyarrow as pa

from batchembed.errors import OutputError
from batchembed.io.layout import STATE_SUFFIX, OutputLayout, part_shard, temporary_of
from batchembed.io.storage import RUN_AGAIN, Location, _one_line, locate, show_path, transient

FOREIGN_SHOWN = 3  # foreign files named in the message


def check_output(spec: str | os.PathLike[str]) -> OutputLayout:
    """The output named by `spec`, checked, with nothing written (see the module's note)."""
    spec = os.fspath(spec)
    try:
        spec.encode("utf-8")
    except UnicodeEncodeError:
        raise OutputError(
            f"{show_path(spec)}: the output name is not valid UTF-8, which object stores and pyarrow cannot write; "
            "choose a UTF-8 name"
        ) from None
    layout = OutputLayout.of(locate(spec))
    _refuse_root(layout.data, spec)
    try:
        _refuse_non_directory(layout.data, "the output is a directory of Parquet parts")
        _refuse_non_directory(layout.state, "batchembed keeps the output's bookkeeping there")
        _refuse_foreign_files(layout)
    except (OSError, pa.ArrowException) as exc:
        raise unreachable(layout.data, exc) from exc
    return layout


def unreachable(where: Location, exc: BaseException) -> OutputError:
    """The one line for a store that cannot be asked: down, or refusing these credentials."""
    why = _one_line(exc)
    if transient(exc):
        return OutputError(f"{where}: the store is unreachable ({why}); {RUN_AGAIN}")
    if where.is_local:
        return OutputError(f"{where}: cannot use this output ({why}); check its permissions")
    return OutputError(f"{where}: cannot use this output ({why}); check the endpoint, credentials and permissions")


def create_output(layout: OutputLayout) -> None:
    """Create the output's directories (local only: object storage has none); on failure remove
    again every directory this call created, so a refused output leaves no trace."""
    if not layout.data.is_local:
        return
    wanted = [layout.state, layout.done, layout.tmp, layout.data]
    created: list[str] = []
    try:
        for directory in wanted:
            created += _missing_ancestors(directory.path)
            directory.make_dirs()
    except OutputError:
        for path in sorted(set(created), key=len, reverse=True):  # deepest first
            with contextlib.suppress(OSError):  # not empty (someone else's now) or gone: leave it
                os.rmdir(path)
        raise


def _missing_ancestors(path: str) -> list[str]:
    missing = []
    while path and not os.path.lexists(path):
        missing.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return missing


def _refuse_root(output: Location, spec: str) -> None:
    if output.is_local:
        if os.path.dirname(output.path) == output.path:
            raise OutputError(
                f"{show_path(spec)}: the output is the root of the file system, which has no place beside it for "
                f"the bookkeeping ({STATE_SUFFIX}); name a directory under it, e.g. {output.path.rstrip('/')}/results"
            )
        return
    if "/" not in output.path.strip("/"):
        bucket = output.path.strip("/")
        raise OutputError(
            f"{show_path(spec)}: the output is the root of bucket {bucket!r}, whose bookkeeping would go to another "
            f"bucket ({bucket}{STATE_SUFFIX}); name a prefix under it, e.g. {show_path(spec.rstrip('/'))}/results"
        )


def _refuse_non_directory(location: Location, why: str) -> None:
    if location.is_file():
        raise OutputError(
            f"{location}: exists and is not a directory ({why}); move it away, or choose another --output"
        )


def ours(relative: str) -> bool:
    """A name batchembed writes in the output directory: a part, or a part's temporary upload,
    by the whole name's grammar (io/layout.py): `part-<key>-000000 (1).parquet` is not ours."""
    if "/" in relative:
        return False
    relative = temporary_of(relative) or relative  # a killed run's temporary file
    return part_shard(relative) is not None


def foreign_files(layout: OutputLayout) -> list[str]:
    """Files under the output directory that batchembed did not write, relative to it."""
    data = layout.data
    found = []
    for entry in data.files(recursive=True, strict=True):
        relative = posixpath.relpath(entry.path, data.path) if data.is_local else entry.path[len(data.path) :]
        relative = relative.lstrip("/")
        if not ours(relative):
            found.append(relative)
    return found


def _refuse_foreign_files(layout: OutputLayout) -> None:
    foreign = foreign_files(layout)
    if foreign:
        shown = ", ".join(show_path(name) for name in foreign[:FOREIGN_SHOWN])
        more = f" and {len(foreign) - FOREIGN_SHOWN} more" if len(foreign) > FOREIGN_SHOWN else ""
        raise OutputError(
            f"{layout.data}: holds files batchembed did not write ({shown}{more}), so it would not read as one "
            "table; move them away, or choose another --output (an empty or new directory)"
        )
