"""Open one input file as its target mode and a stream of column chunks of Python values: each
format in its own module (io/csv_source.py, io/parquet_source.py), what they share in
io/source_columns.py. Neither format is ever loaded whole.
"""

from __future__ import annotations

import pyarrow as pa

from batchembed.config import Columns
from batchembed.io.csv_source import csv_chunks, csv_header
from batchembed.io.inputs import InputFile
from batchembed.io.parquet_source import _open_parquet, parquet_chunks, parquet_kept_field, parquet_rows
from batchembed.io.source_columns import MALFORMED, UNREADABLE, Chunk, Malformed, kept_key, needed_columns
from batchembed.messages import one_line as reason
from batchembed.messages import show

__all__ = [
    "MALFORMED",
    "UNREADABLE",
    "Chunk",
    "Malformed",
    "csv_chunks",
    "header_columns",
    "kept_field",
    "kept_key",
    "needed_columns",
    "parquet_chunks",
    "parquet_rows",
    "reason",
    "show",
]


def header_columns(file: InputFile, columns: Columns) -> list[str]:
    """An input's column names, without reading a row: a Parquet file's schema from its footer, a
    CSV file's first line split as csv_chunks splits it. Raises InputError naming the file."""
    if file.format == "parquet":
        with _open_parquet(file) as parquet:
            return list(parquet.schema_arrow.names)
    return csv_header(file, columns)


def kept_field(file: InputFile, name: str) -> pa.Field | None:
    """A kept column's output field: text for CSV; the Parquet column's own type (dictionaries
    decoded); None when the file or the column cannot be read (the reader reports it)."""
    if file.format != "parquet":
        return pa.field(name, pa.string())
    return parquet_kept_field(file, name)
