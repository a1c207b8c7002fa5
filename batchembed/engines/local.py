"""Run every shard of every input file in this process, one after another."""

from __future__ import annotations

import logging
import time
from typing import Callable, Sequence

import pyarrow as pa

import batchembed
from batchembed.config import RunConfig
from batchembed.distances import METRICS
from batchembed.embedders.base import Embedder
from batchembed.errors import OutputError, TooManyBadRows
from batchembed.io.reader import InputFile, discover, read_shards
from batchembed.io.schema import output_schema
from batchembed.io.writer import existing_parts, write_part
from batchembed.pipeline import ShardResult, process_shard
from batchembed.summary import RunSummary
from batchembed.tokenize import get_tokenizer

log = logging.getLogger(__name__)

ShardCallback = Callable[[ShardResult], None]


def run_metadata(config: RunConfig, embedders: Sequence[Embedder], files: Sequence[InputFile]) -> dict[str, object]:
    """How a result was made; stored in every output file (no timestamps: reruns are identical)."""
    return {
        "tool": "batchembed",
        "version": batchembed.__version__,
        "models": [e.describe() for e in embedders],
        "metrics": list(METRICS),
        "tokenizer": config.tokenizer,
        "inputs": [str(f.path) for f in files],
        "columns": vars(config.columns),
        "shard_rows": config.shard_rows,
    }


def prepare_output(config: RunConfig) -> None:
    output = config.output
    if output.exists() and not output.is_dir():
        raise OutputError(f"{output}: exists and is not a directory; the output is a directory of Parquet parts")
    parts = existing_parts(output)
    if parts and not config.overwrite:
        raise OutputError(f"{output}: already holds results ({len(parts)} parts); pass --overwrite to replace them")
    for part in parts:
        part.unlink()
    output.mkdir(parents=True, exist_ok=True)


def run(
    config: RunConfig,
    embedders: Sequence[Embedder],
    on_shard: ShardCallback | None = None,
) -> RunSummary:
    """Process all inputs into `config.output`; raise TooManyBadRows past the threshold."""
    started = time.perf_counter()
    files = discover(config.inputs)
    prepare_output(config)
    schema = output_schema([e.name for e in embedders], run_metadata(config, embedders, files))
    tokenize = get_tokenizer(config.tokenizer)
    summary = RunSummary()
    tokens_before = sum(e.stats.subword_tokens for e in embedders)
    for file in files:
        for shard in read_shards(file, config.columns, config.shard_rows):
            result = process_shard(shard, tokenize, embedders, schema)
            write_part(config.output, shard.shard_id, result.table)
            summary.pairs_read += result.pairs
            summary.rows_written += result.table.num_rows
            summary.shards_written += 1
            summary.status_counts.update(result.status_counts)
            if on_shard is not None:
                on_shard(result)
            if config.max_bad_rows is not None and summary.bad_rows > config.max_bad_rows:
                raise TooManyBadRows(
                    f"{summary.bad_rows} bad rows exceed --max-bad-rows {config.max_bad_rows} "
                    f"(last in {file.path}); see the status column of {config.output}"
                )
    summary.subword_tokens = sum(e.stats.subword_tokens for e in embedders) - tokens_before
    summary.seconds = time.perf_counter() - started
    summary.write(config.output)
    return summary


def read_output(output: str) -> pa.Table:
    """All result parts of an output directory as one table (for tests and small results)."""
    import pyarrow.parquet as pq

    return pq.read_table(output)
