"""`distances`: the job of `run` on data in memory, its result returned instead of written.

The data is spooled to a temporary Parquet file and run through the one job (the local engine,
its prepare workers, pieces and statuses) into a temporary output, which is read back part by part
(io/memory_source.py says why a file). Everything is checked, the data's columns included,
before any model loads or any row is embedded.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, TypeAlias

import pyarrow as pa

from batchembed.arguments import run_config
from batchembed.config import DEFAULT_SHARD_ROWS, Columns, EmbedOptions, GloveSpec, RunConfig, TransformerSpec
from batchembed.errors import BatchembedError, InputError, UsageError
from batchembed.io.inputs import InputFile
from batchembed.io.memory_source import (
    MEMORY_SOURCE,
    WHERE,
    ArrowData,
    arrow_data,
    memory_schema,
    output_batches,
    spool,
)
from batchembed.io.reader import kept_fields
from batchembed.io.schema import output_schema
from batchembed.io.sources import needed_columns
from batchembed.io.storage import locate
from batchembed.results.summary import RunSummary

if TYPE_CHECKING:
    from batchembed.evaluation.runner import Evaluation

Result: TypeAlias = pa.Table | Iterator[pa.RecordBatch]
# run's options that distances fixes: one temporary output, written once
FIXED = {"shard_rows": DEFAULT_SHARD_ROWS, "overwrite": False, "incremental": False}


@dataclass
class MemoryJob:
    """The data and the settings, checked; inputs and output are placeholders until `execute`."""

    config: RunConfig
    data: ArrowData | None  # None: an iterator that gave no batch at all


def plan(
    pairs: Any,
    options: dict[str, Any],
    glove: GloveSpec | None,
    transformer: TransformerSpec | None,
    embed: EmbedOptions,
) -> MemoryJob:
    """Every check that needs no model: the options, the data's type, its columns."""
    placeholders = {"inputs": MEMORY_SOURCE, "output": MEMORY_SOURCE}
    config = run_config({**options, **FIXED, **placeholders}, glove, transformer, embed)
    data = arrow_data(pairs, config.columns)
    if data is not None:
        needed_columns(config.columns, data.schema.names, WHERE)
    return MemoryJob(config, data)


def execute(job: MemoryJob, run: Callable[[RunConfig], RunSummary], model_names: Sequence[str]) -> Result:
    """Spool, run, read back: a Table, or for data given as an iterator an iterator of record
    batches (read part by part; the temporary files go once it is exhausted, closed or dropped)."""
    if job.data is None:
        return iter(())
    directory = tempfile.mkdtemp(prefix="batchembed-")
    try:
        path, _ = spool(job.data, job.config.columns, directory, job.config.shard_rows)
        config = replace(job.config, inputs=(path,), output=os.path.join(directory, "out"))
        try:
            summary = run(config)
        except BatchembedError as error:  # name the data, not a temporary file
            raise type(error)(error.message.replace(path, WHERE)) from error
        if summary.errors:
            raise InputError(summary.errors[0].replace(path, WHERE))
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    results = _Results(output_batches(config.output), directory)
    if job.data.streamed:
        return results
    read = list(results)
    if read:
        return pa.Table.from_batches(read)
    kept = kept_fields([InputFile(locate(path), "parquet")], job.config.columns.keep)
    return memory_schema(output_schema(model_names, None, kept)).empty_table()


class _Results(Iterator[pa.RecordBatch]):
    """The output's record batches; the temporary directory is removed once they are all read,
    or when this iterator is closed or garbage-collected."""

    def __init__(self, batches: Iterator[pa.RecordBatch], directory: str) -> None:
        self._batches = batches
        self._cleanup = weakref.finalize(self, shutil.rmtree, directory, True)

    def __next__(self) -> pa.RecordBatch:
        try:
            return next(self._batches)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Stop reading and remove the temporary files now."""
        close = getattr(self._batches, "close", None)
        if close is not None:
            close()
        self._cleanup()


def _file_names(value: Any) -> bool:
    if value is None or isinstance(value, (str, os.PathLike)):
        return True
    return isinstance(value, Sequence) and all(isinstance(v, (str, os.PathLike)) for v in value)


@contextlib.contextmanager
def similarity_files(similarity: Any, score_column: str) -> Iterator[Any]:
    """`evaluate`'s similarity: file names as they are; data in memory (a DataFrame, a table, a list
    of dicts) spooled to a temporary Parquet file for the time of the evaluation, its columns
    checked first, and messages naming `similarity` instead of that file."""
    if _file_names(similarity):
        yield similarity
        return
    columns = Columns(keep=(score_column,))  # the score column goes into the file too
    data = arrow_data(similarity, columns)
    if data is None:
        raise UsageError("similarity is an iterator that gave no batch; give the graded pairs")
    needed_columns(Columns(), data.schema.names, "similarity")
    if score_column not in data.schema.names:
        listed = ", ".join(data.schema.names)
        raise InputError(
            f"similarity: missing score column {score_column!r} (columns: {listed}); name it with --score-column"
        )
    directory = tempfile.mkdtemp(prefix="batchembed-")
    try:
        path, _ = spool(data, columns, directory, DEFAULT_SHARD_ROWS)
        try:
            yield path
        except BatchembedError as error:
            raise type(error)(error.message.replace(path, "similarity")) from error
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def in_memory_similarity(evaluation: Evaluation, similarity: Any) -> Evaluation:
    """The evaluation's description of its similarity data: "<memory>" for data in memory."""
    if not _file_names(similarity) and evaluation.similarity is not None:
        evaluation.similarity["files"] = [MEMORY_SOURCE]
    return evaluation
