"""Assemble, CPU: a PreparedShard and its EmbeddedShard -> the output table, vectorized.

The status column is decided here, in one place (`row_statuses`): a row's planning
status, or, for a compared row, every model whose distances are null and why
(`<model>_<reason>`: no vector, a zero vector, a non-finite one; joined with ';'). So
`ok` means every distance is present and finite.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from batchembed import status
from batchembed.io.markers import WrittenPart
from batchembed.io.schema import USE_ALIASES, is_vector_schema
from batchembed.stages.embed import EmbeddedShard
from batchembed.stages.prepare import PreparedShard


@dataclass
class ShardResult:
    table: pa.Table  # empty once `written`
    pairs: int
    status_counts: Counter[str] = field(default_factory=Counter)
    subword_tokens: int = 0  # model positions the transformer ran for this shard
    written: WrittenPart | None = None  # the part, once written (stages/write.py)
    written_rows: int = 0

    @property
    def rows(self) -> int:
        return self.written_rows if self.written is not None else self.table.num_rows

    @property
    def bad_rows(self) -> int:
        return status.bad_rows(self.status_counts)


def row_statuses(prepared: PreparedShard, embedded: EmbeddedShard) -> np.ndarray:
    """Each output row's status (str array)."""
    statuses = prepared.row_status.astype(object)
    compared = np.flatnonzero(prepared.compared)
    models = list(embedded.problems)
    if not models or not len(compared):
        return statuses
    problems = np.stack([embedded.problems[m] for m in models])  # model x compared row
    for k in np.flatnonzero((problems != "").any(axis=0)).tolist():
        reasons = [status.model_status(m, r) for m, r in zip(models, problems[:, k].tolist()) if r]
        statuses[compared[k]] = ";".join(reasons)
    return statuses


def _strings(data: np.ndarray, offsets: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """An Arrow string array straight from (bytes, offsets) arrays, nulls where not `valid`."""
    return pa.Array.from_buffers(
        pa.string(), len(offsets) - 1, [_bitmap(valid), pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(data)]
    )


def _bitmap(valid: np.ndarray | None) -> pa.Buffer | None:
    return None if valid is None or valid.all() else pa.py_buffer(np.packbits(valid, bitorder="little"))


def kept_array(values: list[Any], kind: pa.DataType) -> pa.Array:
    """A kept column's values as the output's type: the input's own, or text where the inputs'
    types differ (io/reader.py kept_fields)."""
    try:
        return pa.array(values, type=kind)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            raise
        return pa.array([None if v is None else str(v) for v in values], type=kind)


def assemble(prepared: PreparedShard, embedded: EmbeddedShard, schema: pa.Schema) -> ShardResult:
    compared = prepared.compared
    idx = np.flatnonzero(compared)
    n_rows = len(compared)
    columns: dict[str, pa.Array] = {}
    for name, values in embedded.distances.items():
        model = name.rsplit("_", 1)[0]
        full = np.full(n_rows, np.nan, dtype=np.float32)
        full[idx] = values
        null = np.ones(n_rows, dtype=bool)
        null[idx] = embedded.problems[model] != ""  # a reason in the status for every null
        columns[name] = pa.array(full, type=pa.float32(), mask=null)

    statuses = row_statuses(prepared, embedded)
    uniques, codes = np.unique(statuses, return_inverse=True) if n_rows else (np.zeros(0, object), np.zeros(0, int))
    counts = np.bincount(codes.reshape(-1), minlength=len(uniques))
    columns["status"] = pa.DictionaryArray.from_arrays(
        pa.array(codes.reshape(-1).astype(np.int32)), pa.array(uniques.tolist(), type=pa.string())
    ).cast(pa.string())

    ids = _strings(prepared.pair_ids, prepared.pair_id_offsets)
    columns["pair_id"] = pc.take(ids, pa.array(prepared.pair_row))
    columns["source_file"] = pa.array([prepared.source_file], type=pa.string()).take(np.zeros(n_rows, np.int64))
    columns["source_row"] = pa.array(prepared.pair_row + prepared.first_row, type=pa.int64())
    null = ~compared
    for side in (1, 2):
        columns[f"word_{side}"] = _strings(
            getattr(prepared, f"word_{side}"), getattr(prepared, f"word_{side}_offsets"), compared
        )
        columns[f"token_index_{side}"] = pa.array(getattr(prepared, f"token_{side}"), mask=null, type=pa.int32())
        columns[f"char_start_{side}"] = pa.array(getattr(prepared, f"char_start_{side}"), mask=null, type=pa.int32())
        columns[f"char_end_{side}"] = pa.array(getattr(prepared, f"char_end_{side}"), mask=null, type=pa.int32())
    for name, kept in prepared.kept.items():  # a pair's kept values on each of its rows
        columns[name] = kept_array(kept, schema.field(name).type).take(pa.array(prepared.pair_row))
    if is_vector_schema(schema):
        return _uses(prepared, embedded, schema, columns)
    table = pa.table({name: columns[name] for name in schema.names}, schema=schema)
    status_counts = Counter(dict(zip(uniques.tolist(), counts.tolist())))
    return ShardResult(table, prepared.pairs, status_counts, embedded.subword_tokens)


def _uses(
    prepared: PreparedShard, embedded: EmbeddedShard, schema: pa.Schema, columns: dict[str, pa.Array]
) -> ShardResult:
    """The uses job's rows: each use's target compared with itself (a word target found several
    times in its sentence gives one use per occurrence, not every pair of them), or its status
    row; each model's vector, null where the status names that model's problem."""
    compared = prepared.compared
    idx = np.flatnonzero(compared)
    keep = ~compared | (prepared.token_1 == prepared.token_2)
    for name, kind in zip(schema.names, schema.types):
        if pa.types.is_fixed_size_list(kind):
            dim = kind.list_size
            full = np.zeros((len(compared), dim), dtype=np.float32)
            null = np.ones(len(compared), dtype=bool)
            vectors = embedded.vectors.get(name)
            if vectors is not None and len(idx):
                full[idx] = vectors
                null[idx] = embedded.problems[name] != ""
            values = pa.array(full.reshape(-1), type=pa.float32())
            columns[name] = pa.FixedSizeListArray.from_arrays(values, dim, mask=pa.array(null))
    for use, pair in USE_ALIASES.items():
        columns[use] = columns[pair]
    table = pa.table({name: columns[name] for name in schema.names}, schema=schema).filter(pa.array(keep))
    status_counts = Counter(table.column("status").to_pylist())
    return ShardResult(table, prepared.pairs, status_counts, embedded.subword_tokens)


def combine(results: list[ShardResult]) -> ShardResult:
    """The results of a shard's pieces as the shard's one result."""
    if len(results) == 1:
        return results[0]
    counts: Counter[str] = Counter()
    for r in results:
        counts.update(r.status_counts)
    table = pa.concat_tables([r.table for r in results]).combine_chunks()
    return ShardResult(table, sum(r.pairs for r in results), counts, sum(r.subword_tokens for r in results))
