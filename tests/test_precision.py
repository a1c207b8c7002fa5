"""Reduced precision: the same rows and statuses as fp32, distances within the documented
tolerance, and what the hardware offers decides what a run may ask for."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from typer.testing import CliRunner

from batchembed import hardware
from batchembed.cli import app
from batchembed.config import EmbedOptions, TransformerSpec
from batchembed.embedders.precision import COSINE_TOLERANCE
from batchembed.embedders.transformer import TransformerEmbedder
from batchembed.hardware import CpuFeatures

runner = CliRunner()
KEYS = ["pair_id", "word_1", "word_2", "token_index_1", "token_index_2", "status"]
ZEN5 = CpuFeatures("AMD EPYC 9005", frozenset({"avx2", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni"}))
NO_BF16 = CpuFeatures("Intel Xeon E5-2680 v4", frozenset({"avx2"}))


@pytest.fixture
def tiny_models(tiny_glove_file: Path, tiny_bert_dir: Path) -> list[str]:
    return ["--glove", str(tiny_glove_file), "--transformer", str(tiny_bert_dir)]


@pytest.fixture
def pairs(tmp_path: Path) -> Path:
    """Shared words, a word with no vector in either model ('xq'), and a sentence longer than the
    tiny model's 64-position window (flair's strided windows)."""
    long = " ".join(["the river bank was dark"] * 16)
    path = tmp_path / "pairs.parquet"
    pq.write_table(
        pa.table(
            {
                "id": ["a", "b", "c", "d"],
                "sentence1": [
                    "The light in the room was too bright, and I couldn't read",
                    "she sat on the bank of the river",
                    long,
                    "xq was in the park",
                ],
                "sentence2": [
                    "She always radiates light and joy to everyone around her",
                    "he took money from the bank",
                    "the children ran to the river bank",
                    "xq ran to the school",
                ],
            }
        ),
        path,
    )
    return path


def features(monkeypatch: pytest.MonkeyPatch, found: CpuFeatures) -> None:
    monkeypatch.setattr(hardware, "cpu_features", lambda: found)


def run(pairs: Path, out: Path, tiny_models: list[str], *options: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, ["run", str(pairs), "-o", str(out), "--device", "cpu", *tiny_models, *options])


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_every_precision_gives_the_rows_and_statuses_of_fp32(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, pairs: Path, tiny_models: list[str], precision: str
) -> None:
    features(monkeypatch, ZEN5)  # bf16 runs natively here (the test machine need not have it)
    results = {}
    for p in ("fp32", precision):
        result = run(pairs, tmp_path / p, tiny_models, "--precision", p)
        assert result.exit_code == 0, result.output
        results[p] = pq.read_table(tmp_path / p).sort_by([("pair_id", "ascending"), ("token_index_1", "ascending")])
    exact, reduced = results["fp32"], results[precision]
    assert reduced.select(KEYS).to_pylist() == exact.select(KEYS).to_pylist()
    assert set(exact.column("status").to_pylist()) >= {"ok", "glove_oov"}  # the cases are really there
    for column in ("glove_euclidean", "glove_cosine"):  # GloVe never runs in reduced precision
        assert reduced.column(column).to_pylist() == exact.column(column).to_pylist()
    for column in ("bert_cosine", "bert_euclidean"):
        a = exact.column(column).to_numpy(zero_copy_only=False).astype(np.float64)
        b = reduced.column(column).to_numpy(zero_copy_only=False).astype(np.float64)
        assert np.array_equal(np.isnan(a), np.isnan(b))
        scale = 1.0 if column.endswith("cosine") else np.nanmax(np.abs(a))  # euclidean: relative to its size
        assert np.nanmax(np.abs(a - b)) <= COSINE_TOLERANCE[precision] * scale
    if precision == "bf16":  # not bit-identical: the reduced precision did run
        assert not np.array_equal(exact.column("bert_cosine").to_numpy(), reduced.column("bert_cosine").to_numpy())


def test_bf16_on_a_cpu_holds_the_weights_in_bf16_and_returns_fp32_vectors(
    monkeypatch: pytest.MonkeyPatch, tiny_bert_dir: Path
) -> None:
    from batchembed.tokenize import flair_tokenize

    features(monkeypatch, ZEN5)
    spec, cpu = TransformerSpec(str(tiny_bert_dir)), torch.device("cpu")
    reduced = TransformerEmbedder.load(spec, EmbedOptions(precision="bf16"), cpu)
    exact = TransformerEmbedder.load(spec, EmbedOptions(), cpu)
    assert {p.dtype for p in reduced.model.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in exact.model.parameters()} == {torch.float32}
    assert reduced.describe()["weights"] == "bfloat16" and reduced.describe()["autocast"] == "none"
    assert "weights" not in exact.describe()  # fp32 outputs keep the fingerprint they always had
    sentences = [flair_tokenize("the light in the room was too bright"), flair_tokenize("she saw the light")]
    index, token = np.array([0, 0, 1]), np.array([1, 4, 3])
    vectors = reduced.embed_tokens(sentences, index, token).vectors
    assert vectors.dtype == torch.float32
    cosine = 1 - torch.nn.functional.cosine_similarity(vectors, exact.embed_tokens(sentences, index, token).vectors)
    assert float(cosine.max()) <= COSINE_TOLERANCE["bf16"]


def test_bf16_on_a_cpu_without_bf16_instructions_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, pairs: Path, tiny_models: list[str]
) -> None:
    features(monkeypatch, NO_BF16)
    result = run(pairs, tmp_path / "out", tiny_models, "--precision", "bf16")
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines()[-1] == (
        "Error: --precision bf16: this CPU (Intel Xeon E5-2680 v4) has no bf16 instructions (AVX-512 bf16 or "
        "AMX), so bf16 would be emulated and run slower than fp32; leave --precision at fp32"
    )
    assert not (tmp_path / "out").exists()
    assert run(pairs, tmp_path / "fp32", tiny_models).exit_code == 0  # fp32 runs anywhere


def test_summary_and_metadata_record_cpu_features_precision_and_backend(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, pairs: Path, tiny_models: list[str]
) -> None:
    features(monkeypatch, ZEN5)
    result = run(pairs, tmp_path / "out", tiny_models, "--precision", "bf16", "-q")
    assert result.exit_code == 0, result.output
    expected = {
        "cpu": "AMD EPYC 9005",
        "cpu_features": "avx2 avx512f avx512_bf16 avx512_vnni avx_vnni",
        "precision": "bf16",
        "backend": "torch",
    }
    summary = json.loads((tmp_path / "out.batchembed" / "summary.json").read_text())
    assert summary["compute"] == expected
    from batchembed.io.schema import read_metadata

    metadata = read_metadata(pq.read_schema(next((tmp_path / "out").glob("*.parquet"))))
    assert metadata["compute"] == expected
    (bert,) = [m for m in metadata["models"] if m["kind"] == "transformer"]
    assert (bert["precision"], bert["weights"]) == ("bf16", "bfloat16")


@pytest.mark.parametrize(
    "found,options,hinted",
    [
        (ZEN5, [], True),
        (ZEN5, ["--precision", "bf16"], False),
        (ZEN5, ["-q"], False),  # cron: nothing but errors
        (NO_BF16, [], False),
    ],
)
def test_run_hints_once_at_a_faster_precision_the_cpu_offers(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    pairs: Path,
    tiny_models: list[str],
    found: CpuFeatures,
    options: list[str],
    hinted: bool,
) -> None:
    features(monkeypatch, found)
    result = run(pairs, tmp_path / "out", tiny_models, *options)
    assert result.exit_code == 0, result.output
    hints = [line for line in result.output.splitlines() if line.startswith("Hint:")]
    assert len(hints) == (1 if hinted else 0), result.output
    if hinted:
        assert "--precision bf16" in hints[0] and "avx512_bf16" in hints[0]


@pytest.mark.parametrize(
    "cpuinfo,model,flags,bf16",
    [
        (
            "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\n"
            "flags\t\t: fpu avx2 avx512f avx512_bf16 avx512_vnni amx_bf16 amx_tile amx_int8\n\n"
            "processor\t: 1\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\nflags\t\t: fpu avx2\n",
            "Intel(R) Xeon(R) Platinum 8480+",
            {"avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile", "amx_int8"},
            True,
        ),
        (
            "model name\t: AMD EPYC 7763\nflags\t\t: fpu avx2 avx512f avx_vnni\n",
            "AMD EPYC 7763",
            {"avx2", "avx512f", "avx_vnni"},
            False,
        ),
        ("processor\t: 0\nFeatures\t: fp asimd bf16 i8mm\n", None, {"bf16"}, True),  # aarch64 (Neoverse V1)
    ],
)
def test_cpu_features_from_proc_cpuinfo(cpuinfo: str, model: str | None, flags: set[str], bf16: bool) -> None:
    found = hardware.parse_cpuinfo(cpuinfo)
    assert found is not None
    assert model is None or found.model == model
    assert found.flags == flags and found.bf16 is bf16
    assert hardware.parse_cpuinfo("processor\t: 0\n") is None  # no flags: ask torch instead
