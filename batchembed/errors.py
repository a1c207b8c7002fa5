"""Errors a user can act on, each mapped to a documented exit code.

The library raises these; only the CLI prints them and chooses the exit code.

Messages name options the way the caller named them. The text in code names an option by its
command-line flag (`--shard-rows`, `pass --overwrite`), and `str(error)` renders each flag of a
known option for the caller: unchanged for the command line, as the Python parameter for the API
(`shard_rows`, `pass overwrite=True`). The naming is the process's, not the error's: a message is
often turned into text far from where the caller is known (a reader thread, a worker process that
reports a file's error as a string), so the CLI sets it in the environment, where threads and
worker processes see it too (`naming("cli")`). The default is the API's.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from enum import IntEnum
from typing import Literal

Naming = Literal["api", "cli"]
NAMING_VARIABLE = "BATCHEMBED_ERROR_NAMING"
_FLAG = re.compile(r"(?<![\w-])--([a-z][a-z0-9]*(?:-[a-z0-9]+)*)(?![\w-])")


class ExitCode(IntEnum):
    """Process exit codes, stable for cron and schedulers (documented in docs/exit-codes.md)."""

    OK = 0
    INTERNAL_ERROR = 1  # a bug: an unexpected exception (Python's own default)
    USAGE_ERROR = 2  # bad command line (also click's own code for usage errors)
    INPUT_ERROR = 3  # a missing/unreadable input file or a missing column
    MODEL_ERROR = 4  # a model could not be loaded
    OUTPUT_ERROR = 5  # the output exists with another configuration, is locked, or is not writable
    BAD_ROWS = 6  # finished, but some input rows were bad (status rows were written)
    TOO_MANY_BAD_ROWS = 7  # stopped: more bad rows than --max-bad-rows
    WORKERS_LOST = 8  # stopped: worker processes kept dying (killed, out of memory); finished parts are kept
    INTERRUPTED = 130  # SIGINT/SIGTERM: finished shards are kept, a re-run resumes


def current_naming() -> Naming:
    """How messages name options in this process: "api" (parameters) unless the CLI said "cli"."""
    return "cli" if os.environ.get(NAMING_VARIABLE) == "cli" else "api"


@contextlib.contextmanager
def naming(style: Naming) -> Iterator[None]:
    """Render messages with `style` inside the block (and in processes started inside it)."""
    before = os.environ.get(NAMING_VARIABLE)
    os.environ[NAMING_VARIABLE] = style
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(NAMING_VARIABLE, None)
        else:
            os.environ[NAMING_VARIABLE] = before


def parameter_of(flag: str) -> str | None:
    """The API parameter a command-line flag sets (`--shard-rows` -> `shard_rows`), None if unknown."""
    from batchembed.options import OPTIONS

    name = flag.removeprefix("--").replace("-", "_")
    if name in OPTIONS:
        return name
    return next((n for n, o in OPTIONS.items() if flag in (o.none_flag, o.off_flag)), None)


def api_wording(flag: str) -> str:
    """What the API calls the value a flag gives: `shard_rows`, `overwrite=True`, `glove=None`."""
    from batchembed.options import OPTIONS

    name = parameter_of(flag)
    if name is None:
        return flag
    option = OPTIONS[name]
    if flag == option.none_flag:
        return f"{name}=None"
    if flag == option.off_flag:
        return f"{name}=False"
    return f"{name}=True" if option.switch else name


def render(message: str, style: Naming | None = None) -> str:
    """The message with each known option named for `style` (default: the process's naming)."""
    if (style or current_naming()) == "cli":
        return message
    return _FLAG.sub(lambda match: api_wording(match.group(0)), message)


class BatchembedError(Exception):
    """Base class: the message is one line that says what, where and how to fix.

    `exit_code` is the command line's exit code for this kind of error; `options` the API
    parameters the message names (e.g. `("shard_rows",)`), so a caller can point at them.
    """

    exit_code: ExitCode = ExitCode.INTERNAL_ERROR

    def __str__(self) -> str:
        return render(super().__str__())

    @property
    def message(self) -> str:
        """The message as written, naming options by their flags (what `str()` renders)."""
        return super().__str__()

    @property
    def options(self) -> tuple[str, ...]:
        names = (parameter_of(match.group(0)) for match in _FLAG.finditer(self.message))
        return tuple(dict.fromkeys(name for name in names if name is not None))


class UsageError(BatchembedError):
    """A bad option or value (exit code 2)."""

    exit_code = ExitCode.USAGE_ERROR


class InputError(BatchembedError):
    """An input file is missing or unreadable, or lacks a needed column (exit code 3)."""

    exit_code = ExitCode.INPUT_ERROR


class ModelError(BatchembedError):
    """A model could not be loaded (exit code 4)."""

    exit_code = ExitCode.MODEL_ERROR


class OutputError(BatchembedError):
    """The output holds other results, is locked, unfinished, damaged or not writable (exit code 5)."""

    exit_code = ExitCode.OUTPUT_ERROR


class TooManyBadRows(BatchembedError):
    """The run stopped: more bad rows than `max_bad_rows` (exit code 7); finished shards are kept."""

    exit_code = ExitCode.TOO_MANY_BAD_ROWS


class WorkersLost(BatchembedError):
    """The run stopped: the worker processes (or Ray actors) that prepare, embed or write kept
    dying, or a stage hung past the stall limit (exit code 8); finished shards are kept, and a
    re-run goes on from there."""

    exit_code = ExitCode.WORKERS_LOST
