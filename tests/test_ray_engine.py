"""`--engine ray`: the same rows as a local run, resumable, models loaded in the actors."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

ray = pytest.importorskip("ray")

from batchembed.cli import app  # noqa: E402
from batchembed.config import EmbedOptions, GloveSpec, RunConfig, TransformerSpec  # noqa: E402
from batchembed.engines.local import run as run_local  # noqa: E402
from batchembed.engines.ray import run as run_ray  # noqa: E402


@pytest.fixture(scope="module")
def ray_cluster():
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield
    ray.shutdown()


def _pairs(path, n: int = 23) -> None:
    rows = ["sentence1,sentence2"]
    for k in range(n):
        rows.append(f'"the light in room {k} was bright","she radiates light and joy, {k} times"')
    rows.append('"",empty first sentence')  # a bad row travels too
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")


def _sorted(directory):
    return pq.read_table(directory).sort_by([("source_row", "ascending"), ("token_index_1", "ascending")])


def test_ray_run_equals_local_run_and_resumes(tmp_path, ray_cluster, tiny_bert_dir, tiny_glove_file) -> None:
    _pairs(tmp_path / "pairs.csv")
    models = {
        "glove": GloveSpec(str(tiny_glove_file)),
        "transformer": TransformerSpec(str(tiny_bert_dir)),
        "embed": EmbedOptions(device="cpu", token_budget=256),
    }
    ray_config = RunConfig((str(tmp_path / "pairs.csv"),), tmp_path / "ray", shard_rows=5, **models)
    seen: list[int] = []
    summary = run_ray(ray_config, lambda result: seen.append(result.pairs), workers=2)
    assert summary.exit_code == 6  # the empty sentence is a bad row
    assert sum(seen) == 24 and summary.shards_written == 5
    assert summary.subword_tokens > 0

    from batchembed.models import load_embedders

    local_config = RunConfig((str(tmp_path / "pairs.csv"),), tmp_path / "local", shard_rows=5, **models)
    run_local(local_config, load_embedders(local_config.glove, local_config.transformer, local_config.embed))
    ours, theirs = _sorted(tmp_path / "ray"), _sorted(tmp_path / "local")
    assert ours.drop_columns(["source_file"]).equals(theirs.drop_columns(["source_file"]))
    assert (
        json.loads(pq.read_schema(next((tmp_path / "ray").glob("part-*.parquet"))).metadata[b"batchembed"])["models"]
        == json.loads(pq.read_schema(next((tmp_path / "local").glob("part-*.parquet"))).metadata[b"batchembed"])[
            "models"
        ]
    )

    again = run_ray(ray_config, workers=1)  # a finished job: nothing to do, same output
    assert again.shards_written == 0 and again.shards_skipped == 5
    assert _sorted(tmp_path / "ray").equals(ours)


def test_ray_workers_that_cannot_load_the_model_are_a_model_error(tmp_path, ray_cluster) -> None:
    from typer.testing import CliRunner

    _pairs(tmp_path / "pairs.csv", 2)
    result = CliRunner().invoke(
        app,
        [
            "run",
            str(tmp_path / "pairs.csv"),
            "-o",
            str(tmp_path / "out"),
            "--engine",
            "ray",
            "--no-glove",
            "--transformer",
            str(tmp_path / "no-such-model"),
            "--device",
            "cpu",
            "-q",
        ],
    )
    assert result.exit_code == 4, result.output
    assert result.output.strip().splitlines()[-1] == (
        f"Error: --transformer {tmp_path / 'no-such-model'}: no such directory; "
        "give a model directory or a Hugging Face id"
    )


def test_ray_workers_refuse_layers_the_model_lacks(tmp_path, ray_cluster, tiny_bert_dir) -> None:
    """The actors' own usage error reaches the driver as it is: exit 2, one line."""
    from typer.testing import CliRunner

    _pairs(tmp_path / "pairs.csv", 2)
    args = ["run", str(tmp_path / "pairs.csv"), "-o", str(tmp_path / "out"), "--engine", "ray", "--no-glove"]
    args += ["--transformer", str(tiny_bert_dir), "--layers", "9", "--device", "cpu", "-q"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines()[-1] == (
        f"Error: --layers 9: layer 9 does not exist in {tiny_bert_dir}, which has 2 layers; "
        "give layers from -3 to 2 (0 or -3 is the embedding layer) or 'all'"
    )


def test_ray_cuda_without_gpus_is_a_usage_error(tmp_path, ray_cluster) -> None:
    from batchembed.engines.ray import start_workers
    from batchembed.errors import UsageError

    config = RunConfig(("x.csv",), tmp_path / "out", embed=EmbedOptions(device="cuda"))
    with pytest.raises(UsageError, match="has no GPU"):
        start_workers(config, None, None)
