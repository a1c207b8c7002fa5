"""Model options and model errors: options checked against the loaded model, and every model that
cannot be loaded named in one line that says how to fix it (exit 2 or 4, nothing written).

CLI tests assert the exit code and the exact one-line message; models are the tiny ones of conftest.py.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import cli_invoke as invoke
from conftest import error_line, write_csv

ROOT = Path(__file__).resolve().parents[1]


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
    from batchembed.embedders.load import load_embedders
    from batchembed.errors import UsageError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    with pytest.raises(UsageError) as caught:
        load_embedders(None, TransformerSpec(str(tiny_bert_dir)), EmbedOptions(device=device, precision=precision))
    assert caught.value.message == message  # as written: the CLI renders it as is, the API with parameter names


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
