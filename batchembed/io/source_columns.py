"""What every input format shares: which columns a file must have for its target mode, the
rows that stand for damage (Malformed), and the kept columns (--keep-columns). The formats
themselves: io/csv_source.py and io/parquet_source.py; io/sources.py opens either.
"""

from __future__ import annotations

import logging
from typing import Any

import pyarrow as pa

from batchembed import status
from batchembed.config import TARGET_OPTIONS, Columns
from batchembed.errors import InputError
from batchembed.messages import show
from batchembed.targets import TargetMode

log = logging.getLogger(__name__)

Chunk = dict[str, list[Any]]  # column name (or kept_key(name)) -> values, all lists the same length
KEPT = "\x00kept:"  # no real column name starts with NUL: kept values never collide with a needed column's
CHUNK_ROWS = 8192
MALFORMED_LOGGED = 5  # damaged records or row groups logged per file; the rest are counted


class Malformed:
    """A sentence cell of a row that could not be read: a CSV record that could not be split
    into the header's fields, or a row of a Parquet row group that cannot be decoded.

    Deliberately neither text nor bytes nor None, so the pipeline writes the row with
    `status` instead of guessing which field is which.
    """

    __slots__ = ("status",)

    def __init__(self, status: str) -> None:
        self.status = status

    def __repr__(self) -> str:
        return f"<{self.status}>"


MALFORMED = Malformed(status.MALFORMED_RECORD)
UNREADABLE = Malformed(status.UNREADABLE_ROW_GROUP)


def _quoted(names: list[str]) -> str:
    return ", ".join(repr(show(n)) for n in names)


def _check_target_columns(columns: Columns, available: list[str], where: str) -> None:
    """Target columns the user named must exist, and a mode's columns come all or none: a
    file that silently fell back to shared-word mode would write the wrong comparisons."""
    present = set(available)
    listed = ", ".join(map(show, available)) or "none"
    named = columns.named_modes()
    for mode, option in TARGET_OPTIONS.items():
        wanted = list(columns.target_columns(mode))
        missing = [name for name in wanted if name not in present]
        if not missing:
            continue
        s = "s" if len(missing) > 1 else ""
        if mode in named:
            raise InputError(
                f"{where}: missing column{s} {_quoted(missing)} named by {option} (columns: {listed}); "
                f"check the name{s}, or leave {option} out"
            )
        if len(missing) < len(wanted):
            have = [name for name in wanted if name in present]
            raise InputError(
                f"{where}: has {mode.value} target column{'s' if len(have) > 1 else ''} {_quoted(have)} but not "
                f"{_quoted(missing)} (columns: {listed}); add the missing column{s}, or name the "
                f"{len(wanted)} columns with {option}"
            )


def needed_columns(
    columns: Columns, available: list[str], where: str, warn: bool = True
) -> tuple[TargetMode, list[str]]:
    """The target mode and the columns read, or InputError; `warn`: log where one mode hides another."""
    present = set(available)
    for required in (columns.sentence1, columns.sentence2):
        if required not in present:
            raise InputError(
                f"{where}: missing column {required!r} (columns: {', '.join(map(show, available)) or 'none'}); "
                "name the sentence columns with --sentence1-column/--sentence2-column"
            )
    _check_target_columns(columns, available, where)
    mode = columns.detect_mode(present)
    for named in sorted(columns.named_modes()):
        if (
            warn and named is not mode
        ):  # all its columns are here (else _check_target_columns raised): mode ranks higher
            log.warning(
                "%s: the %s target columns take precedence over those named by %s; comparing %s",
                where,
                mode.value,
                TARGET_OPTIONS[named],
                mode.value,
            )
    needed = [columns.sentence1, columns.sentence2, *columns.target_columns(mode)]
    if columns.id in present:
        needed.append(columns.id)
    missing = [name for name in columns.keep if name not in present]
    if missing:
        s = "s" if len(missing) > 1 else ""
        raise InputError(
            f"{where}: missing column{s} {_quoted(missing)} named by --keep-columns (columns: "
            f"{', '.join(map(show, available)) or 'none'}); check the name{s}, or leave {'them' if s else 'it'} out"
        )
    for name in [*needed, *columns.keep]:
        if available.count(name) > 1:
            count = available.count(name)
            raise InputError(f"{where}: column {name!r} appears {count} times in the header; rename one of them")
    return mode, needed


def kept_key(name: str) -> str:
    """The chunk key of a kept column's values (--keep-columns): kept apart from the needed columns'
    values, which the reader turns into ids and checked sentences."""
    return KEPT + name


def _kept_values(array: pa.Array | pa.ChunkedArray) -> list[Any]:
    """A kept column's Python values; text that is not valid UTF-8 keeps its readable part (the
    output's text columns must be UTF-8), where a sentence would get a status."""
    kind = array.type
    if pa.types.is_dictionary(kind):
        array = array.dictionary_decode()
        kind = array.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        array = array.cast(pa.large_binary() if pa.types.is_large_string(kind) else pa.binary())
        return [None if v is None else v.decode("utf-8", "replace") for v in array.to_pylist()]
    return array.to_pylist()


def _kept_cell(value: Any) -> Any:
    """A CSV cell as a kept value: undecodable bytes keep their readable part."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
