"""docs/notebook.md's examples, run as doctests with the packaged default models."""

from __future__ import annotations

import doctest
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.packaged
def test_notebook_page_examples(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for module in ("pandas", "polars", "duckdb"):
        pytest.importorskip(module)
    monkeypatch.chdir(tmp_path)  # where a user's working directory would be
    page = ROOT / "docs" / "notebook.md"
    test = doctest.DocTestParser().get_doctest(page.read_text(encoding="utf-8"), {}, "docs/notebook.md", str(page), 0)
    assert len(test.examples) >= 15, "the page lost its examples"
    report: list[str] = []
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)
    assert not (tmp_path / "out").exists()  # the refused run left nothing behind
