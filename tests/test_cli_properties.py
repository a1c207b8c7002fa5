"""As a property: the CLI, with random options, over random hostile inputs and damaged
output directories, never shows a traceback, exits only with documented codes, accounts for every
input row, and writes `ok` exactly where every distance is present and finite. The damage reaches
the bookkeeping too (manifest, done markers, the lock record, stray temporaries): after it, a resume
with the same options (with --overwrite only where the manifest itself is unreadable) ends with the
rows of a fresh run.

The tiny real models of conftest.py (GloVe text file, 2-layer BERT) are loaded once per distinct
set of model options and reused, so an example costs two runs of the pipeline, not two model loads.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import WORDS, examples, state_dir
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_malformed import csv_bytes, parquet_bytes, parquet_tables
from typer.testing import CliRunner

import batchembed.embedders.load
from batchembed import status
from batchembed.cli import app
from batchembed.config import Columns
from batchembed.io.reader import InputFile, read_shards

DOCUMENTED = {0, 2, 3, 4, 5, 6, 7, 8}  # 1 is a bug, 130 needs a signal
RAN = {0, 3, 6, 7}
runner = CliRunner()


@pytest.fixture(scope="module")
def degenerate_glove_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny GloVe with a zero row, a NaN row and an infinite row among normal ones."""
    rng = np.random.default_rng(2)
    special = {"light": ["0"] * 8, "the": ["nan"] * 8, "bright": ["inf", *["0.5"] * 7]}
    lines = [" ".join([w, *special.get(w, [f"{v:.5f}" for v in rng.normal(size=8)])]) for w in WORDS]
    path = tmp_path_factory.mktemp("degenerate_glove") / "glove.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def cached_models(monkeypatch_module: pytest.MonkeyPatch) -> dict[Any, Any]:
    """load_embedders, remembered per model options (errors too), for the CLI's own call."""
    cache: dict[Any, Any] = {}
    real = batchembed.embedders.load.load_embedders

    def load(glove: Any, transformer: Any, options: Any) -> Any:
        key = (glove, transformer, options.precision)
        if key not in cache:
            try:
                cache[key] = real(glove, transformer, options)
            except Exception as exc:  # a usage or model error: raised again, as the real load would
                cache[key] = exc
        if isinstance(cache[key], Exception):
            raise cache[key]
        return cache[key]

    monkeypatch_module.setattr(batchembed.embedders.load, "load_embedders", load)
    return cache


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


options = st.fixed_dictionaries(
    {
        "shard_rows": st.integers(1, 4),
        "tokenizer": st.sampled_from(["flair", "whitespace"]),
        "layers": st.sampled_from(["-1", "-1", "-1,-2", "all", "0", "-3", "3", "-4"]),  # 3, -4: the model lacks them
        "pooling": st.sampled_from(["first", "mean", "first_last"]),
        "concat": st.booleans(),
        "max_bad_rows": st.sampled_from([None, None, None, None, 0, 2, -1]),  # -1: a usage error
        "glove": st.sampled_from(["tiny", "degenerate", "degenerate", "none"]),
        "no_transformer": st.sampled_from([False, False, True]),
        "token_budget": st.sampled_from([None, 8, 64]),
    }
)
damage = st.sampled_from(
    [
        "none",
        "truncate manifest",
        "garble manifest",
        "manifest list",
        "manifest field",
        "drop markers",
        "marker field",
        "garble marker",
        "forge last",
        "copy marker",
        "lock record",
        "stray temporaries",
    ]
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 10**6) | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=5,
)
inputs = st.one_of(
    csv_bytes.map(lambda b: (".csv", b)),
    parquet_tables().map(lambda t: (".parquet", parquet_bytes(t))),
    st.sampled_from([(".csv", b"sentence1,sentence2\n"), (".csv", b"sentence1,sentence2,word\r\n")]),
)


def cli_args(src: Path, out: Path, opts: dict[str, Any], glove: Path, degenerate: Path, bert: Path) -> list[str]:
    args = ["run", str(src), "-o", str(out), "-q", "--shard-rows", str(opts["shard_rows"])]
    args += ["--tokenizer", opts["tokenizer"], f"--layers={opts['layers']}", "--subtoken-pooling", opts["pooling"]]
    args += ["--layer-concat"] if opts["concat"] else []
    args += [] if opts["max_bad_rows"] is None else [f"--max-bad-rows={opts['max_bad_rows']}"]
    args += [] if opts["token_budget"] is None else ["--token-budget", str(opts["token_budget"])]
    glove_choice = {"tiny": str(glove), "degenerate": str(degenerate)}.get(opts["glove"])
    args += ["--no-glove"] if glove_choice is None else ["--glove", glove_choice]
    args += ["--no-transformer"] if opts["no_transformer"] else ["--transformer", str(bert)]
    return args


def check_run(result: Any, src: Path, out: Path, opts: dict[str, Any]) -> None:
    assert "Traceback" not in result.output, result.output
    assert result.exit_code in DOCUMENTED, (result.exit_code, result.output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    if result.exit_code not in RAN:
        return
    if not state_dir(out).exists():  # refused before a model loaded (precheck.py): nothing written, nothing left
        assert result.exit_code == 3 and not out.exists(), result.output
        return
    summary = json.loads((state_dir(out) / "summary.json").read_text())
    assert summary["exit_code"] == result.exit_code
    parts = sorted(out.glob("part-*.parquet"))
    if not parts:
        assert summary["pairs_read"] == 0
        return
    table = pq.read_table(out).to_pydict()
    rows = table["source_row"]
    assert sorted(set(rows)) == list(range(1, summary["pairs_read"] + 1))  # every pair once, no gaps
    assert rows == sorted(rows)
    if result.exit_code in (0, 6):  # the whole file: the reader's own count agrees
        fmt = "parquet" if src.suffix == ".parquet" else "csv"
        assert sum(len(s) for s in read_shards(InputFile(src, fmt), Columns(), opts["shard_rows"])) == len(set(rows))
    models = [m for m, off in (("glove", opts["glove"] == "none"), ("bert", opts["no_transformer"])) if not off]
    for i, value in enumerate(table["status"]):
        distances = [table[f"{m}_{metric}"][i] for m in models for metric in ("euclidean", "cosine")]
        complete = all(d is not None and math.isfinite(d) for d in distances)
        assert (value == status.OK) == complete, (value, distances)


def damage_output(out: Path, how: str, seed: int, value: Any) -> None:
    state = state_dir(out)
    manifest = state / "manifest.json"
    markers = sorted((state / "done").glob("*.json"))
    marker = markers[seed % len(markers)] if markers else None
    if how == "truncate manifest" and manifest.exists():
        manifest.write_bytes(manifest.read_bytes()[: seed % max(1, manifest.stat().st_size)])
    elif how == "garble manifest" and manifest.exists():
        data = bytearray(manifest.read_bytes())
        for k in range(3):
            data[(seed * (k + 7)) % len(data)] = (seed >> k) & 0xFF
        manifest.write_bytes(bytes(data))
    elif how == "manifest list" and manifest.exists():
        manifest.write_text("[]")
    elif how == "manifest field" and manifest.exists():
        data = json.loads(manifest.read_text())
        for record in data.get("inputs", {}).values():
            field = sorted(record)[seed % len(record)]
            record[field] = value
        manifest.write_text(json.dumps(data))
    elif how == "drop markers":
        for k, found in enumerate(markers):
            if (seed >> k) & 1:
                found.unlink()
    elif how == "marker field" and marker is not None:
        data = json.loads(marker.read_text())
        data[sorted(data)[seed % len(data)]] = value
        marker.write_text(json.dumps(data))
    elif how == "garble marker" and marker is not None:
        raw = bytearray(marker.read_bytes())
        raw[seed % len(raw)] = (seed >> 3) & 0xFF
        marker.write_bytes(bytes(raw))
    elif how == "forge last" and marker is not None:
        data = json.loads(marker.read_text())
        data["last"] = not data["last"]
        marker.write_text(json.dumps(data))
        for later in markers[markers.index(marker) + 1 :]:
            if seed & 1:
                later.unlink()
    elif how == "copy marker" and marker is not None:
        data = json.loads(marker.read_text())
        index = data["index"] + 1 + seed % 5
        part = out / f"part-{data['shard_id']}.parquet"
        data.update(index=index, shard_id=f"{data['file_key']}-{index:06d}", first_row=data["first_row"] + 7)
        (marker.parent / f"{data['shard_id']}.json").write_text(json.dumps(data))
        if part.exists():
            (out / f"part-{data['shard_id']}.parquet").write_bytes(part.read_bytes())
    elif how == "lock record" and (state / "lock").exists():
        (state / "lock").write_text(json.dumps(value))
    elif how == "stray temporaries" and state.exists():
        (out / f".part-x-0123abcd-000000.parquet.tmp-{seed}").write_bytes(b"PAR1")  # a name batchembed writes
        (state / "tmp" / f".manifest.json.tmp-{seed}").write_text("{")


def output_table(out: Path) -> list[tuple]:
    if not list(out.glob("part-*.parquet")):
        return []
    table = pq.read_table(out)
    return sorted(tuple(str(v) for v in row.values()) for row in table.to_pylist())


@pytest.mark.slow
@settings(
    max_examples=examples(30),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=inputs, first=options, second=options, how=damage, seed=st.integers(0, 2**16), value=json_values)
def test_cli_never_writes_wrong_silently(
    cached_models: dict[Any, Any],
    tiny_glove_file: Path,
    degenerate_glove_file: Path,
    tiny_bert_dir: Path,
    data: tuple[str, bytes],
    first: dict[str, Any],
    second: dict[str, Any],
    how: str,
    seed: int,
    value: Any,
) -> None:
    suffix, content = data
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / f"hostile{suffix}"
        src.write_bytes(content)
        out = Path(tmp) / "out"
        args = cli_args(src, out, first, tiny_glove_file, degenerate_glove_file, tiny_bert_dir)
        result = runner.invoke(app, args)
        check_run(result, src, out, first)
        if not out.exists():
            return
        # damaged bookkeeping, then a resume with the same options: a fresh run's rows
        damage_output(out, how, seed, value)
        resumed = runner.invoke(app, args)
        check_run(resumed, src, out, first)
        if resumed.exit_code == 5:  # only an unreadable manifest may refuse a resume, with a hint
            assert "--overwrite" in resumed.output, resumed.output
            resumed = runner.invoke(app, [*args, "--overwrite"])
            check_run(resumed, src, out, first)
        fresh = Path(tmp) / "fresh"
        again = runner.invoke(app, cli_args(src, fresh, first, tiny_glove_file, degenerate_glove_file, tiny_bert_dir))
        if resumed.exit_code == again.exit_code and again.exit_code in (0, 3, 6):
            assert output_table(out) == output_table(fresh)
        # then a run with other (or the same) options
        args = cli_args(src, out, second, tiny_glove_file, degenerate_glove_file, tiny_bert_dir)
        result = runner.invoke(app, args)
        check_run(result, src, out, second)
