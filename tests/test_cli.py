"""The command line: exit codes and one-line messages for every error path."""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
from conftest import state_dir
from typer.testing import CliRunner

from batchembed.cli import app

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def tiny_models(tiny_glove_file: Path, tiny_bert_dir: Path) -> list[str]:
    return ["--glove", str(tiny_glove_file), "--transformer", str(tiny_bert_dir)]


def write_csv(path: Path, columns: dict[str, list]) -> Path:
    pacsv.write_csv(pa.table(columns), path)
    return path


def invoke(*args: str):
    return runner.invoke(app, list(args))


def test_run_writes_parquet_and_summary(tmp_path: Path, tiny_models: list[str]) -> None:
    src = write_csv(tmp_path / "pairs.csv", {"sentence1": ["the light was bright"], "sentence2": ["she saw light"]})
    result = invoke("run", str(src), "-o", str(tmp_path / "out"), *tiny_models)
    assert result.exit_code == 0, result.output
    assert "1 pairs read, 1 rows written" in result.output
    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / "out")
    assert table.column("word_1").to_pylist() == ["light"]
    assert (state_dir(tmp_path / "out") / "summary.json").exists()


def test_missing_input_file(tmp_path: Path, tiny_models: list[str]) -> None:
    result = invoke("run", str(tmp_path / "nope.csv"), "-o", str(tmp_path / "out"), *tiny_models)
    assert result.exit_code == 3
    assert result.output.strip().splitlines()[-1] == f"Error: {tmp_path / 'nope.csv'}: no such file or directory"


def test_missing_column_names_file_and_column(tmp_path: Path, tiny_models: list[str]) -> None:
    src = write_csv(tmp_path / "pairs.csv", {"text_a": ["a"], "text_b": ["b"]})
    result = invoke("run", str(src), "-o", str(tmp_path / "out"), *tiny_models)
    assert result.exit_code == 3
    assert f"Error: {src}: missing column 'sentence1' (columns: text_a, text_b)" in result.output
    assert "--sentence1-column" in result.output


def test_renamed_columns(tmp_path: Path, tiny_models: list[str]) -> None:
    src = write_csv(tmp_path / "pairs.csv", {"a": ["the light"], "b": ["light"], "w": ["light"]})
    result = invoke(
        "run",
        str(src),
        "-o",
        str(tmp_path / "out"),
        "--sentence1-column",
        "a",
        "--sentence2-column",
        "b",
        "--word-column",
        "w",
        *tiny_models,
    )
    assert result.exit_code == 0, result.output
    assert "1 pairs read, 1 rows written; by status: ok 1" in result.output
    import pyarrow.parquet as pq

    row = pq.read_table(tmp_path / "out").to_pylist()[0]  # the word column named the target
    assert (row["word_1"], row["word_2"], row["token_index_1"], row["token_index_2"]) == ("light", "light", 1, 0)
    assert row["glove_euclidean"] == 0.0 and row["status"] == "ok"


def test_empty_glob_and_unknown_suffix(tmp_path: Path, tiny_models: list[str]) -> None:
    result = invoke("run", str(tmp_path / "*.csv"), "-o", str(tmp_path / "out"), *tiny_models)
    assert result.exit_code == 3 and "the pattern matches no .csv, .tsv, .parquet or .pq file" in result.output
    (tmp_path / "data.json").write_text("{}")
    result = invoke("run", str(tmp_path / "data.json"), "-o", str(tmp_path / "out"), *tiny_models)
    assert result.exit_code == 3 and "unknown file type '.json'" in result.output


def test_bad_rows_exit_code_and_threshold(tmp_path: Path, tiny_models: list[str]) -> None:
    src = write_csv(tmp_path / "pairs.csv", {"sentence1": ["the light", "  ", None], "sentence2": ["light", "x", "y"]})
    result = invoke("run", str(src), "-o", str(tmp_path / "out"), *tiny_models)
    assert result.exit_code == 6, result.output
    assert "empty_sentence 1" in result.output and "null_sentence 1" in result.output
    result = invoke("run", str(src), "-o", str(tmp_path / "out2"), "--max-bad-rows", "1", *tiny_models)
    assert result.exit_code == 7
    assert "exceed --max-bad-rows 1" in result.output


@pytest.mark.parametrize(
    "args,message",
    [
        (["--subtoken-pooling", "median"], "--subtoken-pooling 'median' is not one of first, last, first_last, mean"),
        (["--layers", "top"], "--layers 'top' must be 'all' or comma-separated integers"),
        (["--tokenizer", "spacy"], "--tokenizer must be one of flair, whitespace"),
        (["--no-glove", "--no-transformer"], "both models are disabled"),
        (["--token-budget", "0"], "--token-budget must be a positive number"),
        (["--precision", "fp8"], "--precision must be one of fp32, bf16, fp16"),
        (["--span-columns", "a,b"], "--span-columns needs 4 comma-separated column names"),
        (["--device", "tpu"], "--device 'tpu' is not a torch device"),
        (["--glove-name", "bert"], "the two models need different names"),
    ],
)
def test_usage_errors(tmp_path: Path, tiny_models: list[str], args: list[str], message: str) -> None:
    src = write_csv(tmp_path / "pairs.csv", {"sentence1": ["a"], "sentence2": ["a"]})
    result = invoke("run", str(src), "-o", str(tmp_path / "out"), *tiny_models, *args)
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_model_errors(tmp_path: Path, tiny_models: list[str]) -> None:
    src = write_csv(tmp_path / "pairs.csv", {"sentence1": ["a"], "sentence2": ["a"]})
    result = invoke(
        "run", str(src), "-o", str(tmp_path / "out"), "--glove", str(tmp_path / "missing.txt"), "--no-transformer"
    )
    assert result.exit_code == 4 and "missing.txt: no such file or directory" in result.output
    result = invoke("run", str(src), "-o", str(tmp_path / "out"), "--no-glove", "--transformer", str(tmp_path))
    assert result.exit_code == 4
    assert f"--transformer {tmp_path}: not a model directory (no config.json)" in result.output


def test_compare_prints_a_table(tiny_models: list[str]) -> None:
    result = invoke("compare", "The light was bright", "She saw the light", *tiny_models)
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].split()[:2] == ["word", "1"]
    assert any(line.startswith("light") and line.rstrip().endswith("ok") for line in lines)


def test_help_is_fast_to_import() -> None:
    """`--help` must not import torch or flair (they take seconds)."""
    import subprocess
    import sys

    code = "import sys, batchembed.cli; print('torch' in sys.modules, 'flair' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def documented(flag: str, text: str) -> bool:
    """Whether `text` names `flag` as a whole word: `--word` is not documented by `--word-column`."""
    return re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text) is not None


def test_flags_count_as_documented_only_as_whole_words() -> None:
    assert documented("--word", "use `--word light`") and documented("--word", "(--word)")
    assert not documented("--word", "`--word-column`") and not documented("--check", "--checks")


@pytest.mark.parametrize("command", ["run", "uses", "compare", "evaluate", "report"])
def test_every_option_is_documented_in_the_command_reference(command: str) -> None:
    """Every flag of `--help` is named, as a whole word, in the hand-written manual (docs/*.md)
    and in the generated option reference (docs/options.md)."""
    result = invoke(command, "--help")
    flags = set(re.findall(r"(--[a-z][a-z0-9-]+)", result.output)) - {"--help"}
    generated = ROOT / "docs" / "options.md"
    manual = "\n".join(p.read_text(encoding="utf-8") for p in sorted((ROOT / "docs").glob("*.md")) if p != generated)
    for where, text in (("the manual, docs/*.md", manual), ("docs/options.md", generated.read_text(encoding="utf-8"))):
        undocumented = sorted(f for f in flags if not documented(f, text))
        assert not undocumented, f"document these in {where}: {undocumented}"
