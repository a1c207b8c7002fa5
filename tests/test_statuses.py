"""`ok` means every distance is present and finite: zero, NaN and infinite vectors from any model
get their own status, never a silent distance."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from conftest import WORDS, FakeEmbedder, FakePreparer, write_csv
from conftest import cli_invoke as invoke

from batchembed import status
from batchembed.comparison import compare_sentences

ROOT = Path(__file__).resolve().parents[1]


def degenerate_glove(tmp_path: Path) -> Path:
    rng = np.random.default_rng(1)
    special = {"light": "0 " * 8, "room": "nan " * 8, "bright": "1 inf 0 0 0 0 0 0", "dark": "-inf " * 8}
    lines = [f"{w} {special[w]}" if w in special else " ".join([w, *map(str, rng.normal(size=8))]) for w in WORDS]
    path = tmp_path / "degenerate.txt"
    path.write_text("\n".join(line.strip() for line in lines) + "\n", encoding="utf-8")
    return path


def test_zero_and_non_finite_glove_vectors_get_their_own_status(tmp_path: Path, tiny_bert_dir: Path) -> None:
    src = write_csv(
        tmp_path / "pairs.csv",
        {
            "sentence1": ["the light", "the room", "too bright", "it was dark", "the bank", "xyzzy"],
            "sentence2": ["light", "a room", "bright", "dark", "a bank", "xyzzy"],
        },
    )
    out = tmp_path / "out"
    args = ["--glove", str(degenerate_glove(tmp_path)), "--transformer", str(tiny_bert_dir)]
    result = invoke("run", str(src), "-o", str(out), "--tokenizer", "whitespace", *args)
    assert result.exit_code == 0, result.output
    table = pq.read_table(out).to_pydict()
    by_word = dict(zip(table["word_1"], table["status"]))
    assert by_word["light"] == "glove_zero_vector"
    assert by_word["room"] == by_word["bright"] == by_word["dark"] == "glove_non_finite"
    assert by_word["bank"] == "ok" and by_word["xyzzy"] == "glove_oov"
    check_ok_means_finite(table, ["glove", "bert"])
    for i, word in enumerate(table["word_1"]):
        if word != "bank":  # no GloVe distance at all, and the transformer's are kept
            assert table["glove_euclidean"][i] is None and table["glove_cosine"][i] is None
            assert table["bert_euclidean"][i] is not None


def check_ok_means_finite(table: dict[str, list], models: list[str]) -> None:
    for i, value in enumerate(table["status"]):
        distances = [table[f"{m}_{metric}"][i] for m in models for metric in ("euclidean", "cosine")]
        complete = all(d is not None and math.isfinite(d) for d in distances)
        assert (value == "ok") == complete, (value, distances)


SPECIAL = {"zero": 0.0, "nan": np.nan, "inf": np.inf}


class DegeneratePreparer(FakePreparer):
    def prepare(self, sentences, sentence_index, token_index) -> dict:  # type: ignore[no-untyped-def]
        arrays = super().prepare(sentences, sentence_index, token_index)
        words = [sentences[s].tokens[t].lower() for s, t in zip(sentence_index.tolist(), token_index.tolist())]
        contexts = [sentences[s].text for s in sentence_index.tolist()]
        # a constant to fill the vector with, or NaN-coded "keep the hashed vector" as None -> flag
        fill = [
            SPECIAL.get(w, (3e38 if c.startswith("a") else -3e38) if w == "huge" else 1.0)
            for w, c in zip(words, contexts)
        ]
        arrays["fill"] = np.asarray(fill, dtype=np.float64)
        arrays["special"] = np.asarray([w in SPECIAL or w == "huge" for w in words], dtype=bool)
        return arrays


class DegenerateEmbedder(FakeEmbedder):
    """Contextual vectors, except 'zero' (zeros), 'nan' (NaN), 'inf' (infinite) and 'huge' (finite
    vectors whose distance overflows float32)."""

    def preparer(self) -> DegeneratePreparer:
        return DegeneratePreparer(self.name, self.contextual)

    def embed_prepared(self, arrays: dict[str, np.ndarray]):  # type: ignore[no-untyped-def]
        vectors = super().embed_prepared(arrays)
        for k in np.flatnonzero(arrays["special"]).tolist():
            vectors.vectors[k] = float(arrays["fill"][k])
        return vectors


@pytest.mark.parametrize(
    "word,expected",
    [
        ("zero", "ctx_zero_vector"),
        ("nan", "ctx_non_finite"),
        ("inf", "ctx_non_finite"),
        ("huge", "ctx_non_finite"),
        ("xenon", "static_oov;ctx_oov"),  # a missing vector is named before anything else
        ("fine", "ok"),
    ],
)
def test_any_model_degenerate_vectors(word: str, expected: str) -> None:
    embedders = [FakeEmbedder("static", contextual=False), DegenerateEmbedder("ctx")]
    table = compare_sentences(f"a {word} here", f"b {word} there", embedders, word, "whitespace").to_pydict()
    assert table["status"] == [expected]
    check_ok_means_finite(table, ["static", "ctx"])


def test_vector_problems_order() -> None:
    valid = np.array([True, False, True, True, False])
    zero = np.array([False, True, True, True, False])
    non_finite = np.array([False, True, True, False, False])
    reasons = status.vector_problems("oov", valid, zero, non_finite)
    assert reasons.tolist() == ["", "oov", "zero_vector", "zero_vector", "oov"]
    non_finite[0] = True
    assert status.vector_problems("oov", valid, zero, non_finite)[0] == "non_finite"


def test_transformer_non_finite_output_is_a_status(tiny_embedders: list) -> None:
    """A real transformer whose output is not finite (e.g. fp16 overflow): status, never ok."""
    transformer = tiny_embedders[1]
    original = transformer._pool

    def poisoned(hidden: torch.Tensor, *args: object) -> torch.Tensor:
        pooled = original(hidden, *args)
        return torch.full_like(pooled, float("nan"))

    transformer._pool = poisoned
    try:
        table = compare_sentences("the light", "light", tiny_embedders, None, "whitespace").to_pydict()
    finally:
        del transformer._pool
    name = transformer.name
    assert table["status"] == [f"{name}_non_finite"]
    assert table["glove_euclidean"][0] is not None and table[f"{name}_euclidean"][0] is None
