"""The batched fast paths against flair's own `embed()` on the same sentences."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from flair.data import Sentence

from batchembed.config import EmbedOptions, GloveSpec, TransformerSpec
from batchembed.embedders.glove import GloveEmbedder
from batchembed.embedders.transformer import TransformerEmbedder
from batchembed.tokenize import flair_tokenize

SENTENCES = [
    "The light in the room was too bright, and I couldn't read",
    "She always radiates light and joy to everyone around her",
    "bank",
    "Children play in the park after school; the zorblax watched.",
    "He walked past the river bank, 42 times in 2019!",
    "unbelievably overcomplicated antidisestablishmentarianism",
]
# longer than the tiny model's 64-subword window: exercises flair's strided windows
LONG = " ".join(["the children play in the park after school"] * 12)


def flair_reference(embeddings, texts: list[str]) -> list[torch.Tensor]:
    """Per-token vectors exactly as a flair user gets them: Sentence(text) + embed()."""
    sentences = [Sentence(t) for t in texts]
    embeddings.embed(sentences)
    return [torch.stack([tok.get_embedding([embeddings.name]) for tok in s]) for s in sentences]


def all_tokens(texts: list[str]):
    tokenized = [flair_tokenize(t) for t in texts]
    s_idx = np.concatenate([np.full(len(t), i) for i, t in enumerate(tokenized)])
    t_idx = np.concatenate([np.arange(len(t)) for t in tokenized])
    return tokenized, s_idx, t_idx


@pytest.mark.parametrize("pooling", ["first", "last", "first_last", "mean"])
@pytest.mark.parametrize("layers,layer_mean", [("-1", True), ("-1,-2", True), ("all", False)])
@pytest.mark.parametrize("budget", [16, 200, 100_000])
def test_transformer_fast_path_equals_flair_embed(
    tiny_bert_dir: Path, pooling: str, layers: str, layer_mean: bool, budget: int
) -> None:
    spec = TransformerSpec(str(tiny_bert_dir), "bert", layers, layer_mean, pooling)
    embedder = TransformerEmbedder.load(spec, EmbedOptions(token_budget=budget), torch.device("cpu"))
    texts = [*SENTENCES, LONG]
    tokenized, s_idx, t_idx = all_tokens(texts)
    # shuffle the requests: results must come back in request order
    order = np.random.default_rng(1).permutation(len(s_idx))
    got = embedder.embed_tokens(tokenized, s_idx[order], t_idx[order])
    reference = torch.cat(flair_reference(embedder.flair, texts))[torch.from_numpy(order)]
    assert got.vectors.shape == reference.shape
    torch.testing.assert_close(got.vectors, reference, rtol=1e-5, atol=1e-5)
    assert got.valid.all()
    assert embedder.stats.long_sentences == 1


@pytest.mark.parametrize("pooling", ["first", "mean", "first_last"])
@pytest.mark.parametrize("layers", ["-1", "-2", "-3,-1", "0", "all"])
@pytest.mark.parametrize("share", [0.05, 0.3, 1.0])
def test_partial_top_layer_equals_flair_on_token_subsets(
    tiny_bert_dir: Path, pooling: str, layers: str, share: float
) -> None:
    """The top chosen layer runs only where vectors are read: any subset of tokens
    still gets flair's vectors, and the full forward gives the same."""
    spec = TransformerSpec(str(tiny_bert_dir), "bert", layers, True, pooling)
    embedder = TransformerEmbedder.load(spec, EmbedOptions(token_budget=200), torch.device("cpu"))
    assert embedder.partial
    texts = [*SENTENCES, LONG, "a b", "light"]
    tokenized, s_idx, t_idx = all_tokens(texts)
    rng = np.random.default_rng(int(share * 100) + len(layers))
    keep = np.flatnonzero(rng.random(len(s_idx)) < share)
    keep = np.union1d(keep, [0])  # never empty
    got = embedder.embed_tokens(tokenized, s_idx[keep], t_idx[keep])
    reference = torch.cat(flair_reference(embedder.flair, texts))[torch.from_numpy(keep)]
    torch.testing.assert_close(got.vectors, reference, rtol=1e-5, atol=1e-5)
    embedder.partial = False
    full = embedder.embed_tokens(tokenized, s_idx[keep], t_idx[keep])
    torch.testing.assert_close(got.vectors, full.vectors, rtol=1e-5, atol=1e-5)


def test_transformer_marks_tokens_without_subwords(tiny_bert_dir: Path) -> None:
    """flair hands back a zero vector for a token with no subwords; we say 'no vector'."""
    from batchembed.tokenize import whitespace_tokenize

    embedder = TransformerEmbedder.load(TransformerSpec(str(tiny_bert_dir)), EmbedOptions(), torch.device("cpu"))
    sentence = whitespace_tokenize("light \u200b bright")  # a zero-width space alone is a token
    got = embedder.embed_tokens([sentence], np.zeros(3, dtype=np.int64), np.arange(3))
    assert got.valid.tolist() == [True, False, True]
    # flair itself silently gives zeros there:
    flair_sentence = Sentence(["light", "\u200b", "bright"])
    embedder.flair.embed(flair_sentence)
    assert torch.count_nonzero(flair_sentence[1].get_embedding([embedder.name])) == 0


def test_glove_lookup_equals_flair_embed(tiny_glove_file: Path) -> None:
    embedder = GloveEmbedder.load(GloveSpec(str(tiny_glove_file)), torch.device("cpu"))
    texts = [*SENTENCES, "THE Light"]
    tokenized, s_idx, t_idx = all_tokens(texts)
    got = embedder.embed_tokens(tokenized, s_idx, t_idx)
    reference = torch.cat(flair_reference(embedder.flair, texts))
    torch.testing.assert_close(got.vectors, reference, rtol=0, atol=0)
    # out-of-vocabulary tokens: flair gives zeros, we flag them
    words = [tokenized[s].tokens[t] for s, t in zip(s_idx, t_idx)]
    in_vocab = [embedder.flair.get_cached_token_index(w) != embedder.unknown_row for w in words]
    assert got.valid.tolist() == in_vocab
    assert not all(in_vocab) and any(in_vocab)
    assert torch.count_nonzero(reference[~got.valid]) == 0


def test_glove_npy_directory(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    matrix = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.save(tmp_path / "emb.npy", matrix)
    pq.write_table(pa.table({"index": ["a", "b", "c"]}), tmp_path / "vocab.parquet")
    embedder = GloveEmbedder.load(GloveSpec(str(tmp_path)), torch.device("cpu"))
    got = embedder.embed_tokens([flair_tokenize("c a zz")], np.zeros(3, dtype=np.int64), np.arange(3))
    assert got.vectors[:2].tolist() == [matrix[2].tolist(), matrix[0].tolist()]
    assert got.valid.tolist() == [True, True, False]


def test_empty_request(tiny_embedders) -> None:
    for embedder in tiny_embedders:
        got = embedder.embed_tokens([], np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
        assert got.vectors.shape == (0, embedder.dim)


def test_out_of_memory_halves_the_budget_and_loses_nothing(tiny_bert_dir: Path, monkeypatch) -> None:
    """A batch over 3 rows 'runs out of memory': it is split and retried, same vectors."""
    spec = TransformerSpec(str(tiny_bert_dir))
    texts = SENTENCES * 3
    tokenized, s_idx, t_idx = all_tokens(texts)
    reference = TransformerEmbedder.load(spec, EmbedOptions(token_budget=100_000), torch.device("cpu"))
    expected = reference.embed_tokens(tokenized, s_idx, t_idx)

    embedder = TransformerEmbedder.load(spec, EmbedOptions(token_budget=100_000), torch.device("cpu"))
    real_run_batch = embedder._run_batch
    seen_rows: list[int] = []

    def flaky_run_batch(ids, *read_positions):
        if len(ids) > 3:
            raise torch.cuda.OutOfMemoryError("simulated")
        seen_rows.append(len(ids))
        return real_run_batch(ids, *read_positions)

    monkeypatch.setattr(embedder, "_run_batch", flaky_run_batch)
    got = embedder.embed_tokens(tokenized, s_idx, t_idx)
    torch.testing.assert_close(got.vectors, expected.vectors, rtol=1e-5, atol=1e-5)
    assert embedder.stats.oom_retries >= 1 and embedder.token_budget < 100_000
    assert sum(seen_rows) == len(texts)  # every sentence embedded exactly once (the pipeline dedups)


def test_preparer_encodes_as_flairs_tokenizer_call_and_pickles(tiny_bert_dir: Path) -> None:
    """The prepare workers' subword ids are those of the tokenizer call flair makes."""
    import pickle

    embedder = TransformerEmbedder.load(TransformerSpec(str(tiny_bert_dir)), EmbedOptions(), torch.device("cpu"))
    tokenized, s_idx, t_idx = all_tokens([*SENTENCES, LONG])
    preparer = pickle.loads(pickle.dumps(embedder.preparer()))
    arrays = preparer.prepare(tokenized, s_idx, t_idx)
    expected = embedder.tokenizer(
        [list(t.tokens) for t in tokenized], is_split_into_words=True, truncation=False, verbose=False
    )["input_ids"]
    assert arrays["lengths"].tolist() == [len(ids) for ids in expected]
    assert arrays["input_ids"].tolist() == [i for ids in expected for i in ids]
    assert arrays["long_word_counts"].tolist() == [0] * len(SENTENCES) + [len(tokenized[-1])]
