"""The steps on rows already in memory, one after the other in this process, with no part,
marker or output directory: what `compare` and `evaluate` use (the jobs use stages/task.py).

Every input pair produces at least one output row: one per compared token pair, or a
single status row saying why there was nothing to compare.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from batchembed.embedders.base import Embedder
from batchembed.io.reader import InputShard
from batchembed.stages.assemble import ShardResult, assemble
from batchembed.stages.embed import embed
from batchembed.stages.prepare import prepare
from batchembed.tokenize import TokenizeMany

__all__ = ["ShardResult", "process_shard"]


def process_shard(
    shard: InputShard, tokenize_many: TokenizeMany, embedders: Sequence[Embedder], schema: pa.Schema
) -> ShardResult:
    """prepare -> embed -> assemble, here and now."""
    prepared = prepare(shard, tokenize_many, [e.preparer() for e in embedders])
    return assemble(prepared, embed(prepared, embedders), schema)
