"""The output contract: one Arrow schema, defined here and nowhere else."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from batchembed.embedders.distances import METRICS

METADATA_KEY = b"batchembed"

BASE_FIELDS: tuple[pa.Field, ...] = (
    pa.field("pair_id", pa.string(), nullable=False),  # id column, else "<file name>:<row>"
    pa.field("source_file", pa.string(), nullable=False),
    pa.field("source_row", pa.int64(), nullable=False),  # 1-based data row in source_file
    pa.field("word_1", pa.string()),
    pa.field("word_2", pa.string()),
    pa.field("token_index_1", pa.int32()),
    pa.field("token_index_2", pa.int32()),
    pa.field("char_start_1", pa.int32()),
    pa.field("char_end_1", pa.int32()),
    pa.field("char_start_2", pa.int32()),
    pa.field("char_end_2", pa.int32()),
)


PAIR_WORD_FIELDS = BASE_FIELDS[3:]  # the two words compared: their forms and positions


def distance_columns(model_names: Sequence[str]) -> list[str]:
    return [f"{name}_{metric}" for name in model_names for metric in METRICS]


def output_schema(
    model_names: Sequence[str], metadata: dict[str, Any] | None = None, kept: Sequence[pa.Field] = ()
) -> pa.Schema:
    """The output's columns; `kept`, the input columns carried into every row of their pair
    (--keep-columns), come last, so the contract's columns keep their places."""
    fields = [
        *BASE_FIELDS,
        *(pa.field(column, pa.float32()) for column in distance_columns(model_names)),
        pa.field("status", pa.string(), nullable=False),
        *kept,
    ]
    encoded = {METADATA_KEY: json.dumps(metadata, sort_keys=True).encode()} if metadata else None
    return pa.schema(fields, metadata=encoded)


USE_FIELDS: tuple[pa.Field, ...] = (
    pa.field("use_id", pa.string(), nullable=False),  # id column, else "<file name>:<row>"
    pa.field("source_file", pa.string(), nullable=False),
    pa.field("source_row", pa.int64(), nullable=False),
    pa.field("word", pa.string()),  # the target's surface form
    pa.field("token_index", pa.int32()),
    pa.field("char_start", pa.int32()),
    pa.field("char_end", pa.int32()),
)
USE_ALIASES = {  # a use's column -> the pair column it is (a use is its sentence paired with itself)
    "use_id": "pair_id",
    "word": "word_1",
    "token_index": "token_index_1",
    "char_start": "char_start_1",
    "char_end": "char_end_1",
}


def vector_schema(
    models: Sequence[tuple[str, int]], metadata: dict[str, Any] | None = None, kept: Sequence[pa.Field] = ()
) -> pa.Schema:
    """The uses job's vectors (usage/job.py): one row per use, each model's vector of its target
    as a fixed-size float32 list (null where the model has none: the status says why)."""
    fields = [
        *USE_FIELDS,
        *(pa.field(name, pa.list_(pa.float32(), dim)) for name, dim in models),
        pa.field("status", pa.string(), nullable=False),
        *kept,
    ]
    encoded = {METADATA_KEY: json.dumps(metadata, sort_keys=True).encode()} if metadata else None
    return pa.schema(fields, metadata=encoded)


def is_vector_schema(schema: pa.Schema) -> bool:
    return "use_id" in schema.names


def read_metadata(schema: pa.Schema) -> dict[str, Any]:
    """The run description stored in a result file's key-value metadata."""
    raw = (schema.metadata or {}).get(METADATA_KEY)
    return json.loads(raw) if raw else {}
