"""Sentence -> tokens with character offsets (pure Python, no torch).

`flair` uses flair's default tokenizer (segtok, e.g. "couldn't" -> "could" "n't"),
so token lists match what `flair.data.Sentence(text)` produces; `whitespace`
splits on whitespace, for corpora that are already tokenized.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Literal

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


# flair's Sentence drops these and re-reads U+0080..U+0099 as Windows-1252 before
# tokenizing, then reports offsets into the cleaned text; we clean the same way but
# keep a map back to the caller's text, so offsets always index the original.
_FLAIR_DROPPED = frozenset("\u200c\u200b\ufe0f\ufeff\u2028\u2029")
_FLAIR_PROBLEM = re.compile("[\u200c\u200b\ufe0f\ufeff\u2028\u2029\u0080-\u0099]")


def _flair_clean(text: str) -> tuple[str, list[int]]:
    """flair's problem-character handling, plus each kept character's original position."""
    kept: list[str] = []
    origin: list[int] = []
    for position, char in enumerate(text):
        if char in _FLAIR_DROPPED:
            continue
        if "\u0080" <= char <= "\u0099":
            try:
                char = bytes([ord(char)]).decode("windows-1252")
            except UnicodeDecodeError:
                continue
        kept.append(char)
        origin.append(position)
    return "".join(kept), origin


def _segtok(text: str) -> list[str]:
    """flair's SegtokTokenizer.run_tokenize, calling segtok directly: tokenizer worker
    processes then never import flair (and torch) just to split words."""
    from segtok.segmenter import split_single
    from segtok.tokenizer import split_contractions, word_tokenizer

    words: list[str] = []
    for sentence in split_single(text):
        words.extend(split_contractions(word_tokenizer(sentence)))
    return [word for word in words if word]


def flair_tokenize(text: str) -> Tokenized:
    """The tokens `flair.data.Sentence(text)` makes, with offsets into `text` itself."""
    if _FLAIR_PROBLEM.search(text) is None:  # the usual case: nothing to clean, offsets are the text's
        clean, origin = text, None
    else:
        clean, origin = _flair_clean(text)
    words = _segtok(clean)
    starts, ends = [], []
    offset = 0
    for word in words:
        start = clean.index(word, offset)  # as flair locates tokens
        offset = start + len(word)
        starts.append(start)
        ends.append(offset)
    if origin is not None:
        starts = [origin[start] for start in starts]
        ends = [origin[end - 1] + 1 for end in ends]
    return Tokenized(text, tuple(words), tuple(starts), tuple(ends))


TokenizeMany = Callable[[Sequence[str]], list[Tokenized]]


def many(tokenize: Callable[[str], Tokenized]) -> TokenizeMany:
    """A one-sentence tokenizer as the list-in, list-out form the pipeline calls."""
    return lambda texts: [tokenize(text) for text in texts]


MAX_REMEMBERED_SENTENCES = 20_000  # ~20 MB; the memory starts over past it


def remembering(tokenize: Callable[[str], Tokenized], limit: int | None = None) -> TokenizeMany:
    """many(tokenize) that remembers recent sentences. Pair datasets repeat a sentence across
    many pairs (WiC's training pairs: 10,856 sentences, 6,334 distinct), and a piece deduplicates
    only its own: on WiC this halves the word tokenization a worker does."""
    memory: dict[str, Tokenized] = {}
    limit = limit or MAX_REMEMBERED_SENTENCES

    def tokenize_many(texts: Sequence[str]) -> list[Tokenized]:
        out = []
        for text in texts:
            found = memory.get(text)
            if found is None:
                if len(memory) >= limit:
                    memory.clear()
                found = memory[text] = tokenize(text)
            out.append(found)
        return out

    return tokenize_many


@cache
def get_tokenizer(name: TokenizerName) -> Callable[[str], Tokenized]:
    if name == "flair":
        return flair_tokenize
    if name == "whitespace":
        return whitespace_tokenize
    raise ValueError(f"unknown tokenizer {name!r}; choose one of {', '.join(TOKENIZERS)}")
