"""Labelled pairs -> the pipeline's own input shards -> one distance per labelled item.

There is no second embedding path: items go through `batchembed.stages.in_memory.process_shard`
with the embedders `batchembed.embedders.load.load_embedders` gives `run`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from batchembed.config import DEFAULT_SHARD_ROWS, Columns
from batchembed.embedders.base import Embedder
from batchembed.evaluation.data import LabelledSplit
from batchembed.io.reader import InputFile, InputShard
from batchembed.io.storage import locate
from batchembed.targets import TargetMode
from batchembed.tokenize import TokenizerName

CHUNK_ROWS = DEFAULT_SHARD_ROWS  # pairs per pipeline shard, as `run`'s default --shard-rows


@dataclass
class ItemDistances:
    """Per labelled item: each distance column (NaN where null) and the item's status."""

    values: dict[str, np.ndarray]
    status: list[str]  # "ok", or the first other status among the item's output rows

    def __len__(self) -> int:
        return len(self.status)

    def status_counts(self) -> dict[str, int]:
        return dict(sorted(Counter(self.status).items()))

    def slice(self, start: int, stop: int) -> ItemDistances:
        return ItemDistances({k: v[start:stop] for k, v in self.values.items()}, self.status[start:stop])


def _item_means(items: np.ndarray, values: np.ndarray, n_items: int) -> np.ndarray:
    """Mean over each item's compared pairs (word-pair data can match several occurrences)."""
    known = ~np.isnan(values)
    sums = np.bincount(items[known], weights=values[known], minlength=n_items)
    counts = np.bincount(items[known], minlength=n_items)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def _collect(tables: Sequence[Any], names: Sequence[str], n_items: int) -> ItemDistances:
    """Pipeline output rows -> per-item values; `source_row` must be the 1-based item number."""
    import pyarrow as pa

    from batchembed.io.schema import distance_columns

    table = pa.concat_tables(tables)
    items = table.column("source_row").to_numpy() - 1
    values = {
        column: _item_means(items, table.column(column).to_numpy(zero_copy_only=False).astype(np.float64), n_items)
        for column in distance_columns(names)
    }
    status = ["ok"] * n_items
    for item, state in zip(items.tolist(), table.column("status").to_pylist(), strict=True):
        if status[item] == "ok":
            status[item] = state
    return ItemDistances(values, status)


def _embed_group(
    mode: TargetMode, tokenizer: TokenizerName, splits: Sequence[LabelledSplit], embedders: Sequence[Embedder]
) -> ItemDistances:
    """Several splits of one mode and tokenizer as one item sequence, in pipeline shards."""
    from batchembed.io.schema import output_schema
    from batchembed.stages.in_memory import process_shard
    from batchembed.tokenize import get_tokenizer, remembering

    names = [e.name for e in embedders]
    schema = output_schema(names)
    tokenize_many = remembering(get_tokenizer(tokenizer))  # across chunks: WiC repeats its sentences
    sentence1 = [s for split in splits for s in split.sentence1]
    sentence2 = [s for split in splits for s in split.sentence2]
    targets = [t for split in splits for t in split.targets]
    source = InputFile(locate("<evaluate>"), "labelled")
    tables = []
    for index, start in enumerate(range(0, len(targets), CHUNK_ROWS)):
        stop = min(start + CHUNK_ROWS, len(targets))
        shard = InputShard(
            source,
            index,
            start + 1,
            mode,
            [str(k + 1) for k in range(start, stop)],
            sentence1[start:stop],
            sentence2[start:stop],
            targets[start:stop],
        )
        tables.append(process_shard(shard, tokenize_many, embedders, schema).table)
    return _collect(tables, names, len(targets))


def embed_splits(splits: Sequence[LabelledSplit], embedders: Sequence[Embedder]) -> list[ItemDistances]:
    """Per-item distances for each split; splits sharing mode and tokenizer are embedded together,
    so dev and test go through the models in one stream (a sentence in both is tokenized once)."""
    groups: dict[tuple[TargetMode, TokenizerName], list[int]] = {}
    for k, split in enumerate(splits):
        groups.setdefault((split.mode, split.tokenizer), []).append(k)
    results: dict[int, ItemDistances] = {}
    for (mode, tokenizer), members in groups.items():
        combined = _embed_group(mode, tokenizer, [splits[k] for k in members], embedders)
        offset = 0
        for k in members:
            results[k] = combined.slice(offset, offset + len(splits[k]))
            offset += len(splits[k])
    return [results[k] for k in range(len(splits))]


def embed_files(
    files: Sequence[InputFile], columns: Columns, tokenizer: TokenizerName, embedders: Sequence[Embedder]
) -> ItemDistances:
    """Graded-similarity files, read by the pipeline's own reader, as one item sequence."""
    import pyarrow.compute as pc

    from batchembed.io.reader import read_shards
    from batchembed.io.schema import output_schema
    from batchembed.stages.in_memory import process_shard
    from batchembed.tokenize import get_tokenizer, remembering

    names = [e.name for e in embedders]
    schema = output_schema(names)
    tokenize_many = remembering(get_tokenizer(tokenizer))  # across chunks: WiC repeats its sentences
    tables, offset = [], 0
    for file in files:
        rows = 0
        for shard in read_shards(file, columns, CHUNK_ROWS):
            table = process_shard(shard, tokenize_many, embedders, schema).table
            # number rows across files, so source_row stays the 1-based item number
            index = table.schema.get_field_index("source_row")
            tables.append(table.set_column(index, "source_row", pc.add(table.column("source_row"), offset)))
            rows += len(shard)
        offset += rows
    if not tables:
        return ItemDistances({}, [])
    return _collect(tables, names, offset)
