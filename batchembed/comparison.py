"""Compare two sentences directly: the classic demonstration, through the same pipeline as `run`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from batchembed.embedders.base import Embedder
from batchembed.io.reader import InputFile, InputShard
from batchembed.io.schema import output_schema
from batchembed.io.storage import locate
from batchembed.messages import text_table
from batchembed.stages.in_memory import process_shard
from batchembed.targets import TargetMode
from batchembed.tokenize import TokenizerName, get_tokenizer, many

COMPARE_SOURCE = "<compare>"  # the records' source_file: the two sentences came from no file, CLI or Python


def compare_sentences(
    sentence1: str,
    sentence2: str,
    embedders: Sequence[Embedder],
    word: str | None = None,
    tokenizer: TokenizerName = "flair",
    skip: frozenset[str] = frozenset(),
) -> pa.Table:
    """One output row per shared word (or per occurrence pair of `word`)."""
    mode = TargetMode.WORD if word else TargetMode.SHARED
    shard = InputShard(
        file=InputFile(locate(COMPARE_SOURCE), "args"),
        index=0,
        first_row=1,
        mode=mode,
        ids=["1"],
        sentence1=[sentence1],
        sentence2=[sentence2],
        targets=[(word,)] if word else [(skip,) if skip else ()],
    )
    schema = output_schema([e.name for e in embedders])
    return process_shard(shard, many(get_tokenizer(tokenizer)), embedders, schema).table


def format_table(records: Sequence[dict[str, Any]], model_names: Sequence[str]) -> str:
    """A fixed-width text table of `compare`'s records: words, each model's distances, status."""
    headers = ["word 1", "word 2"] + [f"{m} {metric}" for m in model_names for metric in ("euclid", "cosine")]
    headers.append("status")
    lines: list[list[str]] = []
    for record in records:
        cells = [record["word_1"] or "-", record["word_2"] or "-"]
        for m in model_names:
            for metric in ("euclidean", "cosine"):
                value = record[f"{m}_{metric}"]
                cells.append("null" if value is None else f"{value:.4f}")
        cells.append(record["status"])
        lines.append(cells)
    # words and status left-aligned, numbers right-aligned
    return "\n".join(text_table(headers, lines, left={0, 1, len(headers) - 1}))
