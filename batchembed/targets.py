"""Decide which token pairs of a sentence pair to compare (pure Python, no torch).

Four target modes, chosen per input file by which columns it has, in this
precedence: character spans, token indices, two target words, one target word,
and otherwise every word the two sentences share. Each resolver returns either
a list of (token_index_1, token_index_2) pairs or a status string saying why
there is nothing to compare.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from enum import Enum
from typing import Any

from batchembed import status
from batchembed.tokenize import Tokenized

Resolution = list[tuple[int, int]] | str


class TargetMode(str, Enum):
    SPANS = "spans"  # start1, end1, start2, end2: character offsets (SuperGLUE WiC)
    INDICES = "indices"  # index1, index2: token positions (pre-tokenized corpora, WiC)
    WORDS = "words"  # word1, word2: a different target word in each sentence
    WORD = "word"  # word: the same target word in both sentences
    SHARED = "shared"  # nothing given: every word type both sentences share


def as_int(value: Any) -> int | None:
    """A non-negative integer from a CSV/Parquet cell, or None if it is not one."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float):
        return int(value) if value.is_integer() and value >= 0 else None
    if isinstance(value, str):
        text = value.strip()
        if text.isascii() and text.isdigit():
            return int(text)
    return None


def fold(word: str) -> str:
    """Case-insensitive comparison key (casefold handles e.g. German sharp s)."""
    return word.casefold()


# a word has a letter or digit: shared mode skips punctuation-only and symbol-only tokens
_ALNUM = re.compile(r"[^\W_]")  # CPython's \w is isalnum() or '_': so this is exactly isalnum()


def span_to_token(sentence: Tokenized, start: Any, end: Any) -> int | str:
    """The one token whose character offsets are exactly [start, end)."""
    begin, stop = as_int(start), as_int(end)
    if begin is None or stop is None or stop <= begin:
        return status.INVALID_TARGET
    if stop > len(sentence.text):
        return status.SPAN_OUT_OF_RANGE
    covered = [i for i, (s, e) in enumerate(zip(sentence.starts, sentence.ends)) if s < stop and e > begin]
    if not covered:
        return status.SPAN_NOT_ON_TOKEN_BOUNDARY
    first, last = covered[0], covered[-1]
    if sentence.starts[first] != begin or sentence.ends[last] != stop:
        return status.SPAN_NOT_ON_TOKEN_BOUNDARY
    if first != last:
        return status.SPAN_MULTIPLE_TOKENS
    return first


def index_to_token(sentence: Tokenized, index: Any) -> int | str:
    position = as_int(index)
    if position is None:
        return status.INVALID_TARGET
    if position >= len(sentence):
        return status.SPAN_OUT_OF_RANGE
    return position


def occurrences(sentence: Tokenized, word: Any) -> list[int] | str:
    if not isinstance(word, str) or not word.strip():
        return status.INVALID_TARGET
    key = fold(word.strip())
    found = [i for i, token in enumerate(sentence.tokens) if fold(token) == key]
    return found if found else status.TARGET_NOT_FOUND


def _pair_up(first: int | list[int] | str, second: int | list[int] | str) -> Resolution:
    for side in (first, second):
        if isinstance(side, str):
            return side
    left = [first] if isinstance(first, int) else first
    right = [second] if isinstance(second, int) else second
    assert isinstance(left, list) and isinstance(right, list)
    return [(i, j) for i in left for j in right]


def shared_words(s1: Tokenized, s2: Tokenized, skip: frozenset[str] = frozenset()) -> Resolution:
    """Every occurrence pair of the word types both sentences hold; punctuation-only tokens and
    the casefolded words in `skip` (--skip-stopwords) left out."""
    positions: defaultdict[str, list[int]] = defaultdict(list)
    search = _ALNUM.search  # the hot loop of a shared-words run: no calls but these
    for j, token in enumerate(s2.tokens):
        if search(token) is not None:
            positions[token.casefold()].append(j)  # fold()
    for word in skip.intersection(positions) if skip else ():
        del positions[word]
    # every occurrence pair, in order of the first sentence's tokens
    get = positions.get
    pairs = [(i, j) for i, token in enumerate(s1.tokens) for j in get(token.casefold(), ())]
    return pairs if pairs else status.NO_SHARED_WORDS


def resolve(mode: TargetMode, s1: Tokenized, s2: Tokenized, target: Sequence[Any]) -> Resolution:
    """Token pairs to compare for one sentence pair, or the status explaining why none.

    `target` holds the row's raw target cells in the order of the mode's columns.
    """
    if mode is TargetMode.SPANS:
        start1, end1, start2, end2 = target
        return _pair_up(span_to_token(s1, start1, end1), span_to_token(s2, start2, end2))
    if mode is TargetMode.INDICES:
        index1, index2 = target
        return _pair_up(index_to_token(s1, index1), index_to_token(s2, index2))
    if mode is TargetMode.WORDS:
        word1, word2 = target
        return _pair_up(occurrences(s1, word1), occurrences(s2, word2))
    if mode is TargetMode.WORD:
        (word,) = target
        return _pair_up(occurrences(s1, word), occurrences(s2, word))
    return shared_words(s1, s2, target[0] if target else frozenset())
