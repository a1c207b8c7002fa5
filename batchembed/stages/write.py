"""Stage 4, CPU: a shard's embedded pieces -> its output table -> its Parquet part, written.

engines/local.py runs this in its worker processes (workers.StagePool), so the process
that drives the model neither builds tables nor compresses nor writes: it hands over the
pieces' arrays and gets back the part's size and SHA-256, which go into the done marker
that the job writes after it (part first, marker second, as always).
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from batchembed.io.layout import OutputLayout
from batchembed.io.writer import write_part
from batchembed.stages.assemble import ShardResult, assemble, combine
from batchembed.stages.embed import EmbeddedShard
from batchembed.stages.prepare import PreparedShard

EMPTY = pa.table({})


def write_shard(
    layout: OutputLayout, shard_id: str, pieces: Sequence[tuple[PreparedShard, EmbeddedShard]], schema: pa.Schema
) -> ShardResult:
    """Assemble and write one shard; the result carries the written part instead of the table."""
    result = combine([assemble(prepared, embedded, schema) for prepared, embedded in pieces])
    part = write_part(layout, shard_id, result.table)
    return ShardResult(
        EMPTY, result.pairs, result.status_counts, result.subword_tokens, written=part, written_rows=result.rows
    )
