"""Subword ids of pre-split sentences, and where each word's subwords lie, as flat arrays.

A fast tokenizer given pre-split words (as flair calls it) normalizes, pre-tokenizes and
encodes each word on its own (tokenizers' encode_single_sequence); only the post-processor
looks at the whole sentence, to add its special tokens. So a sentence's ids are
`prefix + ids(word_1) + ... + ids(word_n) + suffix`, and a word seen before needs no work:
WordEncoder encodes each distinct word once and builds sentences by concatenation in
numpy. Natural text repeats its words (a 1,024-pair piece has ~60,000 words, a few
thousand distinct), so this costs a fraction of encoding every sentence (BENCHMARKS.md).

Whether a tokenizer is word-local is checked, not assumed: at start-up a probe of varied
sentences (punctuation, accents, CJK, emoji, special-token text, characters normalizers
drop, over-long words) must give exactly encode_batch's ids and word positions; a
tokenizer that fails it is encoded a sentence at a time by encode_batch.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

MAX_CACHED_WORDS = 200_000  # ~40 MB a worker; the cache starts over past it

PROBE = [
    ["Hello", ",", "world", "!"],
    ["The", "bank", "of", "the", "river", "was", "steep", "."],
    ["I", "ca", "n't", "believe", "it", "'s", "not", "butter", "..."],
    ["Über", "naïve", "café", "façade", "—", "Straße", "ǅ"],
    ["北京", "是", "中国", "的", "首都", "。"],
    ["emoji", "🙂", "👍🏽", "and", "\u200b", "zero", "width", "\u00ad"],
    ["[MASK]", "[CLS]", "[SEP]", "<s>", "</s>", "<unk>", "[UNK]"],
    ["x" * 150, "supercalifragilisticexpialidocious", "antidisestablishmentarianism"],
    ["3.14", "1,000", "$", "5", "%", "e-mail", "co-operate", "U.S.A."],
    ["UPPER", "lower", "MiXeD", "İstanbul", "ΣΊΣΥΦΟΣ"],
    ["tab\tinside", "new\nline", "  spaced  ", "\x00", "\x7f"],
    ["a"],
    ["word"] * 5,
]


@dataclass
class Encoded:
    """Subword ids of S sentences and, per word, its first and last subword position."""

    ids: np.ndarray  # int32: every sentence's ids, special tokens included, concatenated
    lengths: np.ndarray  # int64 [S]
    first: np.ndarray  # int64 [words]: position in its sentence, -1 if the word has no subword
    last: np.ndarray  # int64 [words]
    word_offsets: np.ndarray  # int64 [S + 1]: sentence s's words are first[word_offsets[s]:...]


class WordEncoder:
    """encode_batch(sentences, is_pretokenized=True) as arrays, a distinct word encoded once
    where the tokenizer allows it (word_local)."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self._cache: dict[str, list[int]] = {}
        self.prefix, self.suffix = self._special_tokens()
        self.word_local = self._passes_probe()
        if not self.word_local:
            log.info("this tokenizer does not encode words independently: encoding whole sentences")

    def encode(self, sentences: Sequence[Sequence[str]]) -> Encoded:
        if self.word_local:
            return self._from_words(sentences)
        return self._from_sentences(sentences)

    # -- the two ways -------------------------------------------------------------------------

    def _from_sentences(self, sentences: Sequence[Sequence[str]]) -> Encoded:
        encodings = self.backend.encode_batch([list(s) for s in sentences], is_pretokenized=True)
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
        ids = np.fromiter(chain.from_iterable(e.ids for e in encodings), dtype=np.int32, count=int(lengths.sum()))
        word_ids = np.fromiter(
            (-1 if w is None else w for w in chain.from_iterable(e.word_ids for e in encodings)),
            dtype=np.int64,
            count=len(ids),
        )
        word_offsets = _offsets([len(s) for s in sentences])
        has_word = word_ids >= 0
        sentence_of = np.repeat(np.arange(len(sentences)), lengths)
        position = np.arange(len(ids)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        key = word_offsets[sentence_of[has_word]] + word_ids[has_word]
        pos = position[has_word]
        first = np.full(int(word_offsets[-1]), -1, dtype=np.int64)
        last = np.full(int(word_offsets[-1]), -1, dtype=np.int64)
        first[key[::-1]] = pos[::-1]  # assignments go in order: reversed leaves the first position
        last[key] = pos
        return Encoded(ids, lengths, first, last, word_offsets)

    def _from_words(self, sentences: Sequence[Sequence[str]]) -> Encoded:
        if not sentences:
            return self._from_sentences(sentences)
        cache = self._cache
        new = list({w: None for s in sentences for w in s if w not in cache})
        if new:
            if len(cache) + len(new) > MAX_CACHED_WORDS:
                cache.clear()
                new = list({w: None for s in sentences for w in s})
            encodings = self.backend.encode_batch([[w] for w in new], is_pretokenized=True, add_special_tokens=False)
            cache.update(zip(new, (e.ids for e in encodings)))
        per_word = [cache[w] for s in sentences for w in s]
        counts = np.fromiter(map(len, per_word), dtype=np.int64, count=len(per_word))
        body = np.fromiter(chain.from_iterable(per_word), dtype=np.int32, count=int(counts.sum()))

        word_offsets = _offsets([len(s) for s in sentences])
        n_prefix, n_suffix = len(self.prefix), len(self.suffix)
        ends = np.cumsum(counts)  # subwords before each word's end, over all sentences
        body_before = np.concatenate([[0], ends])[word_offsets]  # [S + 1]: body subwords before sentence s
        body_lengths = np.diff(body_before)
        lengths = body_lengths + n_prefix + n_suffix
        out_starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)

        ids = np.empty(int(lengths.sum()), dtype=np.int32)
        for k, token in enumerate(self.prefix):
            ids[out_starts + k] = token
        for k, token in enumerate(self.suffix):
            ids[out_starts + lengths - n_suffix + k] = token
        sentence_of_body = np.repeat(np.arange(len(sentences)), body_lengths)
        ids[np.arange(len(body)) + (out_starts + n_prefix - body_before[:-1])[sentence_of_body]] = body

        sentence_of_word = np.repeat(np.arange(len(sentences)), np.diff(word_offsets))
        first = ends - counts - body_before[:-1][sentence_of_word] + n_prefix
        last = first + counts - 1
        empty = counts == 0
        first[empty] = -1
        last[empty] = -1
        return Encoded(ids, lengths, first, last, word_offsets)

    # -- what the tokenizer does ------------------------------------------------------------

    def _special_tokens(self) -> tuple[list[int], list[int]]:
        """The ids the post-processor puts before and after a sentence's words."""
        with_specials = self.backend.encode(["a"], is_pretokenized=True).ids
        word = self.backend.encode(["a"], is_pretokenized=True, add_special_tokens=False).ids
        for k in range(len(with_specials) - len(word) + 1):
            if with_specials[k : k + len(word)] == word:
                return with_specials[:k], with_specials[k + len(word) :]
        return [], []  # no such shape: the probe fails and whole sentences are encoded

    def _passes_probe(self) -> bool:
        try:
            expected = self._from_sentences(PROBE)
            got = self._from_words(PROBE)
        except Exception as error:  # noqa: BLE001 - any failure means: do not take the shortcut
            log.debug("word-local probe failed: %s", error)
            return False
        finally:
            self._cache.clear()
        return all(
            np.array_equal(getattr(expected, name), getattr(got, name))
            for name in ("ids", "lengths", "first", "last", "word_offsets")
        )


def _offsets(sizes: Sequence[int]) -> np.ndarray:
    offsets = np.zeros(len(sizes) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    return offsets
