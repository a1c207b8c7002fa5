"""One shard: sentence pairs -> tokens -> targets -> vectors -> distances -> output rows.

Every input pair produces at least one output row: one per compared token
pair, or a single status row saying why there was nothing to compare.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from batchembed import status
from batchembed.distances import DISTANCES, degenerate
from batchembed.embedders.base import Embedder
from batchembed.io.reader import InputShard
from batchembed.io.sources import Malformed
from batchembed.targets import resolve
from batchembed.tokenize import Tokenized, TokenizeMany


@dataclass
class ShardResult:
    table: pa.Table
    pairs: int
    status_counts: Counter[str] = field(default_factory=Counter)
    subword_tokens: int = 0  # model positions the transformer ran for this shard

    @property
    def bad_rows(self) -> int:
        return sum(n for s, n in self.status_counts.items() if status.is_bad_row(s))


def _sentence_problem(value: Any) -> str | None:
    if value is None:
        return status.NULL_SENTENCE
    if isinstance(value, Malformed):  # malformed_record, unreadable_row_group
        return value.status
    if isinstance(value, bytes):
        return status.INVALID_ENCODING
    if not isinstance(value, str):
        return status.INVALID_SENTENCE
    if not value.strip():
        return status.EMPTY_SENTENCE
    return None


@dataclass
class _Rows:
    """Column lists of the output rows being built."""

    pair_row: list[int] = field(default_factory=list)  # index of the input pair in the shard
    sentence_1: list[int] = field(default_factory=list)  # unique sentence numbers, -1 for status rows
    sentence_2: list[int] = field(default_factory=list)
    token_1: list[int] = field(default_factory=list)
    token_2: list[int] = field(default_factory=list)
    status: list[str] = field(default_factory=list)


def _plan_rows(shard: InputShard, tokenize_many: TokenizeMany) -> tuple[_Rows, list[Tokenized]]:
    """Tokenize each distinct sentence once (all in one call, which may fan out to
    worker processes) and decide every row to output."""
    numbers: dict[str, int] = {}
    problems: list[str | None] = []
    for text1, text2 in zip(shard.sentence1, shard.sentence2):
        problem = _sentence_problem(text1) or _sentence_problem(text2)
        problems.append(problem)
        if problem is None:
            numbers.setdefault(text1, len(numbers))
            numbers.setdefault(text2, len(numbers))
    sentences = tokenize_many(list(numbers))  # dicts keep insertion order: sentence n is numbers' n-th key

    rows = _Rows()
    for k, (text1, text2, target, problem) in enumerate(zip(shard.sentence1, shard.sentence2, shard.targets, problems)):
        if problem is None:
            n1, n2 = numbers[text1], numbers[text2]
            if not sentences[n1].tokens or not sentences[n2].tokens:
                problem = status.EMPTY_SENTENCE
            else:
                resolution = resolve(shard.mode, sentences[n1], sentences[n2], target)
                if isinstance(resolution, str):
                    problem = resolution
                else:
                    for i, j in resolution:
                        rows.pair_row.append(k)
                        rows.sentence_1.append(n1)
                        rows.sentence_2.append(n2)
                        rows.token_1.append(i)
                        rows.token_2.append(j)
                        rows.status.append(status.OK)
        if problem is not None:
            rows.pair_row.append(k)
            rows.sentence_1.append(-1)
            rows.sentence_2.append(-1)
            rows.token_1.append(-1)
            rows.token_2.append(-1)
            rows.status.append(problem)
    return rows, sentences


def _model_distances(
    embedder: Embedder,
    sentences: Sequence[Tokenized],
    s1: np.ndarray,
    t1: np.ndarray,
    s2: np.ndarray,
    t2: np.ndarray,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Each metric's distances for the compared pairs, and per pair why they are null ('' if not)."""
    import torch

    # one request per distinct (sentence, token): a word shared by many pairs is embedded once
    keys = np.concatenate([s1, s2]) * (1 << 32) + np.concatenate([t1, t2])
    unique, inverse = np.unique(keys, return_inverse=True)
    vectors = embedder.embed_tokens(sentences, unique >> 32, unique & ((1 << 32) - 1))
    index = torch.from_numpy(inverse.reshape(-1)).to(vectors.vectors.device)
    n = len(s1)
    a, b = vectors.vectors[index[:n]], vectors.vectors[index[n:]]
    valid = (vectors.valid[index[:n]] & vectors.valid[index[n:]]).cpu().numpy()
    results = {metric: fn(a, b).float().cpu().numpy() for metric, fn in DISTANCES.items()}
    return results, status.vector_problems(embedder.missing_reason, valid, *degenerate(a, b, results))


@dataclass
class ShardPlan:
    """A shard after the CPU-only stage: distinct sentences tokenized, rows decided."""

    shard: InputShard
    rows: _Rows
    sentences: list[Tokenized]


def plan_shard(shard: InputShard, tokenize_many: TokenizeMany) -> ShardPlan:
    """Stage 1, no model: safe to run in a background thread for the next shard."""
    rows, sentences = _plan_rows(shard, tokenize_many)
    return ShardPlan(shard, rows, sentences)


def embed_plan(plan: ShardPlan, embedders: Sequence[Embedder], schema: pa.Schema) -> ShardResult:
    """Stage 2: every model's vectors for the planned token pairs, distances, output table."""
    shard, rows, sentences = plan.shard, plan.rows, plan.sentences
    compared = np.asarray(rows.sentence_1) >= 0
    idx = np.flatnonzero(compared)
    s1, s2 = np.asarray(rows.sentence_1)[idx], np.asarray(rows.sentence_2)[idx]
    t1, t2 = np.asarray(rows.token_1)[idx], np.asarray(rows.token_2)[idx]
    n_rows = len(rows.status)

    tokens_before = sum(e.stats.subword_tokens for e in embedders)
    columns: dict[str, Any] = {}
    missing: list[list[str]] = [[] for _ in range(n_rows)]
    for embedder in embedders:
        if len(idx):
            distances, problems = _model_distances(embedder, sentences, s1, t1, s2, t2)
        else:
            distances, problems = {m: np.zeros(0, np.float32) for m in DISTANCES}, np.zeros(0, object)
        failed = problems != ""  # no vector, a zero or non-finite one: every distance null, status says why
        for metric, values in distances.items():
            full = np.full(n_rows, np.nan, dtype=np.float32)
            full[idx] = values
            null = np.ones(n_rows, dtype=bool)
            null[idx] = failed
            columns[f"{embedder.name}_{metric}"] = pa.array(full, type=pa.float32(), mask=null)
        for row, reason in zip(idx[failed].tolist(), problems[failed].tolist()):
            missing[row].append(status.model_status(embedder.name, reason))

    statuses = [";".join(m) if m else s for s, m in zip(rows.status, missing)]
    columns.update(_location_columns(shard, sentences, rows, compared))
    columns["status"] = pa.array(statuses, type=pa.string())
    table = pa.table({name: columns[name] for name in schema.names}, schema=schema)
    tokens = sum(e.stats.subword_tokens for e in embedders) - tokens_before
    return ShardResult(table, len(shard), Counter(statuses), tokens)


def process_shard(
    shard: InputShard, tokenize_many: TokenizeMany, embedders: Sequence[Embedder], schema: pa.Schema
) -> ShardResult:
    """Both stages, one after the other."""
    return embed_plan(plan_shard(shard, tokenize_many), embedders, schema)


def _location_columns(
    shard: InputShard, sentences: Sequence[Tokenized], rows: _Rows, compared: np.ndarray
) -> dict[str, pa.Array]:
    """pair_id, source and the words' surface forms, token indices and character offsets."""
    pair_row = np.asarray(rows.pair_row, dtype=np.int64)
    out: dict[str, pa.Array] = {
        "pair_id": pa.array([shard.ids[k] for k in pair_row.tolist()], type=pa.string()),
        "source_file": pa.array([str(shard.file.path)] * len(pair_row), type=pa.string()),
        "source_row": pa.array(pair_row + shard.first_row, type=pa.int64()),
    }
    for side, numbers, tokens in ((1, rows.sentence_1, rows.token_1), (2, rows.sentence_2, rows.token_2)):
        words: list[str | None] = []
        starts: list[int | None] = []
        ends: list[int | None] = []
        for n, t in zip(numbers, tokens):
            if n < 0:
                words.append(None)
                starts.append(None)
                ends.append(None)
            else:
                sentence = sentences[n]
                words.append(sentence.tokens[t])
                starts.append(sentence.starts[t])
                ends.append(sentence.ends[t])
        out[f"word_{side}"] = pa.array(words, type=pa.string())
        out[f"token_index_{side}"] = pa.array(np.asarray(tokens, dtype=np.int32), mask=~compared, type=pa.int32())
        out[f"char_start_{side}"] = pa.array(starts, type=pa.int32())
        out[f"char_end_{side}"] = pa.array(ends, type=pa.int32())
    return out
