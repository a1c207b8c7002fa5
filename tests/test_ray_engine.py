"""`--engine ray`: the same rows as a local run, resumable, models loaded in the actors."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import threading
import time

import pyarrow.parquet as pq
import pytest

ray = pytest.importorskip("ray")

from conftest import ended_within  # noqa: E402

from batchembed.cli import app  # noqa: E402
from batchembed.config import EmbedOptions, GloveSpec, RunConfig, TransformerSpec  # noqa: E402
from batchembed.engines.local import run as run_local  # noqa: E402
from batchembed.engines.ray import run as run_ray  # noqa: E402


@pytest.fixture(scope="module")
def ray_cluster(s3_endpoint):
    """A local Ray cluster with two worker CPUs; started after the S3 server so that its worker
    processes inherit the (dummy) credentials, as nodes of a real cluster have their own."""
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
    summary = run_ray(ray_config, seen.append, workers=2)
    assert summary.exit_code == 6  # the empty sentence is a bad row
    assert sum(seen) == 24 and summary.shards_written == 5
    assert summary.subword_tokens > 0

    from batchembed.embedders.load import load_embedders

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
    from batchembed.engines.ray import Placement
    from batchembed.errors import UsageError

    config = RunConfig(("x.csv",), tmp_path / "out", embed=EmbedOptions(device="cuda"))
    with pytest.raises(UsageError, match="has no GPU"):
        Placement(config, None, None)
    with pytest.raises(UsageError, match="ray_prepare_cpus 2: the Ray cluster has only 2 CPUs"):
        Placement(RunConfig(("x.csv",), tmp_path / "out", embed=EmbedOptions(device="cpu")), None, 2)


# -- the distributed shape: planned from metadata, written by the workers, survives a lost worker --

WORDS = ["the light", "a bright room", "she read", "river bank", "money in the bank", "joy", "last night"]


def _corpus(directory, csv_rows: int = 17, parquet_rows: int = 41) -> None:
    """A CSV file, and a Parquet file of several row groups with a bad row, in a directory."""
    import pyarrow as pa

    directory.mkdir(parents=True, exist_ok=True)
    _pairs(directory / "a.csv", csv_rows)
    first = [f"{WORDS[k % 7]} was bright {k}" for k in range(parquet_rows)]
    second = [f"{WORDS[(k * 3) % 7]} and {WORDS[k % 7]}" for k in range(parquet_rows)]
    first[5] = None
    pq.write_table(pa.table({"sentence1": first, "sentence2": second}), directory / "b.parquet", row_group_size=6)


def _models(tiny_bert_dir, tiny_glove_file) -> dict:
    return {
        "glove": GloveSpec(str(tiny_glove_file)),
        "transformer": TransformerSpec(str(tiny_bert_dir)),
        "embed": EmbedOptions(device="cpu", token_budget=256),
    }


def _local(inputs, out, models, shard_rows: int = 4):
    from batchembed.embedders.load import load_embedders

    config = RunConfig(tuple(inputs), out, shard_rows=shard_rows, **models)
    return run_local(config, load_embedders(config.glove, config.transformer, config.embed))


def _assert_same_rows(ours, theirs) -> None:
    """Text and position columns identical, distances within 1e-5."""
    import numpy as np

    keys = [("source_file", "ascending"), ("source_row", "ascending"), ("token_index_1", "ascending")]
    keys.append(("token_index_2", "ascending"))
    ours, theirs = ours.sort_by(keys), theirs.sort_by(keys)
    assert ours.num_rows == theirs.num_rows and ours.column_names == theirs.column_names
    for name in ours.column_names:
        if name.endswith(("_euclidean", "_cosine")):
            a = ours.column(name).to_numpy(zero_copy_only=False).astype(float)
            b = theirs.column(name).to_numpy(zero_copy_only=False).astype(float)
            assert np.array_equal(np.isnan(a), np.isnan(b)), name
            assert np.allclose(a, b, atol=1e-5, equal_nan=True), name
        else:
            assert ours.column(name).equals(theirs.column(name)), name


def test_parquet_shards_are_planned_from_footers_and_equal_a_local_run(
    tmp_path, ray_cluster, tiny_bert_dir, tiny_glove_file
) -> None:
    _corpus(tmp_path / "data")
    models = _models(tiny_bert_dir, tiny_glove_file)
    inputs = (str(tmp_path / "data"),)
    summary = run_ray(RunConfig(inputs, str(tmp_path / "ray"), shard_rows=4, **models), workers=2)
    assert summary.exit_code == 6 and summary.pairs_read == 18 + 41  # the null sentence is a bad row
    assert summary.shards_written == 5 + 11
    _local(inputs, tmp_path / "local", models)
    _assert_same_rows(pq.read_table(tmp_path / "ray"), pq.read_table(tmp_path / "local"))
    # a missing part is redone alone: the driver plans it from the footer and the markers
    victim = sorted((tmp_path / "ray").glob("part-b-*.parquet"))[3]
    victim.unlink()
    again = run_ray(RunConfig(inputs, str(tmp_path / "ray"), shard_rows=4, **models), workers=1)
    assert (again.shards_written, again.shards_skipped) == (1, 15)
    _assert_same_rows(pq.read_table(tmp_path / "ray"), pq.read_table(tmp_path / "local"))
    # the bookkeeping is the local engine's: it finds the job done
    assert _local(inputs, tmp_path / "ray", models).nothing_to_do


def test_ray_engine_reads_and_writes_object_storage(
    tmp_path, ray_cluster, bucket, tiny_bert_dir, tiny_glove_file
) -> None:
    import pyarrow.fs as pafs

    _corpus(tmp_path / "data", csv_rows=9, parquet_rows=13)
    s3 = pafs.FileSystem.from_uri("s3://x")[0]
    pafs.copy_files(str(tmp_path / "data"), f"{bucket}/in", destination_filesystem=s3)
    models = _models(tiny_bert_dir, tiny_glove_file)
    config = RunConfig((f"s3://{bucket}/in",), f"s3://{bucket}/out", shard_rows=4, **models)
    assert run_ray(config, workers=2).pairs_read == 10 + 13
    ours = pq.read_table(f"{bucket}/out", filesystem=s3).drop_columns(["source_file"])
    _local([str(tmp_path / "data")], tmp_path / "local", models)
    theirs = pq.read_table(tmp_path / "local").drop_columns(["source_file"])
    keys = [("pair_id", "ascending"), ("token_index_1", "ascending"), ("token_index_2", "ascending")]
    assert ours.sort_by(keys).column("word_1").equals(theirs.sort_by(keys).column("word_1"))
    assert ours.num_rows == theirs.num_rows


PREPARE_ACTOR = "ray::MapWorker(MapBatches(PrepareActor))"
MODEL_ACTOR = "ray::ModelActor"
ACTOR_KILLS = int(os.environ.get("BATCHEMBED_ACTOR_KILLS", "4"))  # more by hand: BATCHEMBED_ACTOR_KILLS=32
ACTOR_RUN_BOUND = 240.0  # seconds: far above a run here (about ten), far below "forever"


def _actor_processes(title: str) -> list:
    """This test session's Ray actor processes with that title (Ray names an actor's process from
    the moment it starts to create the actor: ray::ModelActor.__init__, ray::ModelActor, ...)."""
    import psutil

    found = []
    for process in psutil.Process().children(recursive=True):  # the raylet's workers: ours, no other cluster's
        try:
            if " ".join(process.cmdline()).startswith(title) and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
        except psutil.Error:
            continue
    return found


class _ActorKiller(threading.Thread):
    """kill -9 of the first actor process with `title` that appears from now on, `delay` seconds
    after it appears: a small delay lands in its start-up (importing, loading the models)."""

    def __init__(self, title: str, delay: float) -> None:
        super().__init__(daemon=True)
        self.title, self.delay = title, delay
        self.before = {p.pid for p in _actor_processes(title)}
        self.stop = threading.Event()
        self.killed: str | None = None  # the victim's title when it died

    def run(self) -> None:
        while not self.stop.is_set():
            new = [p for p in _actor_processes(self.title) if p.pid not in self.before]
            if new:
                if self.stop.wait(self.delay):
                    return
                try:
                    title = " ".join(new[0].cmdline())
                    new[0].kill()
                    self.killed = title
                except Exception:  # noqa: BLE001 - gone already: nothing killed
                    pass
                return
            time.sleep(0.005)


def _wait_for_markers(done, count: int, alive) -> None:
    deadline = time.monotonic() + 240
    while (not done.is_dir() or len(os.listdir(done)) < count) and alive() and time.monotonic() < deadline:
        time.sleep(0.05)


def _bounded_ray_run(config: RunConfig):
    """run_ray to its end: its summary, or the exception it ended with. Fails the test if it has
    not ended within ACTOR_RUN_BOUND."""
    return ended_within(lambda: run_ray(config, workers=1), ACTOR_RUN_BOUND)


@pytest.mark.slow
def test_an_actor_killed_at_any_moment_ends_the_run_and_a_resume_equals_a_fresh_run(
    tmp_path, ray_cluster, tiny_bert_dir, tiny_glove_file, monkeypatch
) -> None:
    """kill -9 of a prepare actor (Ray Data replaces it and runs its task again) or of the model
    actor (Ray restarts it and retries its calls), at a random moment from its start-up (imports,
    model loading) to the run's end: each run ends within a bound, with the rows and exit code of
    an uninterrupted run, or WorkersLost (exit 8, one line) and then a resume that equals it."""
    from collections import Counter

    from batchembed.errors import ExitCode, WorkersLost

    monkeypatch.setattr("batchembed.stages.task.PIECE_PAIRS", 8)  # many pieces: a kill lands mid-task
    _corpus(tmp_path / "data", csv_rows=30, parquet_rows=120)
    models = _models(tiny_bert_dir, tiny_glove_file)
    inputs = (str(tmp_path / "data"),)
    fresh = _local(inputs, tmp_path / "local", models, shard_rows=20)
    expected = pq.read_table(tmp_path / "local")
    rng = random.Random(24)
    outcomes = []
    for k in range(ACTOR_KILLS):
        victim = (PREPARE_ACTOR, MODEL_ACTOR)[k % 2]
        startup = k % 4 < 2  # half in the actor's start-up, half later in the run
        delay = rng.uniform(0.0, 1.0) if startup else rng.uniform(1.0, 6.0)
        out = tmp_path / f"ray{k}"
        config = RunConfig(inputs, str(out), shard_rows=20, **models)
        killer = _ActorKiller(victim, delay)
        killer.start()
        ended = _bounded_ray_run(config)
        killer.stop.set()
        killer.join(5)
        if isinstance(ended, BaseException):
            assert isinstance(ended, WorkersLost), repr(ended)  # nothing else: no traceback, no other error
            assert ended.exit_code == ExitCode.WORKERS_LOST and "\n" not in str(ended)
            ended = _bounded_ray_run(config)  # the resume
        assert ended.exit_code == fresh.exit_code == 6, (k, killer.killed)
        _assert_same_rows(pq.read_table(out), expected)
        outcomes.append((victim.split("(")[-1].strip(")"), startup, killer.killed is not None))
    print("actor kills (victim, start-up, landed):", sorted(Counter(outcomes).items()))
    assert sum(landed for *_, landed in outcomes) >= ACTOR_KILLS // 2, outcomes  # it killed often enough to mean it


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["prepare", "embed"])
def test_a_ray_stage_that_stops_moving_ends_the_run_with_one_line(
    tmp_path, ray_cluster, tiny_bert_dir, tiny_glove_file, monkeypatch, stage
) -> None:
    """A prepare actor or a model actor that hangs (the test hook makes it sleep forever) ends the
    run with WorkersLost after the stall limit, its actors killed; a resume equals a fresh run."""
    from batchembed.engines.stall import HANG_VARIABLE
    from batchembed.errors import ExitCode, WorkersLost

    _corpus(tmp_path / "data", csv_rows=9, parquet_rows=13)
    models = _models(tiny_bert_dir, tiny_glove_file)
    inputs = (str(tmp_path / "data"),)
    config = RunConfig(inputs, str(tmp_path / "ray"), shard_rows=4, stall_seconds=3, **models)
    monkeypatch.setenv(HANG_VARIABLE, stage)  # travels to the actors with the run's environment
    ended = _bounded_ray_run(config)
    assert isinstance(ended, WorkersLost), repr(ended)
    assert ended.exit_code == ExitCode.WORKERS_LOST and "\n" not in str(ended)
    assert "finished nothing for" in str(ended) and "stall_seconds" in str(ended)  # the API names it so
    deadline = time.monotonic() + 30
    while (_actor_processes(PREPARE_ACTOR) or _actor_processes(MODEL_ACTOR)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _actor_processes(PREPARE_ACTOR) and not _actor_processes(MODEL_ACTOR)  # none left hanging
    monkeypatch.delenv(HANG_VARIABLE)
    resumed = _bounded_ray_run(
        dataclasses.replace(config, stall_seconds=None)
    )  # the limit measured: no load can trip it
    fresh = _local(inputs, tmp_path / "local", models, shard_rows=4)
    assert resumed.exit_code == fresh.exit_code == 6
    _assert_same_rows(pq.read_table(tmp_path / "ray"), pq.read_table(tmp_path / "local"))


@pytest.mark.parametrize("shard_rows", [50, 130])
def test_shards_larger_than_a_piece_give_the_same_rows_on_both_engines(
    tmp_path, ray_cluster, tiny_bert_dir, tiny_glove_file, monkeypatch, shard_rows
) -> None:
    """A shard is read, prepared, embedded and written in pieces (16 pairs here): CSV and a Parquet
    file of many row groups give the rows of the local engine, one part per shard."""
    monkeypatch.setattr("batchembed.stages.task.PIECE_PAIRS", 16)
    _corpus(tmp_path / "data", csv_rows=150, parquet_rows=290)
    models = _models(tiny_bert_dir, tiny_glove_file)
    inputs = (str(tmp_path / "data"),)
    seen: list[int] = []  # progress: the pieces' pairs as the prepare actors report them
    summary = run_ray(RunConfig(inputs, str(tmp_path / "ray"), shard_rows=shard_rows, **models), seen.append, 1)
    local = _local(inputs, tmp_path / "local", models, shard_rows=shard_rows)
    assert summary.pairs_read == local.pairs_read == sum(seen) == 151 + 290
    expected_parts = -(-151 // shard_rows) + -(-290 // shard_rows)
    assert summary.shards_written == local.shards_written == expected_parts
    assert len(list((tmp_path / "ray").glob("part-*.parquet"))) == expected_parts
    _assert_same_rows(pq.read_table(tmp_path / "ray"), pq.read_table(tmp_path / "local"))


@pytest.mark.slow
def test_shards_of_thousands_of_pairs_in_default_pieces(tmp_path, ray_cluster, tiny_glove_file) -> None:
    """--shard-rows 3000 over 1,024-pair pieces: the same rows as the local engine."""
    _corpus(tmp_path / "data", csv_rows=3100, parquet_rows=3500)
    models = {"glove": GloveSpec(str(tiny_glove_file)), "transformer": None}
    inputs = (str(tmp_path / "data"),)
    summary = run_ray(RunConfig(inputs, str(tmp_path / "ray"), shard_rows=3000, **models), workers=1)
    local = _local(inputs, tmp_path / "local", models, shard_rows=3000)
    assert summary.pairs_read == local.pairs_read == 3101 + 3500 and summary.shards_written == 4
    _assert_same_rows(pq.read_table(tmp_path / "ray"), pq.read_table(tmp_path / "local"))


@pytest.mark.parametrize("engine", ["local", "ray"])
def test_an_input_deleted_mid_run_is_one_line(tmp_path, ray_cluster, tiny_glove_file, engine) -> None:
    """The file goes after the plan: every task of it fails, the run reports it once."""
    from batchembed.engines.job import _Job

    _corpus(tmp_path / "data", csv_rows=5, parquet_rows=60)
    victim = tmp_path / "data" / "b.parquet"
    models = {"glove": GloveSpec(str(tiny_glove_file)), "transformer": None}
    config = RunConfig((str(tmp_path / "data"),), str(tmp_path / engine), shard_rows=4, **models)
    planned = _Job.plan

    def plan_then_delete(self, *args):  # the input vanishes between the plan and the reading
        result = planned(self, *args)
        victim.unlink()
        return result

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_Job, "plan", plan_then_delete)
        summary = _local([str(tmp_path / "data")], tmp_path / engine, models) if engine == "local" else None
        if engine == "ray":
            summary = run_ray(config, workers=1)
    assert summary.exit_code == 3
    assert len(summary.errors) == 1 and "b.parquet" in summary.errors[0], summary.errors
    assert summary.files[next(k for k in summary.files if k.startswith("a-"))].state == "done"


@pytest.mark.slow
def test_a_killed_driver_writes_nothing_afterwards(tmp_path, ray_cluster, tiny_bert_dir, tiny_glove_file) -> None:
    """kill -9 of the driver: no part or marker is written after it died (those in flight when it
    died excepted: the kill lands between checks). Here Ray also ends the dead driver's actors, so
    this holds even without the owner check; the tests below hold the check itself, for workers
    that outlive their driver (a slow node, a network partition)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    _corpus(tmp_path / "data", csv_rows=40, parquet_rows=3000)
    driver = f"""
import sys
from batchembed.config import EmbedOptions, GloveSpec, RunConfig, TransformerSpec
from batchembed.engines.ray import run
import batchembed.stages.task as task
task.PIECE_PAIRS = 8
config = RunConfig(({str(tmp_path / "data")!r},), {str(tmp_path / "ray")!r}, shard_rows=40,
                   glove=GloveSpec({str(tiny_glove_file)!r}), transformer=TransformerSpec({str(tiny_bert_dir)!r}),
                   embed=EmbedOptions(device="cpu", token_budget=256))
run(config, workers=1)
"""
    env = {**os.environ, "RAY_ADDRESS": ray.get_runtime_context().gcs_address}
    proc = subprocess.Popen([sys.executable, "-c", driver], env=env)
    done = tmp_path / "ray.batchembed" / "done"
    _wait_for_markers(done, 3, lambda: proc.poll() is None)
    assert proc.poll() is None, "the driver must still be running when it is killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(1.0)  # a commit checked just before the kill may still land
    parts = sorted(p.name for p in (tmp_path / "ray").glob("part-*"))
    markers = sorted(os.listdir(done))
    time.sleep(8)
    assert sorted(p.name for p in (tmp_path / "ray").glob("part-*")) == parts
    assert sorted(os.listdir(done)) == markers
    assert len(markers) < 3000 // 40 + 1, "the run must have been cut short"


def test_workers_stop_writing_once_the_run_has_ended(tmp_path, ray_cluster) -> None:
    """The owner check passes while the run is on, and raises once the driver ended the run."""
    from batchembed.engines.owner import RunEnded, RunOwner
    from batchembed.io.layout import OutputLayout
    from batchembed.io.storage import locate

    owner = RunOwner.start(OutputLayout.of(locate(str(tmp_path / "out"))))
    check = owner.check_handle()

    @ray.remote(num_cpus=0)
    def worker_check(check) -> str:  # as a prepare actor calls it, in another process
        try:
            check.check()
        except RunEnded as ended:
            return str(ended)
        return "on"

    assert ray.get(worker_check.remote(check)) == "on"
    owner.end()
    verdict = ray.get(worker_check.remote(check))
    assert "has ended" in verdict or "is gone" in verdict, verdict  # ended, then killed


@pytest.mark.slow
def test_a_worker_that_outlives_its_driver_finds_the_owner_gone(tmp_path, ray_cluster) -> None:
    """A driver process starts the run's owner and hands its check to an actor of another job,
    then dies by kill -9: the actor's next check raises, because the owner died with its driver."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from batchembed.engines.owner import RunEnded

    @ray.remote(num_cpus=0)
    class Survivor:
        def __init__(self) -> None:
            self.check = None

        def take(self, check) -> None:
            self.check = check

        def ready(self) -> bool:
            return self.check is not None

        def verdict(self) -> str:
            try:
                self.check.check()
            except RunEnded as ended:
                return str(ended)
            return "on"

    survivor = Survivor.options(name="survivor", namespace="owner-test").remote()
    driver = f"""
import time, ray
from batchembed.engines.owner import RunOwner
from batchembed.io.layout import OutputLayout
from batchembed.io.storage import locate
ray.init(namespace="owner-test")
owner = RunOwner.start(OutputLayout.of(locate({str(tmp_path / "out")!r})))
ray.get(ray.get_actor("survivor").take.remote(owner.check_handle()))
time.sleep(600)
"""
    env = {**os.environ, "RAY_ADDRESS": ray.get_runtime_context().gcs_address}
    proc = subprocess.Popen([sys.executable, "-c", driver], env=env)
    deadline = time.monotonic() + 120
    while not ray.get(survivor.ready.remote()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ray.get(survivor.verdict.remote()) == "on"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 60
    while (verdict := ray.get(survivor.verdict.remote())) == "on" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "is gone" in verdict


def test_a_released_lock_ends_the_run_for_workers(tmp_path) -> None:
    """On a local output the check also asks the kernel: an flock held by another process counts
    as the run being on; once released (as when its holder dies), it does not."""
    import subprocess
    import sys
    import time

    from batchembed.engines.owner import lock_held

    lock = tmp_path / "lock"
    lock.write_text("")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import fcntl,time; f=open({str(lock)!r}); fcntl.flock(f, fcntl.LOCK_EX); "
            "print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    assert lock_held(str(lock))
    holder.kill()
    holder.wait()
    time.sleep(0.1)
    assert not lock_held(str(lock))


def test_workers_not_the_driver_check_the_parts_on_resume(
    tmp_path, ray_cluster, tiny_bert_dir, tiny_glove_file, monkeypatch
) -> None:
    """A part damaged in place at the same size is found by the workers' SHA-256 check and redone;
    the driver reads no part (its part check is made to fail the test)."""
    from batchembed.io import markers

    _corpus(tmp_path / "data", csv_rows=9, parquet_rows=13)
    models = _models(tiny_bert_dir, tiny_glove_file)
    config = RunConfig((str(tmp_path / "data"),), str(tmp_path / "ray"), shard_rows=4, **models)
    first = run_ray(config, workers=2)
    expected = pq.read_table(tmp_path / "ray")
    part = sorted((tmp_path / "ray").glob("part-b-*.parquet"))[1]
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 0xFF
    part.write_bytes(bytes(data))

    def driver_reads_a_part(*args, **kwargs):
        raise AssertionError("the driver read a part")

    monkeypatch.setattr(markers, "part_verified", driver_reads_a_part)  # the driver's copy only
    again = run_ray(config, workers=2)
    assert (again.shards_written, again.shards_skipped) == (1, first.shards_written - 1)
    _assert_same_rows(pq.read_table(tmp_path / "ray"), expected)


def test_an_unreadable_parquet_footer_is_an_input_error_and_the_rest_is_done(
    tmp_path, ray_cluster, tiny_bert_dir, tiny_glove_file
) -> None:
    _corpus(tmp_path / "data", csv_rows=5, parquet_rows=9)
    (tmp_path / "data" / "broken.parquet").write_bytes(b"PAR1 not a parquet file at all")
    config = RunConfig(
        (str(tmp_path / "data"),), str(tmp_path / "ray"), shard_rows=4, **_models(tiny_bert_dir, tiny_glove_file)
    )
    summary = run_ray(config, workers=1)
    assert summary.exit_code == 3 and summary.pairs_read == 6 + 9
    assert len(summary.errors) == 1 and "broken.parquet" in summary.errors[0] and "\n" not in summary.errors[0]


@pytest.mark.parametrize("spec, pairs", [("in", 3 + 4 + 5 + 6 + 7), ("in/[ap]*.csv", 3 + 4 + 5), ("in/p?41.csv", 3)])
def test_ray_workers_open_object_keys_exactly_as_listed(
    tmp_path, ray_cluster, bucket, tiny_glove_file, spec, pairs
) -> None:
    """Keys with '%41', '+', a space and non-ASCII characters travel to the workers as objects,
    never re-parsed: each is read once, by its own key ('p%41.csv' is not 'pA.csv')."""
    import pyarrow.fs as pafs
    from test_object_storage import odd_keys

    odd_keys(tmp_path, bucket)
    config = RunConfig(
        (f"s3://{bucket}/{spec}",),
        f"s3://{bucket}/out",
        glove=GloveSpec(str(tiny_glove_file)),
        transformer=None,
        tokenizer="whitespace",
        shard_rows=2,
    )
    summary = run_ray(config, workers=1)
    assert summary.exit_code == 0 and not summary.errors and summary.pairs_read == pairs
    table = pq.read_table(f"{bucket}/out", filesystem=pafs.FileSystem.from_uri("s3://x")[0])
    assert len(set(table.column("pair_id").to_pylist())) == pairs


def test_the_public_api_runs_on_ray_with_object_storage(
    tmp_path, ray_cluster, bucket, tiny_bert_dir, tiny_glove_file
) -> None:
    """batchembed.run(engine="ray") on s3:// paths, read back with batchembed.read_output: the rows
    of a local API run, the progress callback called with every pair."""
    import pyarrow.fs as pafs

    import batchembed

    _corpus(tmp_path / "data", csv_rows=9, parquet_rows=13)
    s3 = pafs.FileSystem.from_uri("s3://x")[0]
    pafs.copy_files(str(tmp_path / "data"), f"{bucket}/in", destination_filesystem=s3)
    models = {"glove": str(tiny_glove_file), "transformer": str(tiny_bert_dir), "device": "cpu", "token_budget": 256}
    seen: list[int] = []
    summary = batchembed.run(
        f"s3://{bucket}/in",
        f"s3://{bucket}/out",
        engine="ray",
        ray_workers=1,
        shard_rows=4,
        progress=seen.append,
        **models,
    )
    assert (summary.exit_code, summary.pairs_read, sum(seen)) == (6, 10 + 13, 10 + 13)  # a null sentence
    ours = batchembed.read_output(f"s3://{bucket}/out")
    batchembed.run(tmp_path / "data", tmp_path / "local", shard_rows=4, **models)
    theirs = batchembed.read_output(tmp_path / "local")
    _assert_same_rows(_by_name(ours), _by_name(theirs))
    with pytest.raises(batchembed.UsageError, match=r"^device cuda: the Ray cluster has no GPU$"):
        batchembed.run(f"s3://{bucket}/in", f"s3://{bucket}/out2", engine="ray", **{**models, "device": "cuda"})


def _by_name(table):
    """source_file as the file's name: s3://bucket/in/a.csv and /tmp/.../a.csv are the same input."""
    import pyarrow.compute as pc

    names = pc.replace_substring_regex(table.column("source_file"), r"^.*/", "")
    return table.set_column(table.schema.get_field_index("source_file"), "source_file", names)


@pytest.mark.parametrize(
    "device, gpus, cpus, models, prepare, expected",
    [
        ("cpu", 0, 1, None, None, (1, 1, 0.0)),  # one CPU: the model actor shares the prepare actor's
        ("cpu", 0, 2, None, None, (1, 1, 1.0)),
        ("cpu", 0, 8, 2, None, (2, 2, 3.0)),
        ("cpu", 0, 8, 1, 6, (1, 6, 2.0)),
        (None, 4, 4, None, None, (4, 4, 0)),  # as many CPUs as GPUs: the model actors reserve none
        (None, 4, 16, None, None, (4, 12, 1)),
        (None, 2, 16, 1, 8, (1, 8, 1)),
    ],
)
def test_placement_leaves_the_prepare_actors_cpus(tmp_path, device, gpus, cpus, models, prepare, expected) -> None:
    """(model actors, prepare actors, CPUs each model actor reserves): every default fits the cluster."""
    from batchembed.engines.ray import Placement

    placement = Placement.__new__(Placement)
    placement.plan(
        RunConfig(("x.csv",), tmp_path / "out", embed=EmbedOptions(device=device)), gpus, cpus, models, prepare
    )
    assert (placement.models, placement.prepare, placement.model_resources["num_cpus"]) == expected
    assert placement.prepare + placement.models * placement.model_resources["num_cpus"] <= cpus


def test_kept_columns_travel_through_the_ray_engine(tmp_path, ray_cluster, tiny_bert_dir, tiny_glove_file) -> None:
    """keep_columns: the prepare actors read them, the writers put them on every row, as locally."""
    import pyarrow as pa

    from batchembed.config import Columns

    first = [f"{WORDS[k % 7]} was bright {k}" for k in range(13)]
    second = [f"{WORDS[(k * 3) % 7]} and {WORDS[k % 7]}" for k in range(13)]
    labels = pa.array(range(13), pa.int16())
    pq.write_table(pa.table({"sentence1": first, "sentence2": second, "label": labels}), tmp_path / "p.parquet")
    models = _models(tiny_bert_dir, tiny_glove_file)
    keep = Columns(keep=("label", "sentence2"))
    inputs = (str(tmp_path / "p.parquet"),)
    run_ray(RunConfig(inputs, str(tmp_path / "ray"), columns=keep, shard_rows=4, **models), workers=1)
    from batchembed.embedders.load import load_embedders

    local = RunConfig(inputs, str(tmp_path / "local"), columns=keep, shard_rows=4, **models)
    run_local(local, load_embedders(local.glove, local.transformer, local.embed))
    ours, theirs = pq.read_table(tmp_path / "ray"), pq.read_table(tmp_path / "local")
    assert ours.schema.field("label").type == pa.int16()
    _assert_same_rows(ours, theirs)
    assert all(r["label"] == r["source_row"] - 1 for r in ours.to_pylist())
