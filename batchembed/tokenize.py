"""Sentence -> tokens with character offsets (pure Python, no torch).

`flair` uses flair's default tokenizer (segtok, e.g. "couldn't" -> "could" "n't"),
so token lists match what `flair.data.Sentence(text)` produces; `whitespace`
splits on whitespace, for corpora that are already tokenized.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Literal

TokenizerName = Literal["flair", "whitespace"]
TOKENIZERS: tuple[TokenizerName, ...] = ("flair", "whitespace")

_NON_SPACE = re.compile(r"\S+")


@dataclass(frozen=True, slots=True)
class Tokenized:
    """A sentence's tokens and their [start, end) character offsets in `text`."""

    text: str
    tokens: tuple[str, ...]
    starts: tuple[int, ...]
    ends: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.tokens)


def whitespace_tokenize(text: str) -> Tokenized:
    matches = list(_NON_SPACE.finditer(text))
    return Tokenized(
        text,
        tuple(m.group() for m in matches),
        tuple(m.start() for m in matches),
        tuple(m.end() for m in matches),
    )


def flair_tokenize(text: str) -> Tokenized:
    from flair.data import Sentence

    sentence = Sentence(text)
    tokens = sentence.tokens
    return Tokenized(
        text,
        tuple(t.text for t in tokens),
        tuple(t.start_position for t in tokens),
        tuple(t.end_position for t in tokens),
    )


@lru_cache(maxsize=None)
def get_tokenizer(name: TokenizerName) -> Callable[[str], Tokenized]:
    if name == "flair":
        return flair_tokenize
    if name == "whitespace":
        return whitespace_tokenize
    raise ValueError(f"unknown tokenizer {name!r}; choose one of {', '.join(TOKENIZERS)}")
