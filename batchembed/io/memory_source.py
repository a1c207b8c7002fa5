"""Data in memory as the job's input: a table, a DataFrame, a list of pairs or a stream of record
batches becomes an Arrow stream, spooled batch by batch to a temporary Parquet file that the one
job reads like any other input; its parts come back as record batches, in input order.

Why a spooled file rather than pieces handed to an engine directly: the job is planned from
files (Parquet footers, markers, the manifest), and both engines run the one task function over
those plans. Through a file, data in memory takes exactly that path (the same prepare workers,
pieces, target modes and statuses) and memory stays bounded for a stream larger than memory:
batches go to disk as they arrive, the job reads them back in pieces, and the output is read one
part at a time. The cost is a local disk write of the input's columns that the job needs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from batchembed.arguments import type_name
from batchembed.config import Columns
from batchembed.errors import UsageError
from batchembed.io.layout import OutputLayout
from batchembed.io.schema import METADATA_KEY
from batchembed.io.sources import needed_columns, reason
from batchembed.io.storage import locate

SPOOL_NAME = "pairs.parquet"  # the spooled file: its rows' default pair_id would be "pairs.parquet:<row>"
MEMORY_SOURCE = "<memory>"  # the source_file of every row of data in memory
WHERE = "pairs"  # how messages name the data (the `pairs` argument)


@dataclass
class ArrowData:
    """Data in memory as a schema and a stream of record batches."""

    schema: pa.Schema
    batches: Iterator[pa.RecordBatch]
    streamed: bool  # given as an iterator: the result is an iterator of record batches too


def arrow_data(pairs: Any, columns: Columns) -> ArrowData | None:
    """Any supported data as an Arrow stream, without copying what Arrow already holds.

    A pyarrow Table or RecordBatch, a RecordBatchReader or Dataset, a pandas DataFrame (its index
    left out), anything with the Arrow PyCapsule stream interface (Polars, DuckDB relations), a
    list of dicts or of (sentence1, sentence2) tuples; or an iterator of any of these, streamed
    (None when it gives no batch at all).
    """
    if isinstance(pairs, (str, bytes, os.PathLike)):
        raise UsageError(
            f"distances takes data in memory, but pairs is a {type_name(pairs)}; "
            "for files call batchembed.run(inputs, output, ...) and batchembed.read_output(output)"
        )
    if type(pairs).__name__ == "Series":
        raise UsageError(
            f"pairs is a {type_name(pairs)} (one column); give a DataFrame with the two sentence columns, "
            "or a list of (sentence1, sentence2) tuples such as list(zip(series1, series2))"
        )
    if isinstance(pairs, pa.Table):
        return ArrowData(pairs.schema, iter(pairs.to_batches()), streamed=False)
    if isinstance(pairs, pa.RecordBatch):
        return ArrowData(pairs.schema, iter([pairs]), streamed=False)
    if isinstance(pairs, pa.RecordBatchReader):
        return ArrowData(pairs.schema, iter(pairs), streamed=False)
    if type(pairs).__module__.split(".")[0] == "pandas":  # before the capsule: it would keep the index
        table = pa.Table.from_pandas(pairs, preserve_index=False)
        return ArrowData(table.schema, iter(table.to_batches()), streamed=False)
    if hasattr(pairs, "__arrow_c_stream__"):
        reader = pa.RecordBatchReader.from_stream(pairs)
        return ArrowData(reader.schema, iter(reader), streamed=False)
    if hasattr(pairs, "to_batches") and isinstance(getattr(pairs, "schema", None), pa.Schema):  # a Dataset
        return ArrowData(pairs.schema, iter(pairs.to_batches()), streamed=False)
    if isinstance(pairs, Iterator):
        return _stream(pairs, columns)
    if isinstance(pairs, Sequence):
        table = _records(pairs, columns)
        return ArrowData(table.schema, iter(table.to_batches()), streamed=False)
    raise UsageError(
        f"pairs is a {type_name(pairs)}; give a DataFrame (pandas, Polars), a pyarrow Table, a list of "
        "(sentence1, sentence2) tuples or of dicts, or an iterator of record batches"
    )


def _records(items: Sequence[Any], columns: Columns) -> pa.Table:
    """A list of dicts (one per pair, keys are columns) or of (sentence1, sentence2) tuples."""
    if not items:
        return pa.table({columns.sentence1: pa.array([], pa.string()), columns.sentence2: pa.array([], pa.string())})
    try:
        if all(isinstance(item, dict) for item in items):
            return pa.Table.from_pylist(list(items))
        for k, item in enumerate(items):
            if isinstance(item, (str, bytes, dict)) or not isinstance(item, Sequence) or len(item) != 2:
                raise UsageError(
                    f"pairs[{k}] is {item!r:.60}; give every pair as a (sentence1, sentence2) tuple, "
                    "or every pair as a dict of columns"
                )
        first, second = zip(*items)
        return pa.table({columns.sentence1: pa.array(first), columns.sentence2: pa.array(second)})
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:  # e.g. text and numbers in one column
        raise UsageError(f"pairs: a column mixes types ({reason(exc)}); give text sentences, None for none") from exc


def _stream(items: Iterator[Any], columns: Columns) -> ArrowData | None:
    """An iterator of batches (or of tables or DataFrames): the first fixes the schema."""

    def batches() -> Iterator[pa.RecordBatch]:
        for item in items:
            if isinstance(item, pa.RecordBatch):
                yield item
                continue
            if isinstance(item, Iterator):
                raise UsageError(f"an item of pairs is a {type_name(item)}; give an iterator of record batches")
            data = arrow_data(item, columns)
            if data is not None:
                yield from data.batches

    stream = batches()
    first: pa.RecordBatch | None = None
    for first in stream:
        if first.num_rows:
            break
    if first is None:
        return None
    head = first

    def rest() -> Iterator[pa.RecordBatch]:
        yield head
        for batch in stream:
            if batch.schema == head.schema:
                yield batch
                continue
            try:
                yield batch.select(head.schema.names).cast(head.schema)
            except (pa.ArrowException, KeyError, ValueError) as exc:
                raise UsageError(
                    f"a batch of pairs has the columns {batch.schema.names} of types "
                    f"{[str(t) for t in batch.schema.types]}, unlike the first ({head.schema.names}, "
                    f"{[str(t) for t in head.schema.types]}); give batches of one schema"
                ) from exc

    return ArrowData(head.schema, rest(), streamed=True)


def _storable(kind: pa.DataType) -> pa.DataType:
    """View types (Polars exports text as string_view) as their plain large types."""
    if pa.types.is_string_view(kind):
        return pa.large_string()
    if pa.types.is_binary_view(kind):
        return pa.large_binary()
    return kind


def spool(data: ArrowData, columns: Columns, directory: str, group_rows: int) -> tuple[str, int]:
    """Write the columns the job reads (sentences, targets, id, kept) to `directory`/SPOOL_NAME,
    batch by batch, in row groups of `group_rows` (the job's shard: each task then decodes exactly
    its own group); returns its path and row count. Memory holds at most one group and a batch."""
    import pyarrow.parquet as pq

    _, needed = needed_columns(columns, data.schema.names, WHERE)
    names = list(dict.fromkeys([*needed, *columns.keep]))
    schema = pa.schema([pa.field(n, _storable(data.schema.field(n).type)) for n in names])
    path = os.path.join(directory, SPOOL_NAME)
    rows = 0
    with pq.ParquetWriter(path, schema) as writer:
        pending = schema.empty_table()
        for batch in data.batches:
            pending = pa.concat_tables([pending, pa.Table.from_batches([batch.select(names).cast(schema)])])
            while pending.num_rows >= group_rows:
                writer.write_table(pending.slice(0, group_rows), row_group_size=group_rows)
                rows, pending = rows + group_rows, pending.slice(group_rows)
        if pending.num_rows or not rows:
            writer.write_table(pending, row_group_size=group_rows)
            rows += pending.num_rows
    return path, rows


def output_batches(output: str, delete: bool = True) -> Iterator[pa.RecordBatch]:
    """A finished job's output as record batches, part by part in input order (one spooled input,
    so the parts' names sort in input order), each part deleted once read if `delete`; the rows
    name the data in memory (`as_memory_rows`)."""
    import pyarrow.parquet as pq

    layout = OutputLayout.of(locate(output))
    for shard_id in sorted(layout.parts()):
        part = layout.part(shard_id)
        parquet = pq.ParquetFile(part.path)
        schema = memory_schema(parquet.schema_arrow)
        for batch in parquet.iter_batches():
            yield as_memory_rows(batch, schema)
        parquet.close()
        if delete:
            part.delete()


def memory_schema(schema: pa.Schema) -> pa.Schema:
    """The output schema with its metadata's inputs naming the data in memory, not the spooled file."""
    metadata = dict(schema.metadata or {})
    if METADATA_KEY in metadata:
        described = json.loads(metadata[METADATA_KEY])
        described["inputs"] = [MEMORY_SOURCE]
        metadata[METADATA_KEY] = json.dumps(described, sort_keys=True).encode()
    return schema.with_metadata(metadata)


def as_memory_rows(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """Rows of the spooled file as rows of the data in memory: source_file MEMORY_SOURCE, and a
    pair without an id gets its row number (1-based) as pair_id, not '<spooled file>:<row>'."""
    rows = pc.cast(batch.column("source_row"), pa.string())
    default = pc.binary_join_element_wise(SPOOL_NAME, rows, ":")
    pair_id = pc.if_else(pc.equal(batch.column("pair_id"), default), rows, batch.column("pair_id"))
    columns = {
        "pair_id": pair_id,
        "source_file": pa.array([MEMORY_SOURCE] * batch.num_rows, pa.string()),
    }
    arrays = [columns.get(name, batch.column(name)) for name in schema.names]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)
