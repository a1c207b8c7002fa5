"""batchembed: per-word GloVe and BERT distances between sentence pairs, in batch.

The Python API is the command line's: `run` (the resumable job), `compare`, `evaluate`,
`read_output` and `report`, with the same options and defaults, and `distances`, the job on data
in memory (DataFrames, Arrow tables, lists of pairs); `Embedder` holds loaded models
for repeated calls. Errors are `BatchembedError` and its subclasses, each with the command
line's `exit_code`. Importing batchembed is light: torch, flair and the models load on first use.
"""

import logging

from batchembed.api import Embedder, compare, distances, evaluate, read_output, report, run, uses
from batchembed.errors import (
    BatchembedError,
    ExitCode,
    InputError,
    ModelError,
    OutputError,
    TooManyBadRows,
    UsageError,
    WorkersLost,
)
from batchembed.results.summary import RunSummary
from batchembed.version import __version__

# a library logs and lets its caller configure logging: without this, Python's last-resort handler
# would print batchembed's warnings to stderr in every program that has not configured logging
logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "BatchembedError",
    "Embedder",
    "Evaluation",
    "ExitCode",
    "InputError",
    "ModelError",
    "OutputError",
    "RunSummary",
    "TooManyBadRows",
    "UsageError",
    "WorkersLost",
    "__version__",
    "compare",
    "distances",
    "evaluate",
    "read_output",
    "report",
    "run",
    "uses",
]


def __getattr__(name: str) -> object:
    # Evaluation's module imports pyarrow and the pipeline: only when asked for
    if name == "Evaluation":
        from batchembed.evaluation.runner import Evaluation

        return Evaluation
    raise AttributeError(f"module 'batchembed' has no attribute {name!r}")
