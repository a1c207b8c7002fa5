"""The README's Python API examples, run as doctests from a copy of the samples."""

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
