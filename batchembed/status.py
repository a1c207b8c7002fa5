"""The `status` column's vocabulary: why a row has null distances.

Row-level statuses describe an input pair that produced no comparison (its one
output row has null words and distances). Model-level statuses are built as
`<model>_<reason>` (e.g. `glove_oov`, `bert_no_subwords`) and joined with `;`
when several models lack a vector for the same comparison.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

OK = "ok"

# The pair itself is unusable: counted as *bad rows* (exit code 6, --max-bad-rows).
NULL_SENTENCE = "null_sentence"  # sentence1 or sentence2 is null / missing
EMPTY_SENTENCE = "empty_sentence"  # empty or whitespace-only, or no tokens at all
INVALID_ENCODING = "invalid_encoding"  # CSV bytes that are not valid UTF-8
INVALID_SENTENCE = "invalid_sentence"  # a non-text value (e.g. a number) in a sentence column
MALFORMED_RECORD = "malformed_record"  # a CSV record with the wrong field count, or where a runaway quote starts
UNREADABLE_ROW_GROUP = "unreadable_row_group"  # a row of a Parquet row group that cannot be decoded
INVALID_TARGET = "invalid_target"  # a span/index value is null, not an integer, or negative
SPAN_OUT_OF_RANGE = "span_out_of_range"  # span or token index past the sentence's end
SPAN_NOT_ON_TOKEN_BOUNDARY = "span_not_on_token_boundary"  # span cuts through a token
SPAN_MULTIPLE_TOKENS = "span_multiple_tokens"  # span covers more than one token

BAD_ROW_STATUSES = frozenset(
    {
        NULL_SENTENCE,
        EMPTY_SENTENCE,
        INVALID_ENCODING,
        INVALID_SENTENCE,
        MALFORMED_RECORD,
        UNREADABLE_ROW_GROUP,
        INVALID_TARGET,
        SPAN_OUT_OF_RANGE,
        SPAN_NOT_ON_TOKEN_BOUNDARY,
        SPAN_MULTIPLE_TOKENS,
    }
)

# The pair is fine but there is nothing to compare: a legitimate outcome.
TARGET_NOT_FOUND = "target_not_found"  # word/word1/word2 not among the sentence's tokens
NO_SHARED_WORDS = "no_shared_words"  # shared-word mode: the sentences share no word

# Per-model reasons (prefixed with the model's name).
REASON_OOV = "oov"  # GloVe: word not in the vocabulary (flair would return a zero vector)
REASON_NO_SUBWORDS = "no_subwords"  # transformer: the tokenizer produced no subword for the token
REASON_ZERO_VECTOR = "zero_vector"  # any model: a vector of zeros has no direction, so no distance
REASON_NON_FINITE = "non_finite"  # any model: a vector or a distance is NaN or infinite


def model_status(model_name: str, reason: str) -> str:
    return f"{model_name}_{reason}"


def vector_problems(missing_reason: str, valid: np.ndarray, zero: np.ndarray, non_finite: np.ndarray) -> np.ndarray:
    """Per compared pair, why one model has no distances ('' where it has them all, finite).

    `valid`: both vectors exist; `zero`: either is all zeros; `non_finite`: either vector or any
    distance is NaN or infinite. A missing vector is named first, then a zero one (whose cosine is NaN
    by nature), then a non-finite one.
    """
    reasons = np.full(len(valid), "", dtype=object)
    reasons[non_finite] = REASON_NON_FINITE
    reasons[zero] = REASON_ZERO_VECTOR
    reasons[~valid] = missing_reason
    return reasons


def is_bad_row(status: str) -> bool:
    return status in BAD_ROW_STATUSES


def bad_rows(counts: Mapping[str, int]) -> int:
    """Rows counted as bad (--max-bad-rows) among status counts."""
    return sum(n for s, n in counts.items() if is_bad_row(s))
