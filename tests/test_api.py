"""The Python API: the command line's job, compare, evaluate and reading an output, as functions."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from conftest import state_dir

import batchembed
from batchembed import api

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def models(tiny_glove_file: Path, tiny_bert_dir: Path) -> dict[str, Any]:
    return {"glove": str(tiny_glove_file), "transformer": str(tiny_bert_dir), "device": "cpu", "token_budget": 256}


@pytest.fixture
def pairs(tmp_path: Path) -> Path:
    rows = {
        "sentence1": ["the light was bright", "the bank of the river", "  ", "she saw the light"],
        "sentence2": ["she saw light", "my bank", "x", "the light in the room"],
    }
    path = tmp_path / "pairs.csv"
    pacsv.write_csv(pa.table(rows), path)
    return path


def test_public_names_are_documented() -> None:
    assert set(batchembed.__all__) >= {
        "run",
        "compare",
        "evaluate",
        "read_output",
        "Embedder",
        "BatchembedError",
        "UsageError",
        "InputError",
        "ModelError",
        "OutputError",
        "TooManyBadRows",
        "WorkersLost",
        "RunSummary",
        "Evaluation",
    }
    for name in batchembed.__all__:
        value = getattr(batchembed, name)
        if name != "__version__":
            assert inspect.getdoc(value), f"batchembed.{name} has no docstring"
    for name, value in vars(batchembed.Embedder).items():
        if not name.startswith("_"):
            assert inspect.getdoc(value), f"Embedder.{name} has no docstring"
    codes = {cls.__name__: int(cls.exit_code) for cls in batchembed.BatchembedError.__subclasses__()}
    assert codes == {
        "UsageError": 2,
        "InputError": 3,
        "ModelError": 4,
        "OutputError": 5,
        "TooManyBadRows": 7,
        "WorkersLost": 8,
    }


def test_run_returns_the_summary_and_prints_nothing(
    tmp_path: Path, pairs: Path, models: dict[str, Any], capfd: pytest.CaptureFixture[str]
) -> None:
    seen: list[int] = []
    summary = batchembed.run(pairs, tmp_path / "out", shard_rows=2, progress=seen.append, **models)
    assert isinstance(summary, batchembed.RunSummary)
    assert (summary.exit_code, summary.pairs_read, summary.shards_written) == (6, 4, 2)  # one empty sentence
    assert summary.status_counts["empty_sentence"] == 1
    assert seen == [2, 2]
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")  # no bar, no summary line, no log line
    saved = json.loads((state_dir(tmp_path / "out") / "summary.json").read_text())
    assert saved["rows_written"] == summary.rows_written

    table = batchembed.read_output(tmp_path / "out")
    expected = pq.read_table(tmp_path / "out").sort_by([("source_row", "ascending"), ("token_index_1", "ascending")])
    assert table.equals(expected.cast(table.schema))  # input order, whatever the file listing's order
    assert table.num_rows == summary.rows_written
    assert (
        table.schema.metadata[b"batchembed"]
        == pq.read_schema(next((tmp_path / "out").glob("*.parquet"))).metadata[b"batchembed"]
    )


def test_progress_true_is_a_tqdm_bar_on_stderr(
    tmp_path: Path, pairs: Path, models: dict[str, Any], capfd: pytest.CaptureFixture[str]
) -> None:
    batchembed.run(pairs, tmp_path / "out", progress=True, **models)
    out, err = capfd.readouterr()
    assert out == "" and "pairs: 100%" in err and "4/4" in err  # a CSV input: its rows counted for the total


def test_embedder_loads_the_models_once(
    tmp_path: Path, pairs: Path, models: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import batchembed.embedders.load

    loads: list[int] = []
    real = batchembed.embedders.load.load_embedders
    monkeypatch.setattr(batchembed.embedders.load, "load_embedders", lambda *a: loads.append(1) or real(*a))
    embedder = batchembed.Embedder(**models)
    first = embedder.compare("The light was bright", "She saw the light")
    again = [embedder.compare("The light was bright", "She saw the light") for _ in range(3)]
    for k in range(2):
        summary = embedder.run(pairs, tmp_path / f"out{k}", tokenize_workers=0)
        assert summary.pairs_read == 4
    assert embedder.evaluate(similarity=_graded(tmp_path)).graded
    assert len(loads) == 1
    assert all(rows == first for rows in again)
    assert [r["word_1"] for r in first] == ["The", "light"] and {r["status"] for r in first} == {"ok"}
    assert embedder.names == ["glove", "bert"] and [m["name"] for m in embedder.models] == ["glove", "bert"]
    assert batchembed.read_output(tmp_path / "out0").equals(batchembed.read_output(tmp_path / "out1"))


def test_compare_is_the_cli_table(models: dict[str, Any]) -> None:
    from typer.testing import CliRunner

    from batchembed.cli import app
    from batchembed.comparison import format_table

    rows = batchembed.compare("The light was bright, the light", "She saw the light", word="light", **models)
    assert [(r["token_index_1"], r["token_index_2"]) for r in rows] == [(1, 3), (6, 3)]
    assert all(r["glove_euclidean"] == 0.0 and r["bert_euclidean"] > 0 for r in rows)
    cli = ["--glove", models["glove"], "--transformer", models["transformer"], "--token-budget", "256", "--word"]
    result = CliRunner().invoke(app, ["compare", "The light was bright, the light", "She saw the light", *cli, "light"])
    assert result.exit_code == 0 and result.stdout == format_table(rows, ["glove", "bert"]) + "\n"


def _graded(tmp_path: Path) -> Path:
    path = tmp_path / "graded.csv"
    rows = {
        "word1": ["car", "bank", "light"],
        "word2": ["automobile", "shore", "light"],
        "sentence1": ["the car would not start", "we walked along the bank", "the light was bright"],
        "sentence2": ["an automobile stood there", "the boat drifted to the shore", "she saw light"],
        "score": [9.0, 4.0, 7.0],
    }
    pacsv.write_csv(pa.table(rows), path)
    return path


def test_evaluate_returns_the_figures_the_cli_prints(tmp_path: Path, models: dict[str, Any]) -> None:
    from typer.testing import CliRunner

    from batchembed.cli import app

    result = batchembed.evaluate(similarity=str(_graded(tmp_path)), **models)
    assert isinstance(result, batchembed.Evaluation)
    assert [(g.model, g.metric, g.pairs) for g in result.graded] == [
        ("glove", "euclidean", 3),
        ("glove", "cosine", 3),
        ("bert", "euclidean", 3),
        ("bert", "cosine", 3),
    ]
    result.write_json(tmp_path / "r.json")
    assert json.loads((tmp_path / "r.json").read_text())["graded"]["pairs"] == 3
    cli = ["--glove", models["glove"], "--transformer", models["transformer"], "--token-budget", "256"]
    printed = CliRunner().invoke(app, ["evaluate", "--similarity", str(_graded(tmp_path)), *cli])
    assert printed.exit_code == 0 and printed.stdout.strip() == result.table()


def test_api_errors_name_parameters_and_cli_errors_name_flags(
    tmp_path: Path, pairs: Path, models: dict[str, Any]
) -> None:
    from typer.testing import CliRunner

    from batchembed.cli import app

    with pytest.raises(batchembed.UsageError) as caught:
        batchembed.run(pairs, tmp_path / "out", shard_rows=0, **models)
    assert str(caught.value) == "shard_rows must be positive, got 0"
    assert caught.value.options == ("shard_rows",) and caught.value.exit_code == 2
    with pytest.raises(batchembed.UsageError, match=r"^both models are disabled: keep glove or transformer$"):
        batchembed.compare("a", "b", glove=None, transformer=None)
    with pytest.raises(batchembed.UsageError, match=r"^span_columns needs 4 comma-separated column names"):
        batchembed.run(pairs, tmp_path / "out", span_columns=("a", "b"), **models)

    batchembed.run(pairs, tmp_path / "out", **models)
    with pytest.raises(batchembed.OutputError) as other:
        batchembed.run(pairs, tmp_path / "out", shard_rows=3, **models)
    assert "(shard_rows 5000 -> 3); pass overwrite=True to replace them, or choose another output" in str(other.value)
    assert other.value.exit_code == 5

    cli = ["--glove", models["glove"], "--transformer", models["transformer"]]
    result = CliRunner().invoke(app, ["run", str(pairs), "-o", str(tmp_path / "out"), "--shard-rows", "3", *cli])
    assert result.exit_code == 5
    assert "pass --overwrite to replace them, or choose another --output" in result.output


def test_engine_and_progress_values_are_checked(tmp_path: Path, pairs: Path, models: dict[str, Any]) -> None:
    with pytest.raises(batchembed.UsageError, match=r"^engine must be local or ray, got 'spark'$"):
        batchembed.run(pairs, tmp_path / "out", engine="spark", **models)
    with pytest.raises(batchembed.UsageError, match=r"^ray_workers must be positive, got 0$"):
        batchembed.run(pairs, tmp_path / "out", engine="ray", ray_workers=0, **models)
    with pytest.raises(batchembed.UsageError, match=r"^progress must be True, False or a callable"):
        batchembed.run(pairs, tmp_path / "out", progress="yes", **models)  # type: ignore[arg-type]


# -- read_output refuses what its bookkeeping does not vouch for ---------------------------------


@pytest.fixture
def finished(tmp_path: Path, pairs: Path, models: dict[str, Any]) -> Path:
    out = tmp_path / "out"
    assert batchembed.run(pairs, out, shard_rows=2, **models).exit_code == 6
    return out


def test_read_output_refuses_an_unfinished_output(tmp_path: Path, pairs: Path, models: dict[str, Any]) -> None:
    out = tmp_path / "stopped"
    with pytest.raises(batchembed.TooManyBadRows):
        batchembed.run(pairs, out, shard_rows=2, max_bad_rows=0, **models)
    assert list(out.glob("part-*.parquet"))  # the first shard was written before the stop
    with pytest.raises(batchembed.OutputError, match=r"unfinished: its last run \(run 1\) stopped: 1 bad rows exceed"):
        batchembed.read_output(out)
    batchembed.run(pairs, out, shard_rows=2, **models)  # the re-run finishes it
    assert batchembed.read_output(out).num_rows == 6
    # as a run that is going (or was killed) leaves it: the manifest counts one more run, unfinished
    manifest, summary = state_dir(out) / "manifest.json", state_dir(out) / "summary.json"
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "runs": 3}))
    summary.write_text(json.dumps({**json.loads(summary.read_text()), "run": 3, "outcome": "running"}))
    with pytest.raises(batchembed.OutputError, match=r"its last run \(run 3\) is still running, or was killed; run"):
        batchembed.read_output(out)


def test_read_output_refuses_a_damaged_output(finished: Path) -> None:
    good = batchembed.read_output(finished)
    part = sorted(finished.glob("part-*.parquet"))[0]
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 1  # same size, other bytes
    part.write_bytes(bytes(data))
    with pytest.raises(batchembed.OutputError, match=r"changed since it was written \(size or SHA-256 differ\)"):
        batchembed.read_output(finished)
    data[len(data) // 2] ^= 1
    part.write_bytes(bytes(data))
    assert batchembed.read_output(finished).equals(good)

    extra = finished / f"part-{part.stem.removeprefix('part-').rsplit('-', 1)[0]}-999999.parquet"
    extra.write_bytes(part.read_bytes())
    with pytest.raises(batchembed.OutputError, match=rf"{extra.name}: a part without a done marker"):
        batchembed.read_output(finished)
    extra.rename(finished / "part-extra.parquet")  # not a name batchembed writes: foreign
    with pytest.raises(batchembed.OutputError, match=r"holds files batchembed did not write \(part-extra.parquet\)"):
        batchembed.read_output(finished)
    (finished / "part-extra.parquet").unlink()

    marker = next((state_dir(finished) / "done").glob("*.json"))
    saved = marker.read_text()
    marker.unlink()
    part_of_marker = finished / f"part-{marker.stem}.parquet"
    part_of_marker.rename(finished.parent / "aside.parquet")
    with pytest.raises(batchembed.OutputError, match=r"have a gap"):
        batchembed.read_output(finished)
    (finished.parent / "aside.parquet").rename(part_of_marker)
    marker.write_text(saved)
    part_of_marker.unlink()
    with pytest.raises(batchembed.OutputError, match=r"missing \(its done marker is there\)"):
        batchembed.read_output(finished)


def test_read_output_refuses_what_batchembed_did_not_write(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    pq.write_table(pa.table({"a": [1]}), tmp_path / "plain" / "part-0.parquet")
    with pytest.raises(batchembed.OutputError, match=r"plain: not a batchembed output \(no .*manifest.json\)"):
        batchembed.read_output(tmp_path / "plain")


def test_read_output_of_inputs_without_rows_is_empty_with_the_schema(tmp_path: Path, models: dict[str, Any]) -> None:
    (tmp_path / "empty.csv").write_text("sentence1,sentence2\n")
    assert batchembed.run(tmp_path / "empty.csv", tmp_path / "out", **models).exit_code == 0
    table = batchembed.read_output(tmp_path / "out")
    assert table.num_rows == 0 and "bert_cosine" in table.schema.names and "glove_euclidean" in table.schema.names


# -- one definition of every option ---------------------------------------------------------------


def _cli_commands() -> dict[str, Any]:
    import typer.main

    from batchembed.cli import app

    return typer.main.get_command(app).commands  # type: ignore[attr-defined, no-any-return]


API_OF = {"run": api.run, "compare": api.compare, "evaluate": api.evaluate, "report": api.report}
CLI_ONLY = {"quiet", "verbose", "json_path", "check"}  # run --check: the plan, printed


def _shown(default: Any) -> Any:
    return ",".join(default) if isinstance(default, tuple) else default


@pytest.mark.parametrize("name", sorted(API_OF))
def test_every_cli_option_is_an_api_parameter_with_the_same_default(name: str) -> None:
    from batchembed.options import OPTIONS

    signature = inspect.signature(API_OF[name]).parameters
    cli = {p.name: p for p in _cli_commands()[name].params}
    for param_name, param in cli.items():
        if param_name in CLI_ONLY:
            continue
        if param_name.startswith("no_") and param_name[3:] in signature:  # --no-glove: glove=None
            assert OPTIONS[param_name[3:]].none_flag == param.opts[0] and param.default is False
            assert signature[param_name[3:]].default is not None
            continue
        assert param_name in signature, f"{name} --{param_name}: no API parameter"
        api_default = signature[param_name].default
        if api_default is inspect.Parameter.empty:
            assert param.required, f"{name} {param_name}: required in the API only"
        else:
            assert param.default == _shown(api_default), (
                f"{name} {param_name}: CLI {param.default!r}, API {api_default!r}"
            )
    missing = [p for p in signature if p not in cli and p != "progress"]
    assert not missing, f"API parameters of {name} with no CLI option: {missing}"


def test_shared_parameters_agree_across_the_api() -> None:
    """The functions repeat the model and job options in their signatures (so IDEs and help()
    show them): they must agree with each other, and every one has its help in options.py."""
    from batchembed.options import OPTIONS

    functions = [api.run, api.compare, api.evaluate, api.report, api.Embedder, api.Embedder.run]
    functions += [api.Embedder.compare, api.Embedder.evaluate, api.distances, api.Embedder.distances]
    functions += [api.uses, api.Embedder.uses]
    defaults: dict[str, Any] = {}
    for function in functions:
        for param in inspect.signature(function).parameters.values():
            if param.name in ("self", "progress"):
                continue
            assert param.name in OPTIONS, f"{function.__qualname__}({param.name}): no entry in options.OPTIONS"
            if param.default is not inspect.Parameter.empty:
                assert defaults.setdefault(param.name, param.default) == param.default, param.name
    assert set(inspect.signature(api.run).parameters) == (
        set(inspect.signature(api.Embedder).parameters)
        | set(inspect.signature(api.Embedder.run).parameters) - {"self"}
        | {"engine", "ray_address", "ray_workers", "ray_prepare_cpus"}
    )
    assert set(inspect.signature(api.distances).parameters) == (
        set(inspect.signature(api.Embedder).parameters)
        | set(inspect.signature(api.Embedder.distances).parameters) - {"self"}
    )
    assert set(inspect.signature(api.uses).parameters) == (
        set(inspect.signature(api.Embedder).parameters)
        | set(inspect.signature(api.Embedder.uses).parameters) - {"self"}
        | {"engine", "ray_address", "ray_workers", "ray_prepare_cpus"}
    )
    unused = set(OPTIONS) - set(defaults) - {"inputs", "output", "sentence1", "sentence2", "pairs"}
    assert not unused, f"options.OPTIONS entries no API function takes: {unused}"


# -- a fresh interpreter -------------------------------------------------------------------------

SCRIPT = """
import json, sys
import batchembed

pairs, out, graded, glove, bert = sys.argv[1:6]
models = dict(glove=glove, transformer=bert, device="cpu", token_budget=256)
summary = batchembed.run([pairs], out, shard_rows=2, **models)
table = batchembed.read_output(out)
rows = batchembed.compare("The light was bright", "She saw the light", **models)
result = batchembed.evaluate(similarity=graded, **models)
batchembed.run([graded], out, shard_rows=2, incremental=True, **models)  # warns: pairs is no longer an input
try:
    batchembed.run(pairs, out, shard_rows=3, **models)
    error = None
except batchembed.BatchembedError as exc:
    error = [type(exc).__name__, exc.exit_code, str(exc)]
print(json.dumps({"exit": summary.exit_code, "rows": table.num_rows, "words": [r["word_1"] for r in rows],
                  "graded": len(result.graded), "error": error}))
"""


@pytest.mark.slow
def test_a_fresh_interpreter_runs_everything_through_the_public_names(
    tmp_path: Path, pairs: Path, tiny_glove_file: Path, tiny_bert_dir: Path
) -> None:
    out = tmp_path / "out"
    args = [str(pairs), str(out), str(_graded(tmp_path)), str(tiny_glove_file), str(tiny_bert_dir)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", SCRIPT, *args], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # the library prints nothing, warnings included, unless asked to
    result = json.loads(done.stdout)
    assert result == {
        "exit": 6,
        "rows": 6,
        "words": ["The", "light"],
        "graded": 4,
        "error": [
            "OutputError",
            5,
            f"{out}: holds results made with other settings (shard_rows 2 -> 3); pass overwrite=True to replace "
            "them, or choose another output",
        ],
    }


@pytest.mark.s3
def test_run_and_read_output_on_object_storage(
    bucket: str, s3_endpoint: str, tmp_path: Path, pairs: Path, models: dict[str, Any]
) -> None:
    import pyarrow.fs as pafs

    s3 = pafs.S3FileSystem(endpoint_override=s3_endpoint)
    with s3.open_output_stream(f"{bucket}/in/pairs.csv") as stream:
        stream.write(pairs.read_bytes())
    summary = batchembed.run(f"s3://{bucket}/in/pairs.csv", f"s3://{bucket}/out", shard_rows=2, **models)
    assert (summary.exit_code, summary.pairs_read) == (6, 4)
    remote = batchembed.read_output(f"s3://{bucket}/out")
    batchembed.run(pairs, tmp_path / "local", shard_rows=2, **models)
    local = batchembed.read_output(tmp_path / "local")
    assert remote.drop_columns(["source_file"]).equals(local.drop_columns(["source_file"]))
    markers = s3.get_file_info(pafs.FileSelector(f"{bucket}/out.batchembed/done"))
    s3.delete_file(sorted(m.path for m in markers)[0])
    with pytest.raises(batchembed.OutputError):
        batchembed.read_output(f"s3://{bucket}/out")


def test_no_module_shadows_a_public_function() -> None:
    """Importing a submodule sets it as an attribute of the package: none may share a public name."""
    import pkgutil

    modules = {m.name for m in pkgutil.iter_modules(batchembed.__path__)}
    assert not modules & set(batchembed.__all__)


RAY_SCRIPT = """
import json, sys
import batchembed

source, glove, bert = sys.argv[1:4]
models = dict(glove=glove, transformer=bert, device="cpu", token_budget=256, shard_rows=2)
local = batchembed.run(source, source + "-local-out", **models)
ray = batchembed.run(source, source + "-ray-out", engine="ray", ray_workers=1, **models)
a, b = batchembed.read_output(source + "-local-out"), batchembed.read_output(source + "-ray-out")
distances = [c for c in a.column_names if c.endswith(("_euclidean", "_cosine"))]
same = a.drop_columns(distances).equals(b.drop_columns(distances))
close = all(
    x is None and y is None or abs(x - y) < 1e-5
    for c in distances for x, y in zip(a.column(c).to_pylist(), b.column(c).to_pylist())
)
print(json.dumps({"local": local.pairs_read, "ray": ray.pairs_read, "same": same, "close": close}))
"""


@pytest.mark.slow
@pytest.mark.ray
def test_a_fresh_interpreter_runs_the_ray_engine_on_object_storage(
    bucket: str, s3_endpoint: str, pairs: Path, tiny_glove_file: Path, tiny_bert_dir: Path
) -> None:
    """`import batchembed` and one call each: the local and the Ray engine (a Ray started for it)
    read s3:// and write s3://, and read_output finds the same rows in both outputs (distances within
    1e-5: the engines run the model with different torch thread counts)."""
    import pyarrow.fs as pafs

    with pafs.S3FileSystem(endpoint_override=s3_endpoint).open_output_stream(f"{bucket}/pairs.csv") as stream:
        stream.write(pairs.read_bytes())
    args = [f"s3://{bucket}/pairs.csv", str(tiny_glove_file), str(tiny_bert_dir)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0"}
    done = subprocess.run(
        [sys.executable, "-c", RAY_SCRIPT, *args], capture_output=True, text=True, env=env, timeout=600
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"local": 4, "ray": 4, "same": True, "close": True}


def test_the_progress_bar_knows_its_total_and_moves_per_piece(tmp_path: Path, tiny_glove_file: Path) -> None:
    """Parquet footers give the pairs in advance: the bar has a total (and so an ETA), and it moves
    once per piece, not once per shard."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from batchembed.arguments import _Bar, progress_callback

    rows = 2 * 1024 + 10  # three pieces in one shard
    pq.write_table(
        pa.table({"sentence1": ["the light was bright"] * rows, "sentence2": ["she radiates light"] * rows}),
        tmp_path / "pairs.parquet",
    )
    seen: list[tuple[int | None, int]] = []

    class Recording(_Bar):
        def __call__(self, pairs: int) -> None:
            seen.append((self.total(), pairs))

    with progress_callback(True) as bar:
        assert isinstance(bar, _Bar)
    recording = Recording()
    batchembed.Embedder(str(tiny_glove_file), None).run(
        tmp_path / "pairs.parquet", tmp_path / "out", tokenizer="whitespace", progress=recording
    )
    assert [total for total, _ in seen] == [rows] * 3
    assert sorted(pairs for _, pairs in seen) == [10, 1024, 1024]
