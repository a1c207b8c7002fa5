"""The shard pipeline on a fake deterministic embedder: rows, statuses, accounting, schema."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from batchembed import status
from batchembed.io.reader import InputFile, InputShard
from batchembed.io.schema import output_schema, read_metadata
from batchembed.io.sources import MALFORMED
from batchembed.stages.in_memory import process_shard
from batchembed.targets import TargetMode
from batchembed.tokenize import flair_tokenize, many, whitespace_tokenize


def shard(mode: TargetMode, s1: list, s2: list, targets: list | None = None) -> InputShard:
    return InputShard(
        file=InputFile(Path("pairs.csv"), "csv"),
        index=0,
        first_row=1,
        mode=mode,
        ids=[f"pairs.csv:{k + 1}" for k in range(len(s1))],
        sentence1=s1,
        sentence2=s2,
        targets=targets if targets is not None else [()] * len(s1),
    )


def run(embedders, sh: InputShard, tokenize=flair_tokenize) -> pa.Table:
    schema = output_schema([e.name for e in embedders])
    result = process_shard(sh, many(tokenize), embedders, schema)
    assert result.table.schema.equals(schema)
    return result.table


def test_schema_columns_and_types(fake_embedders) -> None:
    schema = output_schema(["glove", "bert"], {"tool": "batchembed"})
    expected = {
        "pair_id": pa.string(),
        "source_file": pa.string(),
        "source_row": pa.int64(),
        "word_1": pa.string(),
        "word_2": pa.string(),
        "token_index_1": pa.int32(),
        "token_index_2": pa.int32(),
        "char_start_1": pa.int32(),
        "char_end_1": pa.int32(),
        "char_start_2": pa.int32(),
        "char_end_2": pa.int32(),
        "glove_euclidean": pa.float32(),
        "glove_cosine": pa.float32(),
        "bert_euclidean": pa.float32(),
        "bert_cosine": pa.float32(),
        "status": pa.string(),
    }
    assert {f.name: f.type for f in schema} == expected
    assert read_metadata(schema) == {"tool": "batchembed"}


def test_static_model_distance_is_zero_contextual_is_not(fake_embedders) -> None:
    table = run(fake_embedders, shard(TargetMode.SHARED, ["The light was bright"], ["She likes light food"]))
    rows = table.to_pylist()
    assert [(r["word_1"], r["word_2"]) for r in rows] == [("light", "light")]
    assert rows[0]["static_euclidean"] == 0.0 and rows[0]["static_cosine"] == 0.0
    assert rows[0]["ctx_euclidean"] > 0 and rows[0]["ctx_cosine"] > 0
    assert rows[0]["status"] == status.OK
    assert (rows[0]["char_start_1"], rows[0]["char_end_1"], rows[0]["char_start_2"], rows[0]["char_end_2"]) == (
        4,
        9,
        10,
        15,
    )


def test_every_input_row_is_accounted_for_in_order(fake_embedders) -> None:
    s1 = ["a light b", None, "   ", "the x-ray", "same words", "nothing", 42, b"\xff\xfe", MALFORMED]
    s2 = ["light c", "ok", "fine", "the x-ray", "same words", "else", "text", "text", MALFORMED]
    table = run(fake_embedders, shard(TargetMode.SHARED, s1, s2))
    rows = table.to_pylist()
    assert sorted({r["source_row"] for r in rows}) == list(range(1, len(s1) + 1))
    assert [r["source_row"] for r in rows] == sorted(r["source_row"] for r in rows)
    by_row = {}
    for r in rows:
        by_row.setdefault(r["source_row"], []).append(r["status"])
    assert by_row[2] == [status.NULL_SENTENCE]
    assert by_row[3] == [status.EMPTY_SENTENCE]
    assert by_row[4] == [status.OK, "static_oov;ctx_oov"]  # words starting with x have no fake vector
    assert by_row[5] == [status.OK, status.OK]
    assert by_row[6] == [status.NO_SHARED_WORDS]
    assert by_row[7] == [status.INVALID_SENTENCE]
    assert by_row[8] == [status.INVALID_ENCODING]
    assert by_row[9] == [status.MALFORMED_RECORD]
    oov = [r for r in rows if r["status"] == "static_oov;ctx_oov"][0]
    assert oov["static_euclidean"] is None and oov["ctx_cosine"] is None  # null, never a fake 0


def test_status_rows_have_null_words_and_distances(fake_embedders) -> None:
    table = run(fake_embedders, shard(TargetMode.WORD, ["a b"], ["c d"], [("zzz",)]))
    (row,) = table.to_pylist()
    assert row["status"] == status.TARGET_NOT_FOUND
    assert all(row[c] is None for c in row if c not in ("pair_id", "source_file", "source_row", "status"))


def test_span_mode_and_index_mode_agree(fake_embedders) -> None:
    s1, s2 = "He sat on the bank .", "The bank was closed ."
    spans = run(fake_embedders, shard(TargetMode.SPANS, [s1], [s2], [(14, 18, 4, 8)]), whitespace_tokenize)
    indices = run(fake_embedders, shard(TargetMode.INDICES, [s1], [s2], [(4, 1)]), whitespace_tokenize)
    assert spans.to_pylist() == indices.to_pylist()
    assert spans.column("word_1").to_pylist() == ["bank"]


def test_duplicate_sentences_are_embedded_once(fake_embedders) -> None:
    from conftest import FakeEmbedder

    embedder = FakeEmbedder("only")
    run([embedder], shard(TargetMode.SHARED, ["the cat sat"] * 50, ["the cat ran"] * 50))
    # 2 distinct sentences x 2 shared words = 4 distinct token requests, however many rows
    assert embedder.stats.subword_tokens == 4
    assert embedder.calls == 1


def test_pipeline_with_tiny_real_models(tiny_embedders) -> None:
    table = run(
        tiny_embedders,
        shard(
            TargetMode.SHARED,
            ["The light in the room was too bright", "zorblax bank"],
            ["She always radiates light", "the zorblax bank"],
        ),
    )
    rows = {(r["source_row"], r["word_1"]): r for r in table.to_pylist()}
    light = rows[(1, "light")]
    assert light["glove_euclidean"] == 0.0 and light["bert_euclidean"] > 0
    zorblax = rows[(2, "zorblax")]
    assert zorblax["status"] == "glove_oov" and zorblax["glove_cosine"] is None
    assert zorblax["bert_cosine"] is not None and np.isfinite(zorblax["bert_cosine"])


@pytest.mark.parametrize("budget", [8, 64, 10_000])
def test_output_identical_whatever_the_token_budget(tiny_bert_dir, budget: int) -> None:
    import torch

    from batchembed.config import EmbedOptions, TransformerSpec
    from batchembed.embedders.transformer import TransformerEmbedder

    words = [
        "the",
        "light",
        "in",
        "the",
        "room",
        "was",
        "bright",
        "and",
        "she",
        "always",
        "radiates",
        "joy",
        "to",
        "everyone",
        "around",
        "her",
    ]
    rng = np.random.default_rng(3)
    s1 = [" ".join(rng.choice(words, rng.integers(2, 30))) for _ in range(40)]
    s2 = [" ".join(rng.choice(words, rng.integers(2, 30))) for _ in range(40)]
    reference_embedder = TransformerEmbedder.load(
        TransformerSpec(str(tiny_bert_dir)), EmbedOptions(token_budget=100_000), torch.device("cpu")
    )
    embedder = TransformerEmbedder.load(
        TransformerSpec(str(tiny_bert_dir)), EmbedOptions(token_budget=budget), torch.device("cpu")
    )
    reference = run([reference_embedder], shard(TargetMode.SHARED, s1, s2))
    got = run([embedder], shard(TargetMode.SHARED, s1, s2))
    assert got.drop_columns(["bert_euclidean", "bert_cosine"]).equals(
        reference.drop_columns(["bert_euclidean", "bert_cosine"])
    )
    for column in ("bert_euclidean", "bert_cosine"):
        np.testing.assert_allclose(
            got.column(column).to_numpy(), reference.column(column).to_numpy(), rtol=1e-5, atol=1e-5
        )
