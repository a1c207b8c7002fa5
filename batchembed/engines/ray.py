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
calls it had are retried on it (`max_task_retries=-1`), also while either starts. A driver that
ends, or dies, takes its work with it: the workers ask the run's owner actor (engines/owner.py)
before every part and marker, and a dead driver's owner actor dies with it.

No wait without a way out (engines/stall.py): a prepare actor waits on its model calls under the
stall guard, the driver waits for the model actors to load the models within the stall limit,
and it counts the pieces the prepare actors report to the owner actor, so a stage that hangs
rather than dies ends the run with WorkersLost (exit 8, one line), its workers killed.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from typing import Any

from batchembed.config import EmbedOptions, GloveSpec, RunConfig, TransformerSpec
from batchembed.embedders.base import Embedder, Preparer
from batchembed.engines.job import run_job
from batchembed.engines.owner import CHECK_SECONDS, OwnerCheck, RunEnded, RunOwner
from batchembed.engines.stall import (
    HANG_VARIABLE,
    POLL,
    STALL_FLOOR,
    STALL_VARIABLE,
    Progress,
    hang_here,
    stall_setting,
    wait,
)
from batchembed.errors import NAMING_VARIABLE, BatchembedError, ModelError, UsageError, WorkersLost
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
# the errors' wording (errors.py) travels too, so a worker names options as the caller does;
# and the stall limit and the test hooks (engines/stall.py, io/markers.py)
STORAGE_SETTINGS = (
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    NAMING_VARIABLE,
    TRACE_VARIABLE,
    STALL_VARIABLE,
    HANG_VARIABLE,
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

        hang_here("embed")
        return embed(prepared, self.embedders)


class _ModelCall:
    """A model actor's answer on its way (stages/pending.py), waited for under the stall guard:
    a model actor that dies is restarted and the call retried; one that hangs ends the run."""

    def __init__(self, ref: Any, progress: Progress) -> None:
        self.future = progress.watch(ref.future())
        self.progress = progress

    def done(self) -> bool:
        return self.future.done()

    def result(self) -> EmbeddedShard:
        return wait(self.future, self.progress)


class _RayPlacement:
    """run_task's steps on Ray: prepare and write in this prepare actor, embed on a model actor,
    PIECES_AHEAD pieces in flight (the object store holds a few pieces per prepare actor)."""

    prepare_ahead = 0
    embed_ahead = PIECES_AHEAD
    writes_ahead = 0

    def __init__(
        self, tokenize: Any, preparers: list[Preparer], models: list[Any], writer: Writer, stall_seconds: float | None
    ) -> None:
        import random

        self.tokenize, self.preparers, self.models = tokenize, preparers, models
        self.writer: Writer = writer
        self.turn = random.randrange(len(models))  # prepare actors spread their pieces over the model actors
        self.model_progress = Progress("model", stall_seconds)

    def prepare(self, piece: Any) -> Ready[PreparedShard]:
        from batchembed.stages.prepare import prepare

        hang_here("prepare")
        return Ready(prepare(piece, self.tokenize, self.preparers))

    def embed(self, prepared: PreparedShard) -> _ModelCall:
        self.turn = (self.turn + 1) % len(self.models)
        return _ModelCall(self.models[self.turn].embed.remote(prepared), self.model_progress)


class PrepareActor:
    """A Ray Data actor: runs whole tasks with run_task, each piece's forward on the model actors."""

    def __init__(
        self, config: RunConfig, context: TaskContext, preparers: Any, models: list[Any], owner: OwnerCheck
    ) -> None:
        import ray

        from batchembed.tokenize import get_tokenizer, remembering

        owner.register(ray.get_runtime_context().current_actor)  # so the driver can end it if it hangs
        preparers = ray.get(preparers) if isinstance(preparers, ray.ObjectRef) else preparers
        self.context, self.owner = context, owner
        self.writers = ShardWriters(context.layout, context.schema)
        tokenize = remembering(get_tokenizer(config.tokenizer))
        self.placement = _RayPlacement(tokenize, preparers, models, self.writers, config.stall_seconds)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        results = []
        for task in batch["task"]:
            try:
                result = run_task(task, self.context, self.placement, self.owner.check, self.owner.report)
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
        finished, reader = False, None
        try:
            log.info("Ray: %d tasks on %s", len(tasks), self.placement)
            data_context = ray.data.DataContext.get_current()
            data_context.enable_progress_bars = False  # the CLI shows one progress bar, in pairs
            data_context.raise_original_map_exception = True  # a worker's WorkersLost, not Ray's wrapper
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
            reader = _Reader(results)
            progress = Progress("Ray prepare", self.config.stall_seconds, "task(s)")
            yield from _watched(reader.arrived, len(tasks), owner, progress)
            finished = True
        finally:  # no part or marker after this run has ended, however it ends; no hung worker outlives it
            data_logger = logging.getLogger("ray.data")
            level = data_logger.level
            if not finished:  # Ray Data's complaints about the workers killed here are not news
                data_logger.setLevel(logging.CRITICAL)
            try:
                owner.end(kill_workers=not finished)
                if reader is not None:  # its execution ends once its workers are: none outlives the run
                    reader.join(CHECK_SECONDS)
            finally:
                data_logger.setLevel(level)


_END = object()


class _Reader:
    """Ray Data's results, read in a thread into `arrived` (a row, _END, or the exception it ended
    with), so that the driver can watch the run while it waits for them."""

    def __init__(self, results: Any) -> None:
        self.results = results
        self.arrived: queue.Queue[Any] = queue.Queue()
        self.thread = threading.Thread(target=self._read, name="batchembed-ray-results", daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            for row in self.results.iter_rows():
                self.arrived.put(row)
            self.arrived.put(_END)
        except BaseException as exc:  # noqa: BLE001 - raised again in the driver's thread
            self.arrived.put(exc)

    def join(self, timeout: float) -> None:
        self.thread.join(timeout)


def _watched(arrived: queue.Queue[Any], tasks: int, owner: RunOwner, progress: Progress) -> Iterator[TaskEvent]:
    """The tasks' results as they arrive, and while the driver waits for them: the pairs of the
    pieces written (as the prepare actors report them to the owner actor) and the stall guard
    over them, from the first prepare actor's start (starting gets at least STALL_FLOOR, as the
    model actors' loading does)."""
    counted, started, began = 0, False, time.monotonic()
    asked, starting = began, max(STALL_FLOOR, progress.limit())
    while True:
        try:
            item = arrived.get(timeout=POLL)
        except queue.Empty:
            item = None
        if item is None or item is _END or time.monotonic() - asked >= POLL:
            (pairs, workers), asked = owner.progress(), time.monotonic()
            if workers and not started:  # the stage's clock starts with its first worker
                started = True
                progress.pending(tasks)
            if pairs > counted:  # a task run again after its actor died counts its pieces again
                yield PieceWritten(pairs - counted)
                counted = pairs
                progress.moved()
        if item is None:
            if started:
                progress.check()
            elif time.monotonic() - began > starting:
                raise WorkersLost(
                    f"no Ray prepare actor started within {starting:.0f} s (no node has a CPU free for them, "
                    "or they die while they start); finished parts are kept: run the same command again"
                )
        elif item is _END:
            return
        elif isinstance(item, BaseException):
            raise _ours(item)
        else:
            result: TaskResult = item["result"]
            yield from result.markers  # reported as a task ends: actors cannot call back
            yield result
            tasks -= 1
            progress.pending(tasks)
            progress.moved()


def _ours(error: BaseException) -> BaseException:
    """A worker's own error (a BatchembedError: its one line and exit code) out of the Ray
    exceptions that carry it; anything else as it came."""
    found: BaseException = error
    seen: BaseException | None = error
    for _ in range(8):  # the deepest: Ray's wrapper of a WorkersLost is a WorkersLost too, in many lines
        if seen is None:
            break
        if isinstance(seen, BatchembedError):
            found = seen
        seen = getattr(seen, "cause", None) or seen.__cause__
    if isinstance(found, BatchembedError) and "\n" in str(found):  # Ray Data appends its retry advice
        return type(found)(str(found).splitlines()[0])
    return found


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
    with _native_logs_silenced(logging.getLogger().getEffectiveLevel() >= logging.ERROR):
        ray = _connect(address)
        placement = Placement(config, workers, prepare_cpus)
        models = _model_actors(ray, config, placement)
        try:
            described = _loaded(ray, models[0], config.stall_seconds)
            preparers = ray.put(ray.get(models[0].preparers.remote()))
            descriptions = [ModelDescription(name, description) for name, description in described]
            return run_job(config, descriptions, RayRunner(config, placement, models, preparers), on_progress)
        finally:
            for actor in models:
                ray.kill(actor)


def _loaded(ray: Any, model: Any, stall_seconds: float | None) -> list[tuple[str, dict[str, str]]]:
    """The models a model actor loaded, waited for within the stall limit but never less than
    STALL_FLOOR (loading is not a piece: a short limit for hung pieces must not fail a slow load):
    a model actor that dies while it starts is restarted, but one that never starts (no node with
    what it asks for, or dying at every start) must not keep a cron job waiting."""
    limit = max(STALL_FLOOR, stall_setting(stall_seconds) or 0.0)
    try:
        described = ray.get(model.describe.remote(), timeout=limit)
    except ray.exceptions.GetTimeoutError:
        raise WorkersLost(
            f"the Ray model actors did not load the models within {limit:.0f} s (no node has the "
            f"resources they ask for, or they die while they start); --stall-seconds sets this limit"
        ) from None
    except (ray.exceptions.RayActorError, ray.exceptions.RayTaskError) as exc:  # not a model error
        cause = exc.cause if getattr(exc, "cause", None) is not None else exc
        why = (str(cause).strip().splitlines() or ["unknown"])[-1]
        raise ModelError(f"the Ray workers could not load the models: {why}") from exc
    if isinstance(described, BatchembedError):
        raise described
    return described  # type: ignore[no-any-return]


@contextlib.contextmanager
def _native_logs_silenced(quiet: bool) -> Iterator[None]:
    """Under --quiet, Ray's C++ core worker writes to this process's standard error past Python's
    logging (e.g. that Ray Data's actors keep their constructor arguments in the object store):
    while Ray runs, file descriptor 2 goes to /dev/null, and Python's sys.stderr, with the log
    handlers that write to it, keeps the real one for batchembed's own lines. Ray's own log files
    keep everything (/tmp/ray/session_latest/logs)."""
    if not quiet:
        yield
        return
    try:
        python_stderr = sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):  # not a file (a test harness's buffer): fd 2 is Ray's alone
        python_stderr = False
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    original = sys.stderr
    handlers = [h for h in logging.getLogger().handlers if getattr(h, "stream", None) is original]
    if python_stderr:
        sys.stderr = open(os.dup(saved), "w", encoding=original.encoding, errors="backslashreplace", buffering=1)  # noqa: SIM115
        for handler in handlers:
            handler.setStream(sys.stderr)  # type: ignore[attr-defined]
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        # the stand-in stays open: a log handler made while Ray started may still hold it
        sys.stderr = original
        for handler in handlers:
            handler.setStream(original)  # type: ignore[attr-defined]
        os.close(saved)
        os.close(devnull)
