"""Errors a user can act on, each mapped to a documented exit code.

The library raises these; only the CLI prints them and chooses the exit code.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes, stable for cron and schedulers (documented in the README)."""

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


class BatchembedError(Exception):
    """Base class: the message is one line that says what, where and how to fix."""

    exit_code: ExitCode = ExitCode.INTERNAL_ERROR


class UsageError(BatchembedError):
    exit_code = ExitCode.USAGE_ERROR


class InputError(BatchembedError):
    exit_code = ExitCode.INPUT_ERROR


class ModelError(BatchembedError):
    exit_code = ExitCode.MODEL_ERROR


class OutputError(BatchembedError):
    exit_code = ExitCode.OUTPUT_ERROR


class TooManyBadRows(BatchembedError):
    exit_code = ExitCode.TOO_MANY_BAD_ROWS


class WorkersLost(BatchembedError):
    exit_code = ExitCode.WORKERS_LOST
