"""Run on a Ray cluster with Ray Data, for corpora that outgrow one machine (`--engine ray`).

The driver only plans. It lists the inputs on their storage, records them in the
manifest and cuts tasks from metadata (engines/tasks.py: Parquet shards from the
footer, CSV files whole); it holds the output's lease and keeps the summary.

A Ray Data pipeline does the rest: `map_batches` over the task descriptors with an
actor-pool class, `TaskWorker`, whose actors load the models once (one GPU each,
or on CPU nodes all the CPUs they were given). Each actor reads its task's rows
from storage with batchembed's readers, embeds them, writes each part and then
its done marker to the output location, and returns only the markers' counts.
Results come back as tasks finish, not in submission order, so a slow task holds
back nothing.

Faults: Ray restarts an actor whose process died and retries its task (Ray Data
creates its actors with `max_restarts=-1` and `max_task_retries=-1`). A task
rewrites the same parts and markers, so a retried task leaves exactly the rows
of an uninterrupted run. A driver killed mid-run resumes
as a local run does: the markers on storage say what is done.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Generator
from typing import Any

import pyarrow as pa

from batchembed.config import EmbedOptions, GloveSpec, RunConfig, TransformerSpec
from batchembed.engines.job import ShardCallback, run_task_job
from batchembed.engines.tasks import ShardTask, TaskResult, run_task, unverified_parts
from batchembed.errors import BatchembedError, ModelError, UsageError
from batchembed.io.layout import OutputLayout
from batchembed.io.markers import DoneMarker
from batchembed.io.storage import locate, portable, reopen
from batchembed.summary import RunSummary

log = logging.getLogger(__name__)

# where the storage is, so the workers reach the store the driver planned on; credentials are not
# forwarded: each node uses its own (instance role, environment, ~/.aws), as Ray users expect
STORAGE_SETTINGS = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_DEFAULT_REGION")


class ModelDescription:
    """A model loaded in the workers, as the driver's job needs to know it."""

    def __init__(self, name: str, description: dict[str, str]) -> None:
        self.name, self.description = name, description

    def describe(self) -> dict[str, str]:
        return self.description


def _load(glove: GloveSpec | None, transformer: TransformerSpec | None, options: EmbedOptions, threads: int) -> Any:
    import torch

    from batchembed.models import load_embedders

    if threads > 0:
        torch.set_num_threads(threads)
    return load_embedders(glove, transformer, options)


def describe_models(
    glove: GloveSpec | None, transformer: TransformerSpec | None, options: EmbedOptions
) -> list[tuple[str, dict[str, str]]] | BatchembedError:
    """Runs once on a worker before the pipeline: a model that cannot load fails here. Its error
    goes back to the driver as it is (its one-line message and exit code: --layers the model lacks
    is exit 2, a model that cannot be read exit 4)."""
    try:
        return [(e.name, e.describe()) for e in _load(glove, transformer, options, 0)]
    except BatchembedError as error:
        return error


class TaskWorker:
    """A Ray Data actor: loads the models once, then runs one task per batch row."""

    def __init__(self, config: RunConfig, embed: EmbedOptions, output: dict[str, str], schema: pa.Schema) -> None:
        from batchembed.tokenize import get_tokenizer, remembering

        threads = int(float(os.environ.get("BATCHEMBED_RAY_THREADS", "0")))
        self.embedders = _load(config.glove, config.transformer, embed, threads)
        self.tokenize = remembering(get_tokenizer(config.tokenizer))
        self.columns, self.shard_rows = config.columns, config.shard_rows
        self.layout = OutputLayout.of(reopen(output))
        self.schema = schema

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[str]]:
        results = []
        for text in batch["task"]:
            task = ShardTask.from_json(str(text))
            result = run_task(
                task, self.columns, self.shard_rows, self.layout, self.schema, self.tokenize, self.embedders
            )
            results.append(result.to_json())
        return {"result": results}


def storage_settings() -> dict[str, str]:
    return {name: os.environ[name] for name in STORAGE_SETTINGS if name in os.environ}


VERIFY_BATCH = 64  # parts one verification task reads


def _verify_batch(batch: dict[str, Any], output: dict[str, str]) -> dict[str, list[str]]:
    """Ray Data task: the damaged parts among a batch of markers (JSON lists)."""
    import json

    layout = OutputLayout.of(reopen(output))
    damaged = [i for text in batch["markers"] for i in unverified_parts(layout, json.loads(str(text)))]
    return {"damaged": [json.dumps(damaged)]}


def _connect(address: str | None) -> Any:
    try:
        import ray
        import ray.data  # noqa: F401 - the [ray] extra, not bare ray
    except ImportError as exc:
        raise UsageError("--engine ray needs Ray Data: pip install 'batchembed\\[ray]'") from exc
    if not ray.is_initialized():
        try:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=True)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = address or os.environ.get("RAY_ADDRESS") or "a local Ray instance"
            why = " ".join(str(exc).split())
            raise UsageError(
                f"cannot connect to {where} ({why}); check --ray-address or RAY_ADDRESS, and RAY_AUTH_MODE=token "
                "with RAY_AUTH_TOKEN for a cluster started with token authentication"
            ) from exc
    return ray


class RayDataRunner:
    """The tasks as a Ray Data pipeline: map_batches over an actor pool, results as they finish."""

    def __init__(self, config: RunConfig, workers: int | None) -> None:
        self.config, self.workers = config, workers

    def placement(self) -> tuple[int, dict[str, Any], EmbedOptions, int]:
        """(actors, resources per actor, embed options for the actors, torch threads per actor)."""
        import ray

        resources = ray.cluster_resources()
        gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 1))
        device = self.config.embed.device
        if (device or "").startswith("cuda") and not gpus:
            raise UsageError(f"--device {device}: the Ray cluster has no GPU")
        if device != "cpu" and gpus > 0:  # one actor per GPU; each picks the GPU Ray assigned it
            count = self.workers or gpus
            if count > gpus:
                raise UsageError(f"--ray-workers {count}: the Ray cluster has only {gpus} GPUs")
            embed = EmbedOptions(None, self.config.embed.token_budget, self.config.embed.precision)
            return count, {"num_gpus": 1}, embed, 0
        nodes = [n for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) > 0]
        count = self.workers or max(1, len(nodes))
        per_actor = max(1, cpus // count)  # an actor uses its share of the cores, not one thread
        embed = EmbedOptions("cpu", self.config.embed.token_budget, self.config.embed.precision)
        return count, {"num_cpus": per_actor}, embed, per_actor

    def verify(self, markers: list[DoneMarker]) -> list[str]:
        """Every marked part read and hashed by Ray tasks, so the driver reads none."""
        import json
        from dataclasses import asdict

        import ray

        chunks = [markers[i : i + VERIFY_BATCH] for i in range(0, len(markers), VERIFY_BATCH)]
        items = [{"markers": json.dumps([asdict(m) for m in chunk])} for chunk in chunks]
        dataset = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
            functools.partial(_verify_batch, output=portable(locate(self.config.output))),
            batch_size=1,
            num_cpus=1,
            runtime_env={"env_vars": storage_settings()},
        )
        return [shard for row in dataset.iter_rows() for shard in json.loads(str(row["damaged"]))]

    def __call__(self, tasks: list[ShardTask], schema: pa.Schema) -> Generator[TaskResult, None, None]:
        import ray

        if not tasks:
            return
        count, resources, embed, threads = self.placement()
        log.info("Ray Data: %d tasks on %d actors (%s)", len(tasks), count, resources)
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # the CLI shows one progress bar, in pairs
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        output = portable(locate(self.config.output))
        dataset = ray.data.from_items([{"task": task.to_json()} for task in tasks], override_num_blocks=len(tasks))
        results = dataset.map_batches(
            TaskWorker,
            fn_constructor_args=(self.config, embed, output, schema),
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=min(count, len(tasks))),
            # Ray Data's actors default to max_restarts=-1 and max_task_retries=-1: a dead
            # actor is replaced and its task runs again (the kill -9 test holds it to that)
            runtime_env={"env_vars": {"BATCHEMBED_RAY_THREADS": str(threads), **storage_settings()}},
            **resources,
        )
        for row in results.iter_rows():
            yield TaskResult.from_json(str(row["result"]))


def run(
    config: RunConfig,
    on_shard: ShardCallback | None = None,
    address: str | None = None,
    workers: int | None = None,
) -> RunSummary:
    """Process all inputs into `config.output` on a Ray cluster, resuming what an earlier run left."""
    ray = _connect(address)
    runner = RayDataRunner(config, workers)
    _, resources, embed, _ = runner.placement()
    describe = ray.remote(num_gpus=resources.get("num_gpus", 0), max_retries=0)(describe_models)
    try:
        described = ray.get(describe.remote(config.glove, config.transformer, embed))
    except (ray.exceptions.RayTaskError, ray.exceptions.WorkerCrashedError) as exc:  # not a model error
        cause = exc.cause if getattr(exc, "cause", None) is not None else exc
        why = (str(cause).strip().splitlines() or ["unknown"])[-1]
        raise ModelError(f"the Ray workers could not load the models: {why}") from exc
    if isinstance(described, BatchembedError):
        raise described
    models = [ModelDescription(name, description) for name, description in described]
    return run_task_job(config, models, runner, on_shard)
