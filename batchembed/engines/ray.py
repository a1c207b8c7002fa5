"""Run on a Ray cluster (`--engine ray`): the same tasks and stages as a local run, placed on
Ray, for corpora that outgrow one machine.

The driver only plans and commits (engines/job.py): it lists the inputs, records them in the
manifest, cuts tasks from metadata (stages/plan.py) and counts the markers the workers report.
The work runs in two kinds of actor:

    prepare actors   a Ray Data `map_batches` actor pool, `num_cpus=1` each: every task runs
                     in one of them with stages/task.run_task, the function the local engine
                     runs too: read, prepare (tokenize, encode, targets), then hand each
                     batch-ready piece to a model actor, assemble what comes back, stream
                     the part, write its marker
    model actors     `num_gpus=1` each on GPU nodes (else CPU threads): only the model forward
                     and the distances (stages/embed.py), on arrays that arrive through the
                     object store; they never tokenize, assemble or write

Backpressure: a prepare actor keeps at most PIECES_AHEAD + 1 pieces in flight, so the object
store holds a few pieces per prepare actor, whatever the shard size.

Faults: a lost prepare actor is replaced by Ray Data and its task run again (a task rewrites
the same parts and markers); a lost model actor is restarted by Ray (`max_restarts=-1`) and the
calls it had are retried on it (`max_task_retries=-1`). A driver that ends, or dies, takes its
work with it: the workers ask the run's owner actor (engines/owner.py) before every part and
marker, and a dead driver's owner actor dies with it.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Generator, Sequence
from typing import Any

from batchembed.config import EmbedOptions, GloveSpec, RunConfig, TransformerSpec
from batchembed.embedders.base import Embedder, Preparer
from batchembed.engines.job import run_job
from batchembed.engines.owner import OwnerCheck, RunEnded, RunOwner
from batchembed.errors import NAMING_VARIABLE, BatchembedError, ModelError, UsageError
from batchembed.io.layout import OutputLayout
from batchembed.io.markers import TRACE_VARIABLE, DoneMarker, part_verified
from batchembed.messages import one_line
from batchembed.results.summary import RunSummary
from batchembed.stages.embed import EmbeddedShard
from batchembed.stages.pending import Ready
from batchembed.stages.prepare import PreparedShard
from batchembed.stages.task import (
    PieceWritten,
    ProgressCallback,
    Task,
    TaskContext,
    TaskEvent,
    TaskResult,
    Writer,
    run_task,
)
from batchembed.stages.write import ShardWriters

log = logging.getLogger(__name__)

# where the storage is, so the workers reach the store the driver planned on; credentials are not
# forwarded: each node uses its own (instance role, environment, ~/.aws), as Ray users expect
# the errors' wording (errors.py) travels too, so a worker names options as the caller does
STORAGE_SETTINGS = (
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    NAMING_VARIABLE,
    TRACE_VARIABLE,
)
VERIFY_BATCH = 64  # parts one verification task reads
PIECES_AHEAD = 2  # pieces a prepare actor hands to the model actors before waiting for the oldest


class ModelDescription:
    """A model loaded in the workers, as the driver's job needs to know it."""

    def __init__(self, name: str, description: dict[str, str]) -> None:
        self.name, self.description = name, description

    def describe(self) -> dict[str, str]:
        return self.description


class ModelActor:
    """Holds the models; embeds prepared pieces. A model that cannot load is reported by
    `describe()` as its error (one line and its exit code: --layers the model lacks is exit 2,
    a model that cannot be read exit 4), not as an actor crash."""

    def __init__(
        self, glove: GloveSpec | None, transformer: TransformerSpec | None, options: EmbedOptions, threads: int
    ) -> None:
        import torch

        from batchembed.embedders.load import load_embedders

        if threads > 0:
            torch.set_num_threads(threads)
        self.embedders: Sequence[Embedder] = []
        self.error: BatchembedError | None = None
        try:
            self.embedders = load_embedders(glove, transformer, options)
        except BatchembedError as error:
            self.error = error

    def describe(self) -> list[tuple[str, dict[str, str]]] | BatchembedError:
        return self.error or [(e.name, e.describe()) for e in self.embedders]

    def preparers(self) -> list[Preparer]:
        return [e.preparer() for e in self.embedders]

    def embed(self, prepared: PreparedShard) -> EmbeddedShard:
        from batchembed.stages.embed import embed

        return embed(prepared, self.embedders)


class _ModelCall:
    """A model actor's answer on its way (stages/pending.py)."""

    def __init__(self, ref: Any) -> None:
        self.ref = ref

    def done(self) -> bool:
        import ray

        ready, _ = ray.wait([self.ref], timeout=0)
        return bool(ready)

    def result(self) -> EmbeddedShard:
        import ray

        return ray.get(self.ref)


class _RayPlacement:
    """run_task's steps on Ray: prepare and write in this prepare actor, embed on a model actor,
    PIECES_AHEAD pieces in flight (the object store holds a few pieces per prepare actor)."""

    prepare_ahead = 0
    embed_ahead = PIECES_AHEAD
    writes_ahead = 0

    def __init__(self, tokenize: Any, preparers: list[Preparer], models: list[Any], writer: Writer) -> None:
        import random

        self.tokenize, self.preparers, self.models = tokenize, preparers, models
        self.writer: Writer = writer
        self.turn = random.randrange(len(models))  # prepare actors spread their pieces over the model actors

    def prepare(self, piece: Any) -> Ready[PreparedShard]:
        from batchembed.stages.prepare import prepare

        return Ready(prepare(piece, self.tokenize, self.preparers))

    def embed(self, prepared: PreparedShard) -> _ModelCall:
        self.turn = (self.turn + 1) % len(self.models)
        return _ModelCall(self.models[self.turn].embed.remote(prepared))


class PrepareActor:
    """A Ray Data actor: runs whole tasks with run_task, each piece's forward on the model actors."""

    def __init__(
        self, config: RunConfig, context: TaskContext, preparers: Any, models: list[Any], owner: OwnerCheck
    ) -> None:
        import ray

        from batchembed.tokenize import get_tokenizer, remembering

        preparers = ray.get(preparers) if isinstance(preparers, ray.ObjectRef) else preparers
        self.context, self.owner = context, owner
        self.writers = ShardWriters(context.layout, context.schema)
        tokenize = remembering(get_tokenizer(config.tokenizer))
        self.placement = _RayPlacement(tokenize, preparers, models, self.writers)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        results = []
        for task in batch["task"]:
            try:
                result = run_task(task, self.context, self.placement, self.owner.check)
            except RunEnded as ended:  # the driver is gone or done: write nothing more
                log.warning("%s", ended)
                result = TaskResult(task.file_key, stopped=True)
            finally:
                self.writers.close()  # nothing half-written stays open for the next task
            results.append(result)
        return {"result": results}


def storage_settings() -> dict[str, str]:
    return {name: os.environ[name] for name in STORAGE_SETTINGS if name in os.environ}


def _verify_batch(batch: dict[str, Any], layout: OutputLayout) -> dict[str, list[list[str]]]:
    """Ray Data task: the damaged parts among a batch of markers."""
    return {"damaged": [[m.shard_id for ms in batch["markers"] for m in ms if not part_verified(layout, m)]]}


def _connect(address: str | None) -> Any:
    try:
        import ray
        import ray.data  # noqa: F401 - the [ray] extra, not bare ray
    except ImportError as exc:
        raise UsageError(
            "--engine ray needs Ray Data: pip install 'batchembed-pairs[ray]' (or '.[ray]' from a clone)"
        ) from exc
    # --quiet (the root logger at ERROR): importing Ray resets its loggers' levels, so set them again
    quiet = logging.getLogger().getEffectiveLevel() >= logging.ERROR
    if quiet:
        for name in ("ray", "ray.data"):
            logging.getLogger(name).setLevel(logging.ERROR)
    if not ray.is_initialized():
        try:
            level = logging.ERROR if quiet else logging.WARNING
            ray.init(address=address, logging_level=level, log_to_driver=not quiet)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = address or os.environ.get("RAY_ADDRESS") or "a local Ray instance"
            why = one_line(exc)
            raise UsageError(
                f"cannot connect to {where} ({why}); check --ray-address or RAY_ADDRESS, and RAY_AUTH_MODE=token "
                "with RAY_AUTH_TOKEN for a cluster started with token authentication"
            ) from exc
    return ray


class Placement:
    """How many model and prepare actors, and what each reserves, from the cluster's resources."""

    def __init__(self, config: RunConfig, model_actors: int | None, prepare_cpus: int | None) -> None:
        import ray

        resources = ray.cluster_resources()
        self.plan(
            config, int(resources.get("GPU", 0)), max(1, int(resources.get("CPU", 1))), model_actors, prepare_cpus
        )

    def plan(self, config: RunConfig, gpus: int, cpus: int, model_actors: int | None, prepare_cpus: int | None) -> None:
        device, options = config.embed.device, config.embed
        if (device or "").startswith("cuda") and not gpus:
            raise UsageError(f"--device {device}: the Ray cluster has no GPU")
        if device != "cpu" and gpus > 0:  # one model actor per GPU; each picks the GPU Ray assigned it
            self.models = model_actors or gpus
            if self.models > gpus:
                raise UsageError(f"--ray-workers {self.models}: the Ray cluster has only {gpus} GPUs")
            # a CPU each to launch kernels, where the cluster has one to spare for the prepare actors
            model_cpus = 1 if cpus > self.models else 0
            self.model_resources: dict[str, float] = {"num_gpus": 1, "num_cpus": model_cpus}
            self.embed = EmbedOptions(None, options.token_budget, options.precision)
            self.threads = 0
            left = cpus - model_cpus * self.models
            self.prepare = prepare_cpus or max(1, left)
            if self.prepare > left:
                raise UsageError(
                    f"--ray-prepare-cpus {self.prepare}: with {self.models} model actors the Ray cluster has "
                    f"only {left} CPUs left"
                )
            return
        # CPU nodes: the model actors take the CPUs the prepare actors leave
        self.models = model_actors or 1
        self.prepare = prepare_cpus or max(1, cpus // (self.models + 1))
        if self.prepare > cpus or (prepare_cpus is not None and self.prepare == cpus):
            raise UsageError(f"--ray-prepare-cpus {self.prepare}: the Ray cluster has only {cpus} CPUs")
        # the model actors share what the prepare actors leave (fractions reserve, threads run); on a
        # one-CPU cluster they reserve nothing and share the prepare actor's CPU
        per_model = (cpus - self.prepare) / self.models
        self.model_resources = {"num_cpus": per_model}
        self.embed = EmbedOptions("cpu", options.token_budget, options.precision)
        self.threads = max(1, int(per_model))

    def __str__(self) -> str:
        return f"{self.models} model actors ({self.model_resources}), {self.prepare} prepare actors (1 CPU each)"


class RayRunner:
    """The tasks on Ray: model actors, and a Ray Data actor pool of prepare actors that run the tasks."""

    def __init__(self, config: RunConfig, placement: Placement, models: list[Any], preparers: Any) -> None:
        self.config, self.placement, self.models, self.preparers = config, placement, models, preparers

    one_pass_files = False  # one task per shard: the shards spread over the prepare actors

    def verify(self, context: TaskContext, markers: list[DoneMarker]) -> list[str]:
        """Every marked part read and hashed by Ray tasks, so the driver reads none."""
        import ray

        chunks = [markers[i : i + VERIFY_BATCH] for i in range(0, len(markers), VERIFY_BATCH)]
        layout = context.layout
        dataset = ray.data.from_items([{"markers": c} for c in chunks], override_num_blocks=len(chunks)).map_batches(
            functools.partial(_verify_batch, layout=layout),
            batch_size=1,
            num_cpus=1,
            runtime_env={"env_vars": storage_settings()},
        )
        return [shard for row in dataset.iter_rows() for shard in row["damaged"]]

    def __call__(
        self, tasks: list[Task], context: TaskContext, check_owner: Callable[[], None]
    ) -> Generator[TaskEvent, None, None]:
        """The driver checks its own lease as it counts (check_owner); the workers ask the owner actor."""
        import ray

        if not tasks:
            return
        owner = RunOwner.start(context.layout)
        try:
            log.info("Ray: %d tasks on %s", len(tasks), self.placement)
            data_context = ray.data.DataContext.get_current()
            data_context.enable_progress_bars = False  # the CLI shows one progress bar, in pairs
            # Ray Data's info lines off; its warnings too under --quiet (the root logger at ERROR)
            logging.getLogger("ray.data").setLevel(max(logging.WARNING, logging.getLogger().getEffectiveLevel()))
            dataset = ray.data.from_items([{"task": task} for task in tasks], override_num_blocks=len(tasks))
            results = dataset.map_batches(
                PrepareActor,
                fn_constructor_args=(self.config, context, self.preparers, self.models, owner.check_handle()),
                batch_size=1,
                compute=ray.data.ActorPoolStrategy(size=min(self.placement.prepare, len(tasks))),
                num_cpus=1,
                # Ray Data's actors default to max_restarts=-1 and max_task_retries=-1: a dead
                # prepare actor is replaced and its task runs again (the kill -9 tests hold it to that)
                runtime_env={"env_vars": storage_settings()},
            )
            for row in results.iter_rows():
                result: TaskResult = row["result"]
                for marker in result.markers:  # reported as a task ends: actors cannot call back
                    yield PieceWritten(marker.pairs)
                    yield marker
                yield result
        finally:  # no part or marker after this run has ended, however it ends
            owner.end()


def _model_actors(ray: Any, config: RunConfig, placement: Placement) -> list[Any]:
    actor = ray.remote(max_restarts=-1, max_task_retries=-1, **placement.model_resources)(ModelActor)
    return [
        actor.options(runtime_env={"env_vars": storage_settings()}).remote(
            config.glove, config.transformer, placement.embed, placement.threads
        )
        for _ in range(placement.models)
    ]


def run(
    config: RunConfig,
    on_progress: ProgressCallback | None = None,
    address: str | None = None,
    workers: int | None = None,
    prepare_cpus: int | None = None,
) -> RunSummary:
    """Process all inputs into `config.output` on a Ray cluster, resuming what an earlier run left.
    `workers`: model actors (default one per GPU, else one); `prepare_cpus`: prepare actors
    (default: the CPUs the model actors leave)."""
    ray = _connect(address)
    placement = Placement(config, workers, prepare_cpus)
    models = _model_actors(ray, config, placement)
    try:
        try:
            described = ray.get(models[0].describe.remote())
        except (ray.exceptions.RayActorError, ray.exceptions.RayTaskError) as exc:  # not a model error
            cause = exc.cause if getattr(exc, "cause", None) is not None else exc
            why = (str(cause).strip().splitlines() or ["unknown"])[-1]
            raise ModelError(f"the Ray workers could not load the models: {why}") from exc
        if isinstance(described, BatchembedError):
            raise described
        preparers = ray.put(ray.get(models[0].preparers.remote()))
        descriptions = [ModelDescription(name, description) for name, description in described]
        return run_job(config, descriptions, RayRunner(config, placement, models, preparers), on_progress)
    finally:
        for actor in models:
            ray.kill(actor)
