"""One job path, traced: every done marker, on every engine and placement, is written by
stages/task.run_task (directly or through a function it is handed), never by the driver."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from batchembed.config import EmbedOptions, GloveSpec, RunConfig, TransformerSpec
from batchembed.io.markers import TRACE_VARIABLE

RUN_TASK = "batchembed.stages.task.run_task"


def _pairs(path: Path, n: int = 23) -> Path:
    rows = ["sentence1,sentence2"] + [
        f'"the light in room {k} was bright","she radiates light, {k} times"' for k in range(n)
    ]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def _traced(trace: Path) -> dict[str, list[str]]:
    stacks = {}
    for file in trace.glob("*.jsonl"):
        for line in file.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            stacks[record["shard"]] = record["stack"]
    return stacks


def _assert_every_marker_from_run_task(out: Path, trace: Path) -> None:
    marked = {p.stem for p in (out.parent / f"{out.name}.batchembed" / "done").glob("*.json")}
    stacks = _traced(trace)
    assert marked and set(stacks) == marked  # every marker of the output was traced, and only those
    for shard, stack in stacks.items():
        assert RUN_TASK in stack, (shard, stack)
        assert not any(frame.startswith("batchembed.engines.job.") for frame in stack), (shard, stack)


def _models(tiny_bert_dir: Path, tiny_glove_file: Path) -> dict:
    return {
        "glove": GloveSpec(str(tiny_glove_file)),
        "transformer": TransformerSpec(str(tiny_bert_dir)),
        "tokenizer": "whitespace",
    }


@pytest.mark.parametrize("workers", [0, 1])
def test_the_local_engine_marks_every_shard_in_run_task(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int, tiny_bert_dir, tiny_glove_file
) -> None:
    from batchembed.embedders.load import load_embedders
    from batchembed.engines.local import run

    trace = tmp_path / "trace"
    trace.mkdir()
    monkeypatch.setenv(TRACE_VARIABLE, str(trace))
    src = _pairs(tmp_path / "pairs.csv")
    pq.write_table(_csv_table(src), tmp_path / "pairs.parquet", row_group_size=4)
    models = _models(tiny_bert_dir, tiny_glove_file)
    config = RunConfig(
        (str(src), str(tmp_path / "pairs.parquet")),
        tmp_path / "out",
        shard_rows=5,
        embed=EmbedOptions(device="cpu", tokenize_workers=workers),
        **models,
    )
    summary = run(config, load_embedders(config.glove, config.transformer, config.embed))
    assert summary.exit_code == 0 and summary.shards_written == 10
    _assert_every_marker_from_run_task(tmp_path / "out", trace)


def _csv_table(path: Path):
    import pyarrow.csv as pacsv

    return pacsv.read_csv(path)


@pytest.mark.ray
def test_the_ray_engine_marks_every_shard_in_run_task(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, s3_endpoint, tiny_bert_dir, tiny_glove_file
) -> None:
    ray = pytest.importorskip("ray")
    from batchembed.engines.ray import run as run_ray

    trace = tmp_path / "trace"
    trace.mkdir()
    monkeypatch.setenv(TRACE_VARIABLE, str(trace))  # forwarded to the actors with the storage settings
    src = _pairs(tmp_path / "pairs.csv")
    models = _models(tiny_bert_dir, tiny_glove_file)
    config = RunConfig((str(src),), tmp_path / "out", shard_rows=5, embed=EmbedOptions(device="cpu"), **models)
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    try:
        summary = run_ray(config, workers=1)
    finally:
        if started:
            ray.shutdown()
    assert summary.exit_code == 0 and summary.shards_written == 5
    _assert_every_marker_from_run_task(tmp_path / "out", trace)
