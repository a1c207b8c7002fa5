"""`batchembed report`: a self-contained HTML page and PNG plots from a result directory."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
from conftest import state_dir
from typer.testing import CliRunner

from batchembed.cli import app
from batchembed.config import RunConfig
from batchembed.engines.local import run as run_local
from batchembed.errors import InputError
from batchembed.results.report import PLOTS, per_word, read_result, status_counts, write_report

ROOT = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
runner = CliRunner()


@pytest.fixture
def result_dir(tmp_path: Path, fake_embedders: list) -> Path:
    """A small `run` result: repeated words in several contexts, an OOV word, a pair sharing nothing."""
    pairs = {
        "sentence1": [
            "the light in the room was bright",
            "he sat on the bank of the river",
            "the children play in the park",
            "the bank raised money",
            "a xylo in the light",
            "nothing shared here",
        ],
        "sentence2": [
            "she saw light and joy",
            "the bank was closed",
            "we saw a play last night",
            "they fished from the bank",
            "the light of xylo",
            "completely different words",
        ],
    }
    pacsv.write_csv(pa.table(pairs), tmp_path / "pairs.csv")
    output = tmp_path / "out"
    run_local(RunConfig((str(tmp_path / "pairs.csv"),), output, tokenizer="whitespace"), fake_embedders)
    return output


def test_report_page_embeds_every_plot(result_dir: Path) -> None:
    page = write_report(result_dir)
    assert page == state_dir(result_dir) / "report" / "report.html"
    text = page.read_text(encoding="utf-8")
    images = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)" alt="([^"]+)">', text)
    assert [alt for _, alt in images] == [title for _, title, _, _ in PLOTS]
    for (encoded, _), (name, _, _, _) in zip(images, PLOTS, strict=True):
        png = (page.parent / f"{name}.png").read_bytes()
        assert png.startswith(PNG_MAGIC) and base64.b64decode(encoded) == png
    assert "http" not in text.replace("http-equiv", "")  # self-contained: nothing to fetch
    assert "6 sentence pairs" in text and "<td>ctx</td>" in text


def test_report_into_another_folder_leaves_the_result_alone(result_dir: Path, tmp_path: Path) -> None:
    before = sorted(p.name for p in result_dir.iterdir())
    page = write_report(result_dir, tmp_path / "elsewhere")
    assert page.parent == tmp_path / "elsewhere" and len(list(page.parent.glob("*.png"))) == len(PLOTS)
    assert sorted(p.name for p in result_dir.iterdir()) == before


def test_per_word_statistics(result_dir: Path) -> None:
    result = read_result(result_dir)
    assert (result.static, result.contextual) == ("static", "ctx")
    words = per_word(result.table, ["ctx_cosine"]).to_pydict()
    table = result.table.to_pydict()
    bank = [d for w, d in zip(table["word_1"], table["ctx_cosine"]) if w == "bank"]
    k = words["key"].index("bank")
    assert words["ctx_cosine_count"][k] == len(bank) == 2
    assert words["ctx_cosine_stddev"][k] == pytest.approx(np.std(bank, ddof=1), rel=1e-5)
    assert dict(status_counts(result.table))["no_shared_words"] == 1


def test_report_with_one_model(tmp_path: Path, fake_embedders: list) -> None:
    pacsv.write_csv(pa.table({"sentence1": ["the bank"], "sentence2": ["a bank"]}), tmp_path / "p.csv")
    config = RunConfig((str(tmp_path / "p.csv"),), tmp_path / "out", tokenizer="whitespace", transformer=None)
    run_local(config, fake_embedders[1:])
    page = write_report(tmp_path / "out")
    html = page.read_text(encoding="utf-8")
    assert html.count("<td>ctx</td>") == 2 and "<td>static</td>" not in html  # one model, two metrics
    assert html.count("data:image/png;base64,") == len(PLOTS)
    assert sorted(p.name for p in page.parent.glob("*.png")) == sorted(f"{name}.png" for name, *_ in PLOTS)
    assert read_result(tmp_path / "out").static is None  # the static-vs-contextual plot says it needs two


def test_no_result_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no result parts"):
        write_report(tmp_path)
    result = runner.invoke(app, ["report", str(tmp_path / "missing")])
    assert result.exit_code == 3
    assert result.output.strip().splitlines()[-1].startswith(f"Error: {tmp_path / 'missing'}: no result parts")


def test_cli_report(result_dir: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["report", str(result_dir), "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(tmp_path / "r" / "report.html")


@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="needs Debian's chromium (apt-get install chromium)")
def test_report_renders_in_headless_chromium(result_dir: Path, tmp_path: Path) -> None:
    from PIL import Image

    page = write_report(result_dir)
    shot = tmp_path / "shot.png"
    subprocess.run(
        ["bash", str(ROOT / "scripts" / "screenshot_report.sh"), str(page), str(shot), "1000,1600"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    with Image.open(shot) as image:
        assert image.size == (1000, 1600)
        colors = image.convert("RGB").getcolors(maxcolors=1 << 20)
        assert colors is not None and len(colors) > 50  # plots drawn, not a blank or error page


def test_screenshot_script_usage() -> None:
    if shutil.which("bash") is None:
        pytest.skip("needs bash")
    done = subprocess.run(["bash", str(ROOT / "scripts" / "screenshot_report.sh")], capture_output=True, text=True)
    assert done.returncode == 2 and "usage" in done.stderr
