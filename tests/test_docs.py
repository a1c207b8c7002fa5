"""The documentation: the generated option reference is current, and the site builds in strict
mode, so a broken link or a page left out of the navigation fails the suite."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_the_option_reference_is_generated_from_the_code() -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import gen_options
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    page = (ROOT / "docs" / "options.md").read_text(encoding="utf-8")
    assert page == gen_options.render(), "docs/options.md is stale: run python scripts/gen_options.py"


def test_the_option_reference_lists_every_option_of_every_command() -> None:
    from batchembed.options import OPTIONS, flag

    page = (ROOT / "docs" / "options.md").read_text(encoding="utf-8")
    for name in OPTIONS:
        if name not in ("inputs", "sentence1", "sentence2", "output", "pairs"):  # pairs: distances' data, API only
            assert f"`{flag(name)}`" in page, name


def build(tmp_path: Path, config: Path) -> subprocess.CompletedProcess[str]:
    pytest.importorskip("mkdocs", reason="the docs build needs the test extra's mkdocs")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(tmp_path / "site")]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)


def test_the_docs_build_in_strict_mode(tmp_path: Path) -> None:
    done = build(tmp_path, ROOT / "mkdocs.yml")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "site" / "options" / "index.html").exists()


def test_a_broken_link_fails_the_docs_build(tmp_path: Path) -> None:
    """The strict build is what catches broken links: prove it on a copy with one."""
    import shutil

    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    with (tmp_path / "docs" / "index.md").open("a", encoding="utf-8") as page:
        page.write("\nSee [the missing page](missing.md).\n")
    done = build(tmp_path, tmp_path / "mkdocs.yml")
    assert done.returncode != 0
    assert "missing.md" in done.stderr
