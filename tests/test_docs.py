"""The documentation: the generated option reference is current, and the site builds in strict
mode, so a broken link or a page left out of the navigation fails the suite."""

from __future__ import annotations

import doctest
import os
import re
import shlex
import shutil
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
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    with (tmp_path / "docs" / "index.md").open("a", encoding="utf-8") as page:
        page.write("\nSee [the missing page](missing.md).\n")
    done = build(tmp_path, tmp_path / "mkdocs.yml")
    assert done.returncode != 0
    assert "missing.md" in done.stderr


# -- every shell command the pages show, and what runs it (or why nothing here can) ------------

DOCS = ROOT / "docs"
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.S | re.M)
# the paragraph right above a block: "*Needs a Ray cluster; not run by the tests.*"
NOT_RUN_NOTE = re.compile(r"^\*(?:[^*\n]|\n(?!\n))+; not run by the tests\.\*\n\n\Z", re.M)
# a batchembed call inside a shell line: up to the next &&, ||, |, ;, comment or redirection
BATCHEMBED = re.compile(r"(?<![\w./-])batchembed\s+(?:run|uses|compare|evaluate|report)\b(?:[^|&;#>\s]|\s(?!\d?>))*")
RAY_CLUSTER = "needs a Ray cluster (tests/test_ray_engine.py runs --engine ray on a local one)"

DOCS_COMMANDS = {
    # docs/cron.md
    "30 2 * * * cd /data && batchembed run incoming/ -o results/pairs --incremental --quiet "
    '2>> results/batchembed.log || echo "batchembed exit $?" | mail -s batchembed ops@example.com': (
        "needs cron and mail (its batchembed command is parsed by test_the_batchembed_commands_in_the_docs_parse)"
    ),
    # docs/development.md: what CI runs
    'pip install "torch==2.13.0" -e ".[dev]"': ".ci/run, with [test], which [dev] extends by the linters",
    'python -m pytest -q -m "not slow and not ray and not s3 and not packaged"': (
        ".ci/run runs these tests and the rest; test_the_development_loop_names_declared_markers"
    ),
    "python -m pytest -q": ".ci/run",
    "ruff check . && mypy batchembed": "needs the [dev] extra's ruff and mypy, which .ci/run does not install",
    # docs/evaluation.md
    "WIC=path/to/WiC_dataset": "needs the WiC data, not in this repository",
    "batchembed evaluate --dev $WIC/train/train.data.txt --test $WIC/dev/dev.data.txt "
    "--json docs/eval/wic_default.json": "needs the WiC data, not in this repository",
    # docs/notebook.md
    "batchembed run pairs.csv -o out --keep-columns label,sentence1": "test_the_command_line_keeps_columns",
    # docs/object-storage.md
    "batchembed run s3://corpora/pairs/ 's3://corpora/extra/*.parquet' -o s3://results/pairs": (
        "test_the_object_storage_example_runs_as_written"
    ),
    "batchembed report s3://results/pairs --out pairs-report": "test_the_object_storage_example_runs_as_written",
    # docs/ray.md
    "pip wheel --no-deps -w dist .": "needs the package index (setuptools for the isolated build) and 10 s or more",
    "pip install torch --index-url https://download.pytorch.org/whl/cpu": "needs the PyTorch wheel index (network)",
    'pip install "$(ls dist/batchembed_pairs-*.whl)[ray]"': "needs the package index (network)",
    "export RAY_AUTH_MODE=token": RAY_CLUSTER,
    "ray get-auth-token --generate": RAY_CLUSTER,
    "ray start --head --port 6379 --dashboard-host 0.0.0.0": RAY_CLUSTER,
    "ray start --address HEAD_IP:6379": RAY_CLUSTER,
    "RAY_AUTH_MODE=token ray job submit --address http://HEAD_IP:8265 -- "
    "batchembed run s3://corpora/pairs/ -o s3://results/pairs --engine ray --precision bf16": (
        f"{RAY_CLUSTER}, a GPU and object storage credentials"
    ),
    "RAY_AUTH_MODE=token ray job submit --address http://HEAD_IP:8265 -- "
    "batchembed run s3://corpora/pairs/ -o s3://results/pairs --engine ray --device cpu --ray-workers 4": (
        f"{RAY_CLUSTER} and object storage credentials"
    ),
    "RAY_AUTH_MODE=token RAY_AUTH_TOKEN=$(cat ~/.ray/auth_token) "
    "batchembed run s3://corpora/pairs/ -o s3://results/pairs --engine ray --ray-address ray://HEAD_IP:10001": (
        f"{RAY_CLUSTER} and object storage credentials"
    ),
    # docs/reports.md
    "batchembed run sample_data -o /tmp/x && batchembed report /tmp/x": (
        "test_the_reports_example_and_the_metadata_snippet_run_as_written"
    ),
    "batchembed report s3://bucket/results/pairs --out pairs-report": (
        "test_the_object_storage_example_runs_as_written (the same command on another bucket)"
    ),
    # docs/usage-analytics.md
    "batchembed uses dwug_en/data -o dwug-uses": "test_the_usage_analytics_example_runs_as_written",
    "python -c \"import batchembed; print(batchembed.read_output('dwug-uses').sort_by([('bert_cosine_apd', "
    "'descending')]).slice(0, 10).to_pandas()[['lemma', 'uses_1', 'uses_2', 'bert_cosine_apd', "
    "'bert_cosine_prt']])\"": "test_the_usage_analytics_example_runs_as_written",
    "batchembed evaluate --uses dwug_en/data --change dwug_en/stats/opt/stats_groupings.csv --json change.json": (
        "test_the_usage_analytics_example_runs_as_written"
    ),
}


def pages() -> list[Path]:
    """Every page written by hand (the option reference is generated from the code)."""
    return sorted(page for page in DOCS.rglob("*.md") if page != DOCS / "options.md")


def shell_blocks(page: Path) -> list[tuple[str, list[str]]]:
    """Each bash, sh, console or cron block of a page: the text above it, and its commands, one per
    logical line (continuations joined, comments dropped; in a console block the lines after `$ `)."""
    text = page.read_text(encoding="utf-8")
    blocks = []
    for fence in FENCE.finditer(text):
        language, body = fence.groups()
        if language not in ("bash", "sh", "console", "cron"):
            continue
        lines = [line.strip() for line in re.sub(r"\\\n\s*", "", body).splitlines()]
        if language == "console":
            lines = [line[2:] for line in lines if line.startswith("$ ")]
        commands = [re.sub(r"\s+#\s.*$", "", line) for line in lines if line and not line.startswith("#")]
        blocks.append((text[: fence.start()], commands))
    return blocks


def shown_command(start: str) -> str:
    """The one command of the pages' blocks that starts with `start`, as shown."""
    found = [c for page in pages() for _, commands in shell_blocks(page) for c in commands if c.startswith(start)]
    assert len(found) == 1 and found[0] in DOCS_COMMANDS, found
    return found[0]


def test_every_docs_command_is_run_by_a_test_or_says_why_not() -> None:
    blocks = [(page, above, commands) for page in pages() for above, commands in shell_blocks(page)]
    shown = {command for _, _, commands in blocks for command in commands}
    assert len(shown) >= 20, "the pages lost their commands, or the parser its way"
    assert not shown - DOCS_COMMANDS.keys(), (
        f"say in DOCS_COMMANDS which test runs these: {shown - DOCS_COMMANDS.keys()}"
    )
    assert not DOCS_COMMANDS.keys() - shown, f"no page shows these any more: {DOCS_COMMANDS.keys() - shown}"
    tests = "".join(path.read_text(encoding="utf-8") for path in (ROOT / "tests").glob("test_*.py"))
    for command, runner in DOCS_COMMANDS.items():
        if runner.startswith("test_"):
            assert f"def {runner.split()[0]}(" in tests, command
        else:
            assert runner.startswith((".ci/run", "needs ")), command
    # the reader sees it too: a block with a command nothing here runs has a note right above it
    for page, above, commands in blocks:
        not_run = [c for c in commands if DOCS_COMMANDS[c].startswith("needs ")]
        noted = NOT_RUN_NOTE.search(above) is not None
        assert noted == bool(not_run), f"{page.name}: a note '*Needs ...; not run by the tests.*' above {commands}"


def test_what_ci_runs_is_what_the_development_page_shows() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert 'pip install --quiet "torch==2.13.0" -e ".[test]"' in ci and "python -m pytest -q" in ci
    assert '"batchembed-pairs[test]",' in (ROOT / "pyproject.toml").read_text(encoding="utf-8").split("dev = [")[1]


def test_the_development_loop_names_declared_markers() -> None:
    loop = shown_command("python -m pytest -q -m ")
    declared = (ROOT / "pyproject.toml").read_text(encoding="utf-8").split("markers = [")[1].split("]")[0]
    markers = set(re.findall(r'^\s*"(\w+): ', declared, re.M))
    assert {"slow", "packaged"} <= markers
    named = set(shlex.split(loop)[-1].split()) - {"not", "and", "or"}
    assert named and named <= markers, named - markers


def test_the_batchembed_commands_in_the_docs_parse() -> None:
    """Every batchembed command the pages show, the ones nothing here can run included, names only
    options that exist and gives what the command requires (values are checked when a test runs it)."""
    import typer

    from batchembed.cli import app

    group = typer.main.get_command(app)
    parsed, failed = 0, []
    for command in DOCS_COMMANDS:
        for call in BATCHEMBED.findall(command):
            name, *args = shlex.split(call)[1:]
            try:
                group.commands[name].make_context(name, args)  # type: ignore[attr-defined]
                parsed += 1
            except Exception as error:  # noqa: BLE001 - click's usage errors, whatever their class
                failed.append(f"{call}: {error}")
    assert not failed, failed
    assert parsed >= 12


def run_doctests(page: Path) -> int:
    """The page's `>>>` examples, run in the current directory; how many there were."""
    test = doctest.DocTestParser().get_doctest(page.read_text(encoding="utf-8"), {}, page.name, str(page), 0)
    report: list[str] = []
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)
    return len(test.examples)


def test_the_reports_example_and_the_metadata_snippet_run_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_models: list[str]
) -> None:
    """reports.md's run-and-report line with the tiny models and `out` for /tmp/x: the page lands
    where its comment says; then output.md's metadata snippet on that output."""
    from conftest import cli_invoke

    shutil.copytree(ROOT / "sample_data", tmp_path / "sample_data")
    monkeypatch.chdir(tmp_path)
    line = shown_command("batchembed run sample_data -o /tmp/x && ")
    said = re.search(re.escape(line) + r" +# prints (\S+)\n", (DOCS / "reports.md").read_text(encoding="utf-8"))
    assert said, "the reports example lost its comment"
    run, report = (shlex.split(part.replace("/tmp/x", "out"))[1:] for part in line.split(" && "))
    assert cli_invoke(*run, *tiny_models).exit_code == 0
    done = cli_invoke(*report)
    assert done.exit_code == 0, done.output
    page = tmp_path / said.group(1).replace("/tmp/x", "out")
    assert Path(done.output.strip()) == page and page.is_file()
    assert run_doctests(DOCS / "output.md") >= 3


def test_the_object_storage_example_runs_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, s3_endpoint: str, tiny_models: list[str]
) -> None:
    """object-storage.md's two commands, with the tiny models, against the local S3 server with the
    page's buckets: a directory and a glob in, the output and then its report from the bucket."""
    import pyarrow as pa
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq
    from conftest import cli_invoke

    import batchembed

    store = pafs.S3FileSystem(endpoint_override=s3_endpoint, allow_bucket_creation=True)
    for bucket in ("corpora", "results"):
        store.create_dir(bucket)
    with store.open_output_stream("corpora/pairs/a.csv") as stream:
        stream.write(b"sentence1,sentence2\nthe light was bright,she saw the light\nthe river bank,a bank\n")
    pairs = pa.table({"sentence1": ["the children play"], "sentence2": ["we saw a play"]})
    pq.write_table(pairs, "corpora/extra/b.parquet", filesystem=store)
    pq.write_table(pairs, "corpora/extra/c.parquet.bak", filesystem=store)  # the glob leaves it out
    monkeypatch.chdir(tmp_path)
    run = cli_invoke(*shlex.split(shown_command("batchembed run s3://corpora/"))[1:], *tiny_models)
    assert run.exit_code == 0, run.output
    read = batchembed.read_output("s3://results/pairs").column("source_file").to_pylist()
    assert sorted({Path(name).name for name in read}) == ["a.csv", "b.parquet"]
    report = cli_invoke(*shlex.split(shown_command("batchembed report s3://results/"))[1:])
    assert report.exit_code == 0, report.output
    assert tmp_path / report.output.strip() == tmp_path / "pairs-report" / "report.html"


def test_the_usage_analytics_example_runs_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tiny_bert_dir: Path
) -> None:
    """usage-analytics.md's DWUG EN commands with the tiny models, on the repository's hand-made
    corpus unpacked as `dwug_en/` (DWUG EN itself cannot be fetched here)."""
    import json

    from conftest import cli_invoke

    shutil.copytree(ROOT / "tests" / "data" / "dwug", tmp_path / "dwug_en")
    monkeypatch.chdir(tmp_path)
    models = ["--no-glove", "--transformer", str(tiny_bert_dir)]  # the tiny GloVe lacks the corpus's words
    uses = cli_invoke(*shlex.split(shown_command("batchembed uses dwug_en/"))[1:], *models)
    assert uses.exit_code == 0, uses.output
    exec(shlex.split(shown_command("python -c "))[2], {})
    printed = capsys.readouterr().out
    assert "lemma" in printed and all(word in printed for word in ("harbour", "lantern", "orbit"))
    scored = cli_invoke(*shlex.split(shown_command("batchembed evaluate --uses dwug_en/"))[1:], *models)
    assert scored.exit_code == 0, scored.output
    assert "Graded change" in scored.output
    assert json.loads((tmp_path / "change.json").read_text(encoding="utf-8"))["change"]["results"]
