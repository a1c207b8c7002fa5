"""Prepare, CPU only (no torch, no model weights): a shard -> PreparedShard, batch-ready arrays.

Tokenizes each distinct sentence once, decides every output row (the target rules of
targets.py, a status row for each pair with nothing to compare), deduplicates the
(sentence, token) requests, and lets each model's Preparer turn them into its arrays
(subword ids, word -> subword positions, vocabulary rows). Strings travel as Arrow-style
(bytes, offsets) arrays, so a PreparedShard pickles as a few buffers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from batchembed import status
from batchembed.embedders.base import ModelInput, Preparer, encode_strings
from batchembed.io.reader import InputShard
from batchembed.io.sources import Malformed
from batchembed.targets import resolve
from batchembed.tokenize import Tokenized, TokenizeMany


@dataclass
class PreparedShard:
    """One shard as arrays. Rows are the output rows; "compared" rows (sentence_1 >= 0) are
    the ones with distances; requests are the distinct (sentence, token) pairs they read."""

    # identity
    shard_id: str
    source_file: str
    first_row: int  # 1-based data row number of the shard's first pair
    pairs: int
    # per pair
    pair_ids: np.ndarray  # UTF-8 bytes of the pairs' ids ...
    pair_id_offsets: np.ndarray  # ... and their int64 offsets [pairs + 1]
    # per output row
    pair_row: np.ndarray  # int64: the row's pair within the shard
    sentence_1: np.ndarray  # int64: distinct sentence number, -1 for a status row
    sentence_2: np.ndarray
    token_1: np.ndarray  # int32: token index, -1 for a status row
    token_2: np.ndarray
    char_start_1: np.ndarray  # int32, -1 for a status row
    char_end_1: np.ndarray
    char_start_2: np.ndarray
    char_end_2: np.ndarray
    word_1: np.ndarray  # UTF-8 bytes of the compared words (status rows: empty) ...
    word_1_offsets: np.ndarray  # ... and offsets [rows + 1]
    word_2: np.ndarray
    word_2_offsets: np.ndarray
    row_status: np.ndarray  # str: ok, or why the pair has nothing to compare
    # per compared row: its two requests
    request_1: np.ndarray  # int64 index into the requests
    request_2: np.ndarray
    # the models' arrays for the requests, by model name
    model_inputs: dict[str, ModelInput] = field(default_factory=dict)
    requests: int = 0
    kept: dict[str, list[Any]] = field(default_factory=dict)  # --keep-columns: one value per pair
    keep_vectors: bool = False  # embed hands back the vectors too (stages/task.py sets it for the uses job)

    @property
    def compared(self) -> np.ndarray:
        return self.sentence_1 >= 0


def sentence_problem(value: Any) -> str | None:
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
class Rows:
    """Column lists of the output rows being planned."""

    pair_row: list[int] = field(default_factory=list)
    sentence_1: list[int] = field(default_factory=list)  # -1 for status rows
    sentence_2: list[int] = field(default_factory=list)
    token_1: list[int] = field(default_factory=list)
    token_2: list[int] = field(default_factory=list)
    status: list[str] = field(default_factory=list)


def plan_rows(shard: InputShard, tokenize_many: TokenizeMany) -> tuple[Rows, list[Tokenized]]:
    """Tokenize each distinct sentence once and decide every row to output."""
    numbers: dict[str, int] = {}
    problems: list[str | None] = []
    for text1, text2 in zip(shard.sentence1, shard.sentence2):
        problem = sentence_problem(text1) or sentence_problem(text2)
        problems.append(problem)
        if problem is None:
            numbers.setdefault(text1, len(numbers))
            numbers.setdefault(text2, len(numbers))
    sentences = tokenize_many(list(numbers))  # dicts keep insertion order: sentence n is numbers' n-th key

    rows = Rows()
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


def _side(sentences: Sequence[Tokenized], numbers: np.ndarray, tokens: np.ndarray) -> tuple[np.ndarray, ...]:
    """Words (bytes, offsets), char starts and ends of one side's tokens; status rows empty / -1."""
    words: list[str] = []
    starts = np.full(len(numbers), -1, dtype=np.int32)
    ends = np.full(len(numbers), -1, dtype=np.int32)
    start_list: list[int] = []
    end_list: list[int] = []
    for n, t in zip(numbers.tolist(), tokens.tolist()):
        if n < 0:
            words.append("")
        else:
            sentence = sentences[n]
            words.append(sentence.tokens[t])
            start_list.append(sentence.starts[t])
            end_list.append(sentence.ends[t])
    compared = numbers >= 0
    starts[compared] = start_list
    ends[compared] = end_list
    data, offsets = encode_strings(words)
    return data, offsets, starts, ends


def prepare(shard: InputShard, tokenize_many: TokenizeMany, preparers: Sequence[Preparer]) -> PreparedShard:
    """The CPU stage of one shard: everything the device stage needs, as arrays."""
    rows, sentences = plan_rows(shard, tokenize_many)
    sentence_1 = np.asarray(rows.sentence_1, dtype=np.int64)
    sentence_2 = np.asarray(rows.sentence_2, dtype=np.int64)
    token_1 = np.asarray(rows.token_1, dtype=np.int32)
    token_2 = np.asarray(rows.token_2, dtype=np.int32)
    compared = sentence_1 >= 0

    # one request per distinct (sentence, token): a word shared by many pairs is embedded once
    n = int(compared.sum())
    keys = np.concatenate([sentence_1[compared], sentence_2[compared]]) * (1 << 32) + np.concatenate(
        [token_1[compared], token_2[compared]]
    )
    unique, inverse = np.unique(keys, return_inverse=True)
    inverse = inverse.reshape(-1).astype(np.int64)
    request_sentence, request_token = unique >> 32, unique & ((1 << 32) - 1)
    model_inputs = {p.name: p.prepare(sentences, request_sentence, request_token) for p in preparers} if n else {}

    word_1, word_1_offsets, char_start_1, char_end_1 = _side(sentences, sentence_1, token_1)
    word_2, word_2_offsets, char_start_2, char_end_2 = _side(sentences, sentence_2, token_2)
    pair_ids, pair_id_offsets = encode_strings(shard.ids)
    return PreparedShard(
        shard_id=shard.shard_id,
        source_file=str(shard.file.path),
        first_row=shard.first_row,
        pairs=len(shard),
        pair_ids=pair_ids,
        pair_id_offsets=pair_id_offsets,
        pair_row=np.asarray(rows.pair_row, dtype=np.int64),
        sentence_1=sentence_1,
        sentence_2=sentence_2,
        token_1=token_1,
        token_2=token_2,
        char_start_1=char_start_1,
        char_end_1=char_end_1,
        char_start_2=char_start_2,
        char_end_2=char_end_2,
        word_1=word_1,
        word_1_offsets=word_1_offsets,
        word_2=word_2,
        word_2_offsets=word_2_offsets,
        row_status=np.asarray(rows.status, dtype=np.str_),
        request_1=inverse[:n],
        request_2=inverse[n:],
        model_inputs=model_inputs,
        requests=len(unique),
        kept=shard.kept,
    )
