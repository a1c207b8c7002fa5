"""Issue 10, "nothing wrong is ever written silently": each class of defect, several variants.

CLI tests assert the exit code and the exact one-line message; models are the tiny ones of conftest.py.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import torch
from conftest import WORDS, FakeEmbedder, FakePreparer, state_dir
from typer.testing import CliRunner

from batchembed import status
from batchembed.cli import INTERRUPTED, app
from batchembed.comparison import compare_sentences
from batchembed.io.manifest import differences

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]


def invoke(*args: str, **env: str):
    return runner.invoke(app, list(args), env=env or None)


def error_line(result) -> str:
    """The one `Error:` line, checked to be the only one and not to follow a traceback."""
    lines = result.output.strip().splitlines()
    assert "Traceback" not in result.output, result.output
    errors = [line for line in lines if line.startswith("Error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.output
    return errors[0]


def write_csv(path: Path, columns: dict[str, list]) -> Path:
    pacsv.write_csv(pa.table(columns), path)
    return path


@pytest.fixture
def pairs(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "pairs.csv", {"sentence1": ["the light was bright"], "sentence2": ["she saw light"]})


@pytest.fixture
def tiny_models(tiny_glove_file: Path, tiny_bert_dir: Path) -> list[str]:
    return ["--glove", str(tiny_glove_file), "--transformer", str(tiny_bert_dir)]


# -- 1. model options are checked against the loaded model ----------------------------------------


@pytest.mark.parametrize("layers,wrong", [("3", 3), ("-4", -4), ("99", 99), ("-99", -99), ("-1,5", 5), ("0,-1,-7", -7)])
@pytest.mark.parametrize("command", ["run", "compare"])
def test_layers_the_model_lacks_are_usage_errors(
    tmp_path: Path, pairs: Path, tiny_models: list[str], tiny_bert_dir: Path, layers: str, wrong: int, command: str
) -> None:
    """The tiny model has 2 layers: hidden states -3..2. Nothing wraps around, nothing is written."""
    args = ["run", str(pairs), "-o", str(tmp_path / "out")] if command == "run" else ["compare", "a light", "light"]
    result = invoke(*args, *tiny_models, f"--layers={layers}")
    assert result.exit_code == 2, result.output
    assert error_line(result) == (
        f"Error: --layers {layers}: layer {wrong} does not exist in {tiny_bert_dir}, which has 2 layers; "
        "give layers from -3 to 2 (0 or -3 is the embedding layer) or 'all'"
    )
    assert not (tmp_path / "out").exists()


def test_layers_are_checked_before_a_long_sentence(tmp_path: Path, tiny_models: list[str]) -> None:
    """Past the 64-subword window flair's own path used to fail with IndexError (exit 1)."""
    long = " ".join(["light"] * 200)
    src = write_csv(tmp_path / "long.csv", {"sentence1": [long], "sentence2": ["light"]})
    result = invoke("run", str(src), "-o", str(tmp_path / "out"), *tiny_models, "--layers", "7")
    assert result.exit_code == 2 and "--layers 7: layer 7 does not exist" in error_line(result)
    result = invoke("run", str(src), "-o", str(tmp_path / "ok"), *tiny_models, "--layers=-3,2")
    assert result.exit_code == 0, result.output


def test_boundary_layers_are_the_layers_they_name(tiny_models: list[str]) -> None:
    """-3 is the embedding layer (0), -1 the top one (2): valid, and the same numbers."""
    outputs = {}
    for layers in ("-3", "0", "-1", "2"):
        result = invoke("compare", "the light was bright", "she saw the light", *tiny_models, f"--layers={layers}")
        assert result.exit_code == 0, result.output
        outputs[layers] = result.output
    assert outputs["-3"] == outputs["0"] and outputs["-1"] == outputs["2"] and outputs["0"] != outputs["2"]


# -- 2. ok means every distance present and finite ---------------------------------------------------


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


# -- 3. no tracebacks -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    ["[]", '"text"', "1", "null", '{"format": 1}', '{"format": 1, "fingerprint": [], "inputs": {}}',
     '{"format": 1, "fingerprint": {}, "inputs": [], "runs": 1, "finished_run": 1}',
     '{"format": 1, "fingerprint": {}, "inputs": {"k": "v"}, "runs": 1, "finished_run": 1}',
     '{"format": 1, "fingerprint": {}, "inputs": {}, "runs": Infinity, "finished_run": 1}',
     '{"format": 1, "fingerprint": {}, "inputs": {"k": {"path": "p", "format": "csv", "bytes": "9", '
     '"mtime_ns": 1, "sha256": null}}, "runs": 1, "finished_run": 1}',
     "{broken"],
)  # fmt: skip
def test_manifest_that_is_not_a_manifest(tmp_path: Path, pairs: Path, tiny_glove_file: Path, content: str) -> None:
    out = tmp_path / "out"
    state_dir(out).mkdir(parents=True)
    (state_dir(out) / "manifest.json").write_text(content)
    result = invoke("run", str(pairs), "-o", str(out), "--glove", str(tiny_glove_file), "--no-transformer")
    assert result.exit_code == 5, result.output
    line = error_line(result)
    assert line.startswith(f"Error: {state_dir(out) / 'manifest.json'}: unreadable manifest (")
    assert line.endswith("); pass --overwrite to start this output over")


def npy_dir(tmp_path: Path, name: str, write) -> Path:
    directory = tmp_path / name
    directory.mkdir()
    (directory / "vocab.txt").write_text("the\nlight\n")
    write(directory / "vectors.npy")
    return directory


@pytest.mark.parametrize(
    "kind,expected",
    [
        ("object", "cannot read vectors.npy or vocab.txt (Array can't be memory-mapped: Python objects in dtype.)"),
        ("truncated", "cannot read vectors.npy or vocab.txt ("),
        ("strings", "vectors.npy holds <U5 values, not numbers; save a float matrix"),
        ("complex", "vectors.npy holds complex64 values, not numbers; save a float matrix"),
    ],
)
def test_glove_npy_that_is_not_a_matrix(tmp_path: Path, pairs: Path, kind: str, expected: str) -> None:
    marker = tmp_path / "unpickled"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (marker,))

    def write(path: Path) -> None:
        if kind == "object":
            array = np.empty((2, 1), dtype=object)
            array[0, 0], array[1, 0] = Evil(), 1.0
            np.save(path, array, allow_pickle=True)
        elif kind == "truncated":
            np.save(path, np.ones((2, 8), np.float32))
            path.write_bytes(path.read_bytes()[:100])
        elif kind == "strings":
            np.save(path, np.array([["a"] * 8, ["b"] * 8], dtype="<U5"))
        else:
            np.save(path, np.ones((2, 8), np.complex64))

    directory = npy_dir(tmp_path, kind, write)
    result = invoke("run", str(pairs), "-o", str(tmp_path / "out"), "--glove", str(directory), "--no-transformer")
    assert result.exit_code == 4, result.output
    line = error_line(result)
    assert line.startswith(f"Error: --glove {directory}: {expected}"), line
    assert not marker.exists()


def _handles_sigterm(pid: int) -> bool:
    """True once the process has its own SIGTERM handler (bit 15 of SigCgt in /proc/PID/status)."""
    try:
        status_lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return False
    caught = next((line.split()[1] for line in status_lines if line.startswith("SigCgt:")), "0")
    return bool(int(caught, 16) & (1 << (signal.SIGTERM - 1)))


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc to see the handler")
def test_signals_during_start_up_exit_130(tmp_path: Path, pairs: Path, tiny_models: list[str]) -> None:
    """SIGTERM or SIGINT while torch and flair import and the models load: exit 130, one line.
    (Before batchembed's main() runs, a fraction of a second, Python's defaults apply: see the README.)"""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for delay, sig in ((0.0, signal.SIGTERM), (0.2, signal.SIGINT), (0.5, signal.SIGTERM), (1.0, signal.SIGTERM)):
        out = tmp_path / f"out{delay}"
        proc = subprocess.Popen(
            [sys.executable, "-m", "batchembed", "run", str(pairs), "-o", str(out), "-q", *tiny_models],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        deadline = time.monotonic() + 60
        while not _handles_sigterm(proc.pid) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(delay)
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=120)
        if proc.returncode == 0:  # finished before the signal: nothing to check
            continue
        assert proc.returncode == 130, stderr
        assert "Traceback" not in stderr and stderr.strip().splitlines()[-1] == INTERRUPTED, stderr


# -- 4. arguments and messages --------------------------------------------------------------------


@pytest.mark.parametrize(
    "args,message",
    [
        (["--max-bad-rows", "-1"], "--max-bad-rows must be 0 or more, got -1"),
        (["--max-bad-rows", "-50"], "--max-bad-rows must be 0 or more, got -50"),
        (["-o", ""], "--output is empty; name the output directory (use . for this directory)"),
        (["-o", "  "], "--output is empty; name the output directory (use . for this directory)"),
        ([""], "an input argument is empty; give a file, directory or glob (use . for this directory)"),
        ([" "], "an input argument is empty; give a file, directory or glob (use . for this directory)"),
    ],
)
def test_run_argument_errors(
    tmp_path: Path, pairs: Path, tiny_models: list[str], args: list[str], message: str
) -> None:
    base = ["run", str(pairs), "-o", str(tmp_path / "out"), *tiny_models]
    result = invoke(*base, *args)
    assert result.exit_code == 2, result.output
    assert error_line(result) == f"Error: {message}"
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize("word", ["", " ", "\t"])
def test_compare_empty_word(tiny_models: list[str], word: str) -> None:
    result = invoke("compare", "the light", "light", "--word", word, *tiny_models)
    assert result.exit_code == 2, result.output
    assert error_line(result) == (
        "Error: --word is empty; give the word to compare, or leave --word out for every shared word"
    )


@pytest.mark.parametrize("kind", ["csv", "tsv", "parquet", "two"])
def test_no_data_rows_is_said_truly(tmp_path: Path, tiny_glove_file: Path, kind: str) -> None:
    if kind == "parquet":
        src = tmp_path / "empty.parquet"
        pq.write_table(pa.table({"sentence1": pa.array([], pa.string()), "sentence2": pa.array([], pa.string())}), src)
    elif kind == "tsv":
        src = tmp_path / "empty.tsv"
        src.write_text("sentence1\tsentence2\n")
    else:
        src = tmp_path / "empty.csv"
        src.write_text("sentence1,sentence2\n")
        if kind == "two":
            (tmp_path / "other.csv").write_text("sentence1,sentence2\r\n")
            src = tmp_path
    args = ["run", str(src), "-o", str(tmp_path / "_out"), "--glove", str(tiny_glove_file), "--no-transformer"]
    for _ in range(2):  # a first run and a re-run say the same
        result = invoke(*args)
        assert result.exit_code == 0, result.output
        assert result.output.strip().splitlines()[-1] == (
            "no data rows to process: the inputs hold no rows (0 pairs read, 0 rows written)"
        )


def test_differences_name_the_option_and_both_values() -> None:
    glove = {"name": "glove", "kind": "glove", "source": "a.txt", "dim": "50"}
    bert = {"name": "bert", "kind": "transformer", "layers": "-1", "subtoken_pooling": "first", "precision": "fp32"}
    old = {"models": [glove, bert], "shard_rows": 5000, "columns": {"sentence1": "s1"}, "tokenizer": "flair"}
    cases = [
        ({"models": [glove, {**bert, "layers": "-2"}]}, ["transformer layers -1 -> -2"]),
        ({"models": [glove, {**bert, "subtoken_pooling": "mean"}]}, ["transformer subtoken_pooling first -> mean"]),
        ({"models": [glove, {**bert, "precision": "bf16"}]}, ["transformer precision fp32 -> bf16"]),
        ({"models": [{**glove, "source": "b.txt"}, bert]}, ["glove source a.txt -> b.txt"]),
        ({"models": [bert]}, ["models glove, bert -> bert"]),
        ({"shard_rows": 10}, ["shard_rows 5000 -> 10"]),
        ({"columns": {"sentence1": "text"}}, ["columns sentence1 s1 -> text"]),
        ({"tokenizer": "whitespace", "shard_rows": 3}, ["shard_rows 5000 -> 3", "tokenizer flair -> whitespace"]),
        ({"models": "garbled"}, ["models glove, bert -> garbled"]),
    ]
    for change, expected in cases:
        assert differences(old, {**old, **change}) == expected


def test_settings_change_refusal_names_the_option(tmp_path: Path, pairs: Path, tiny_models: list[str]) -> None:
    out = str(tmp_path / "out")
    assert invoke("run", str(pairs), "-o", out, *tiny_models).exit_code == 0
    for option, change in (
        (["--layers=-2"], "transformer layers -1 -> -2"),
        (["--subtoken-pooling", "mean"], "transformer subtoken_pooling first -> mean"),
        (["--layer-concat", "--layers=-1,-2"], "transformer dim 32 -> 64, transformer layer_mean True -> False"),
    ):
        result = invoke("run", str(pairs), "-o", out, *tiny_models, *option)
        assert result.exit_code == 5, result.output
        line = error_line(result)
        assert f"holds results made with other settings ({change}" in line, line
        assert line.endswith("; pass --overwrite to replace them, or choose another --output")


def make_model_dir(tmp_path: Path, name: str, bert_dir: Path, keep: tuple[str, ...], extra: dict[str, bytes]) -> Path:
    directory = tmp_path / name
    directory.mkdir()
    for file in bert_dir.iterdir():
        if file.name in keep:
            (directory / file.name).write_bytes(file.read_bytes())
    for file_name, data in extra.items():
        (directory / file_name).write_bytes(data)
    return directory


def test_model_errors_are_one_line_that_says_how_to_fix(
    tmp_path: Path, pairs: Path, tiny_bert_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    marker = tmp_path / "unpickled"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (marker,))

    evil = pickle.dumps(Evil())
    tokenizer = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
    remote = json.dumps({"model_type": "mycustom", "auto_map": {"AutoConfig": "x.C", "AutoModel": "x.M"}}).encode()
    cases = {
        "empty": (
            make_model_dir(tmp_path, "empty", tiny_bert_dir, (), {}),
            "not a model directory (no config.json); give a directory written by save_pretrained(): "
            "config.json, tokenizer files and model.safetensors",
        ),
        "pickle": (
            make_model_dir(tmp_path, "pickle", tiny_bert_dir, ("config.json", *tokenizer), {"pytorch_model.bin": evil}),
            "its weights (pytorch_model.bin) are a pickle, which batchembed never loads; it reads model.safetensors "
            "only: convert them once, where you trust the file: AutoModel.from_pretrained(DIR).save_pretrained(DIR) "
            "with transformers writes model.safetensors",
        ),
        "no weights": (
            make_model_dir(tmp_path, "noweights", tiny_bert_dir, ("config.json", *tokenizer), {}),
            "no model.safetensors in the directory; batchembed reads safetensors weights only: save the model with "
            "save_pretrained(), which writes them",
        ),
        "remote code": (
            make_model_dir(tmp_path, "remote", tiny_bert_dir, ("model.safetensors",), {"config.json": remote}),
            "the model needs code from its repository (trust_remote_code), which batchembed never runs; choose a "
            "model whose architecture transformers supports without it",
        ),
        "missing": (tmp_path / "nothere", "no such directory; give a model directory or a Hugging Face id"),
    }
    for hub in ("someorg/no-such-model-xyz", "no-such-model-xyz"):
        cases[hub] = (
            hub,
            "not a local directory, and not in the Hugging Face cache (the hub is not reachable from here, or the "
            f"id is wrong); download it where the network allows (huggingface-cli download {hub} --local-dir DIR) "
            "and pass --transformer DIR",
        )
    for model, message in cases.values():
        result = invoke("run", str(pairs), "-o", str(tmp_path / "out"), "--no-glove", "--transformer", str(model))
        assert result.exit_code == 4, result.output
        assert error_line(result) == f"Error: --transformer {model}: {message}"
    assert not marker.exists()


def test_run_help_escapes_markup_and_lists_exit_codes() -> None:
    result = invoke("run", "--help", COLUMNS="200")
    assert result.exit_code == 0
    assert "pip install batchembed[ray])" in result.output
    text = " ".join(result.output.split())
    for code in ("0 success", "2 usage error", "4 model error", "7 stopped", "130 interrupted"):
        assert code in text, code


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


@pytest.mark.parametrize("max_length", [None, 65, 1000])
def test_tokenizer_window_longer_than_the_model_is_refused(
    tmp_path: Path, tiny_bert_dir: Path, max_length: int | None
) -> None:
    """Without a usable model_max_length a sentence past the model's positions crashed the forward (exit 1)."""
    keep = tuple(p.name for p in tiny_bert_dir.iterdir() if p.name != "tokenizer_config.json")
    config = json.loads((tiny_bert_dir / "tokenizer_config.json").read_text())
    config.pop("model_max_length")
    if max_length is not None:
        config["model_max_length"] = max_length
    replaced = {"tokenizer_config.json": json.dumps(config).encode()}
    model = make_model_dir(tmp_path, "nomax", tiny_bert_dir, keep, replaced)
    src = write_csv(tmp_path / "long.csv", {"sentence1": [" ".join(["light"] * 100)], "sentence2": ["light"]})
    result = invoke("run", str(src), "-o", str(tmp_path / "out"), "--no-glove", "--transformer", str(model))
    assert result.exit_code == 4, result.output
    shown = "unset" if max_length is None else str(max_length)
    assert error_line(result) == (
        f"Error: --transformer {model}: its tokenizer's model_max_length ({shown}) exceeds the model's 64 positions, "
        'so long sentences cannot be cut into windows; set "model_max_length" in its tokenizer_config.json to the '
        "longest input the model takes (512 for BERT)"
    )


@pytest.mark.parametrize(
    "device,precision,message",
    [
        ("cuda:2", "fp32", "--device cuda:2: this machine has 2 CUDA GPU(s), cuda:0 to cuda:1"),
        ("cuda:7", "fp32", "--device cuda:7: this machine has 2 CUDA GPU(s), cuda:0 to cuda:1"),
        ("cuda:1", "bf16", "--precision bf16: the GPU cuda:1 has no bfloat16 support; use fp16 or fp32"),
        ("cuda", "bf16", "--precision bf16: the GPU cuda has no bfloat16 support; use fp16 or fp32"),
    ],
)
def test_device_and_precision_the_machine_lacks(
    monkeypatch: pytest.MonkeyPatch, tiny_bert_dir: Path, device: str, precision: str, message: str
) -> None:
    """Checked before any model loads (an old GPU, or an ordinal past the last GPU, failed mid-run)."""
    from batchembed.config import EmbedOptions, TransformerSpec
    from batchembed.errors import UsageError
    from batchembed.models import load_embedders

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    with pytest.raises(UsageError) as caught:
        load_embedders(None, TransformerSpec(str(tiny_bert_dir)), EmbedOptions(device=device, precision=precision))
    assert str(caught.value) == message


@pytest.mark.parametrize("layers", ["--1", "\u00b2", "1.5", "", "-", "1,,2", "all,-1", " "])
def test_layers_that_are_not_integers(tmp_path: Path, pairs: Path, tiny_models: list[str], layers: str) -> None:
    """Refused before any model loads ('--1' and '²' passed the old check and failed in flair: exit 4)."""
    result = invoke("run", str(pairs), "-o", str(tmp_path / "out"), *tiny_models, f"--layers={layers}")
    assert result.exit_code == 2, result.output
    assert error_line(result) == (
        f"Error: --layers {layers!r} must be 'all' or comma-separated integers like '-1' or '-1,-2,-3,-4'"
    )


def test_unknown_flair_glove_name_is_one_line(tmp_path: Path, pairs: Path) -> None:
    result = invoke("run", str(pairs), "-o", str(tmp_path / "out"), "--glove", "nosuchname", "--no-transformer")
    assert result.exit_code == 4, result.output
    assert error_line(result) == (
        'Error: --glove nosuchname: flair could not load it (ValueError: The given embeddings "nosuchname" is not '
        "available or is not a valid path.); give a GloVe .txt file or a directory with .npy + vocabulary"
    )
