"""--skip-stopwords: shared-word mode without function words, off by default, part of the output's
settings; a file replaces the built-in list."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import cli_invoke, error_line, state_dir, write_csv

from batchembed.stopwords import ENGLISH, load_stopwords
from batchembed.targets import shared_words
from batchembed.tokenize import get_tokenizer

BANK = ("He sat on the bank of the river and watched the water.", "She deposited the check at the bank on Monday.")


def words(resolution: object, s1: object) -> list[str]:
    assert isinstance(resolution, list)
    return [s1.tokens[i].lower() for i, _ in resolution]  # type: ignore[attr-defined]


def test_shared_words_leave_out_the_words_to_skip() -> None:
    tokenize = get_tokenizer("flair")
    s1, s2 = (tokenize(text) for text in BANK)
    assert words(shared_words(s1, s2), s1) == ["on", "the", "the", "bank", "the", "the", "the", "the"]
    assert words(shared_words(s1, s2, ENGLISH), s1) == ["bank"]


def test_a_pair_that_shares_only_stop_words_says_so() -> None:
    tokenize = get_tokenizer("whitespace")
    assert shared_words(tokenize("the cat"), tokenize("the dog"), ENGLISH) == "no_shared_words"


def test_a_stopword_file_replaces_the_built_in_list(tmp_path: Path) -> None:
    path = tmp_path / "stop.txt"
    path.write_text("# mine\nBank\n\nriver  # a comment\n", encoding="utf-8")
    assert load_stopwords(str(path)) == ("bank", "river")
    assert "the" in load_stopwords("english") and "bank" not in load_stopwords("english")


@pytest.fixture
def bank(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "bank.csv", {"sentence1": [BANK[0]], "sentence2": [BANK[1]]})


def test_run_keeps_every_shared_word_by_default_and_skips_stop_words_when_asked(
    tmp_path: Path, bank: Path, tiny_models: list[str]
) -> None:
    plain = cli_invoke("run", str(bank), "-o", str(tmp_path / "all"), *tiny_models)
    assert plain.exit_code == 0, plain.output
    assert pq.read_table(tmp_path / "all").column("word_1").to_pylist().count("the") == 6
    skipped = cli_invoke("run", str(bank), "-o", str(tmp_path / "content"), "--skip-stopwords", *tiny_models)
    assert skipped.exit_code == 0, skipped.output
    assert pq.read_table(tmp_path / "content").column("word_1").to_pylist() == ["bank"]
    manifest = json.loads((state_dir(tmp_path / "content") / "manifest.json").read_text())
    assert "the" in manifest["fingerprint"]["columns"]["stopwords"]
    assert (
        "stopwords"
        not in json.loads((state_dir(tmp_path / "all") / "manifest.json").read_text())["fingerprint"]["columns"]
    )


def test_skipping_stop_words_is_a_settings_change_of_an_output(
    tmp_path: Path, bank: Path, tiny_models: list[str]
) -> None:
    out = str(tmp_path / "out")
    assert cli_invoke("run", str(bank), "-o", out, *tiny_models).exit_code == 0
    result = cli_invoke("run", str(bank), "-o", out, "--skip-stopwords", *tiny_models)
    assert result.exit_code == 5, result.output
    assert f"(--stopwords off -> {len(ENGLISH)} words)" in error_line(result)


def test_an_unreadable_stopword_file_is_a_usage_error(tmp_path: Path, bank: Path, tiny_models: list[str]) -> None:
    missing = tmp_path / "nope.txt"
    result = cli_invoke(
        "run", str(bank), "-o", str(tmp_path / "out"), "--skip-stopwords", "--stopwords", str(missing), *tiny_models
    )
    assert result.exit_code == 2, result.output
    assert error_line(result).startswith(f"Error: --stopwords {missing}: cannot read it")


def test_compare_skips_stop_words_when_asked(tiny_embedders: list) -> None:
    from batchembed.comparison import compare_sentences

    table = compare_sentences(*BANK, tiny_embedders, skip=ENGLISH)
    assert table.column("word_1").to_pylist() == ["bank"]
