"""The README's examples: the Python API and the read snippets run as doctests from a copy of the
samples, the quick start as written."""

from __future__ import annotations

import doctest
import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def section(title: str) -> tuple[str, int]:
    """A README section's text (up to the next `## ` heading) and the line it starts on."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", text, re.S | re.M)
    assert match, f"README.md has no section {title!r}"
    return match.group(1), text[: match.start()].count("\n")


@pytest.mark.slow
@pytest.mark.packaged
def test_python_api_examples(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text, line = section("Python API")
    shutil.copytree(ROOT / "sample_data", tmp_path / "sample_data")
    monkeypatch.chdir(tmp_path)  # the examples write "out" where a user's working directory would be
    test = doctest.DocTestParser().get_doctest(text, {}, "README.md: Python API", str(ROOT / "README.md"), line)
    assert len(test.examples) >= 15, "the section lost its examples"
    report: list[str] = []
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)


def run_doctests(title: str) -> int:
    text, line = section(title)
    test = doctest.DocTestParser().get_doctest(text, {}, f"README.md: {title}", str(ROOT / "README.md"), line)
    report: list[str] = []
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)
    return len(test.examples)


def test_reading_the_output_examples(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_models: list[str]) -> None:
    """The read snippets, on the quick start's output: pandas, Polars, pyarrow and DuckDB with the
    exact expressions shown (the rows and columns do not depend on the models)."""
    from conftest import cli_invoke

    shutil.copytree(ROOT / "sample_data", tmp_path / "sample_data")
    monkeypatch.chdir(tmp_path)
    assert cli_invoke("run", "sample_data", "-o", "out", *tiny_models).exit_code == 0
    assert run_doctests("Reading the output") >= 10


def test_the_readme_names_duckdb_expressions_that_work() -> None:
    text, _ = section("Reading the output")
    assert "read_parquet('out/**/*.parquet')" in text and "FROM 'out/*.parquet'" in text
    assert "FROM 'out/**'`" not in text.replace("`FROM 'out/**'` is not a table", "")


@pytest.mark.slow
@pytest.mark.packaged
def test_quick_start_prints_what_the_readme_shows(tmp_path: Path) -> None:
    """`batchembed run sample_data -o out` as written, with the packaged models: the same summary
    line, but for the time and speed."""
    import subprocess
    import sys

    text, _ = section("Quick start")
    shown = re.search(r"```\n(\d+ pairs read.*)\n```", text)
    assert shown, "the quick start lost its printed line"
    shutil.copytree(ROOT / "sample_data", tmp_path / "sample_data")
    command = [sys.executable, "-m", "batchembed", "run", "sample_data", "-o", "out"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    printed = done.stderr.strip().splitlines()[-1]

    def stable(line: str) -> str:
        return re.sub(r"; [\d.]+s, [\d,]+ subword tokens/s$", "", line)

    assert stable(printed) == stable(shown.group(1))
    check = subprocess.run([*command, "--check"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert check.returncode == 0 and check.stdout.splitlines()[-1].startswith(
        "5 input files, 20 pairs, 5 shards: 5 done"
    )


# Every shell command the README shows, and what runs it (or why nothing here can).
README_COMMANDS = {
    "python3 -m venv .venv && . .venv/bin/activate": ".ci/run",
    "pip install torch --index-url https://download.pytorch.org/whl/cpu     # CPU build of torch": (
        "needs the PyTorch wheel index (network); .ci/run installs the same CPU build from a local wheel"
    ),
    'pip install -e ".[dataframes]"': "the [dataframes] extra is part of [test], which .ci/run installs",
    "python3 -m venv .venv && . .venv/bin/activate && "
    'pip install "torch==2.13.0" -e ".[dataframes]" && batchembed run sample_data -o out': (
        "the install is .ci/run's (with [test], which holds [dataframes]); the run is "
        "test_quick_start_prints_what_the_readme_shows; the whole line is checked by hand from a fresh clone"
    ),
    "batchembed run sample_data -o out --check": "test_quick_start_prints_what_the_readme_shows",
    "batchembed run sample_data -o out": "test_quick_start_prints_what_the_readme_shows",
    "python3 -m venv .venv && . .venv/bin/activate && "
    'pip install "torch==2.13.0" -e ".[test]" && python -m pytest -q': ".ci/run",
    "batchembed uses tests/data/dwug -o uses-out": "test_the_uses_example_prints_what_the_readme_shows",
    "batchembed evaluate --uses tests/data/dwug --change tests/data/dwug/stats/opt/stats_groupings.csv": (
        "test_the_uses_example_prints_what_the_readme_shows"
    ),
}


@pytest.mark.slow
@pytest.mark.packaged
def test_the_uses_example_prints_what_the_readme_shows(tmp_path: Path) -> None:
    """The README's uses commands as written, with the packaged models, from a copy of the repository's
    hand-made DWUG-layout corpus: the same summary line but for the time, and a graded-change table."""
    import subprocess
    import sys

    text, _ = section("Word usage analytics")
    shown = re.search(r"```\n(finished: .*)\n```", text)
    assert shown, "the uses section lost its printed line"
    shutil.copytree(ROOT / "tests" / "data" / "dwug", tmp_path / "tests" / "data" / "dwug")
    command = [sys.executable, "-m", "batchembed", "uses", "tests/data/dwug", "-o", "uses-out"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr

    def stable(line: str) -> str:
        return re.sub(r"; [\d.]+s, [\d,]+ subword tokens/s$", "", line)

    assert stable(done.stderr.strip().splitlines()[-1]) == stable(shown.group(1))
    gold = "tests/data/dwug/stats/opt/stats_groupings.csv"
    scored = subprocess.run(
        [sys.executable, "-m", "batchembed", "evaluate", "--uses", "tests/data/dwug", "--change", gold],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert scored.returncode == 0, scored.stderr
    assert "Graded change" in scored.stdout and "bert        cosine     apd" in scored.stdout


def test_every_readme_command_is_run_by_a_test_or_says_why_not() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```bash\n(.*?)^```", text, re.S | re.M)
    commands = [line for block in blocks for line in block.splitlines() if line.strip()]
    unknown = [command for command in commands if command not in README_COMMANDS]
    assert not unknown, f"say in README_COMMANDS which test runs these: {unknown}"
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert 'pip install --quiet "torch==2.13.0" -e ".[test]"' in ci and "python -m pytest -q" in ci
    tests = (ROOT / "tests" / "test_readme.py").read_text(encoding="utf-8")
    for command, runner in README_COMMANDS.items():
        if runner.startswith("test_"):
            assert f"def {runner}(" in tests, command
