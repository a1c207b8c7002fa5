"""Run the shards on a Ray cluster, for corpora that outgrow one machine (`--engine ray`).

The driver (this process) does everything a local run does around the shards:
the lock, the manifest, the done markers, the summary, and reading the inputs.
Each shard's pairs go to one of N actors, each of which loaded the models once
(one actor per GPU, or spread over the nodes on CPU), and its output table comes
back to the driver, which writes and marks it in input order. So resuming,
--incremental and the accounting of every row are exactly those of a local run,
and only the driver needs to reach the input files and the output directory.

Ray Data's own readers are not used on purpose: they would bypass the
row-by-row accounting of io/reader.py (a bad row is a status row, never lost).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from batchembed.config import EmbedOptions, GloveSpec, RunConfig, TransformerSpec
from batchembed.engines.job import FileRead, ShardCallback, run_job
from batchembed.errors import ModelError, UsageError
from batchembed.io.reader import InputShard
from batchembed.pipeline import ShardResult
from batchembed.summary import RunSummary
from batchembed.tokenize import TokenizerName

log = logging.getLogger(__name__)

SHARDS_IN_FLIGHT_PER_WORKER = 2  # one embedding, one waiting: a worker never idles between shards


@dataclass(frozen=True)
class ModelDescription:
    """A model loaded in the workers, as the driver's job needs to know it."""

    name: str
    description: dict[str, str]

    def describe(self) -> dict[str, str]:
        return self.description


class ShardWorker:
    """One Ray actor: loads the models once, then turns shards into output tables."""

    def __init__(
        self,
        glove: GloveSpec | None,
        transformer: TransformerSpec | None,
        options: EmbedOptions,
        tokenizer: TokenizerName,
    ) -> None:
        from batchembed.models import load_embedders
        from batchembed.tokenize import get_tokenizer, many

        self.embedders = load_embedders(glove, transformer, options)
        self.tokenize = many(get_tokenizer(tokenizer))

    def describe(self) -> list[ModelDescription]:
        return [ModelDescription(e.name, e.describe()) for e in self.embedders]

    def process(self, shard: InputShard, schema: pa.Schema) -> ShardResult:
        from batchembed.pipeline import process_shard

        return process_shard(shard, self.tokenize, self.embedders, schema)


class RayRunner:
    """Hands shards to the actors, at most SHARDS_IN_FLIGHT_PER_WORKER each, and yields
    their results in input order (so the driver commits them as a local run would)."""

    def __init__(self, actors: list[Any]) -> None:
        self.actors = actors

    def __call__(
        self, items: Iterator[InputShard | FileRead], schema: pa.Schema
    ) -> Generator[tuple[InputShard, ShardResult] | FileRead, None, None]:
        import ray
        from ray.util import ActorPool

        pool = ActorPool(self.actors)
        schema_ref = ray.put(schema)
        waiting: deque[InputShard | FileRead] = deque()  # submitted shards and file ends, in input order
        limit = SHARDS_IN_FLIGHT_PER_WORKER * len(self.actors)
        in_flight = 0

        def oldest() -> Generator[tuple[InputShard, ShardResult] | FileRead, None, None]:
            """File ends at the head, then the oldest shard's result (ActorPool keeps submission order)."""
            nonlocal in_flight
            while waiting:
                head = waiting.popleft()
                if isinstance(head, FileRead):
                    yield head
                    continue
                in_flight -= 1
                yield head, pool.get_next()
                return

        for item in items:
            if not isinstance(item, FileRead):
                while in_flight >= limit:
                    yield from oldest()
                pool.submit(lambda actor, shard: actor.process.remote(shard, schema_ref), item)
                in_flight += 1
            waiting.append(item)
        while waiting:
            yield from oldest()


def start_workers(config: RunConfig, address: str | None, workers: int | None) -> list[Any]:
    """Connect to (or start) Ray and start the actors: one per GPU, else one per node."""
    try:
        import ray
    except ImportError as exc:
        raise UsageError("--engine ray needs Ray: pip install 'batchembed[ray]'") from exc
    if not ray.is_initialized():
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=True)
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    if (config.embed.device or "").startswith("cuda") and not gpus:
        raise UsageError(f"--device {config.embed.device}: the Ray cluster has no GPU")
    wants_gpu = config.embed.device != "cpu" and gpus > 0
    count = workers or (gpus if wants_gpu else max(1, len([n for n in ray.nodes() if n.get("Alive")])))
    if wants_gpu and count > gpus:
        raise UsageError(f"--ray-workers {count}: the Ray cluster has only {gpus} GPUs")
    options: dict[str, Any] = {"num_gpus": 1} if wants_gpu else {"num_cpus": 1, "scheduling_strategy": "SPREAD"}
    # each actor picks its own device: the GPU Ray assigned to it, or the CPU
    embed = EmbedOptions(None if wants_gpu else "cpu", config.embed.token_budget, config.embed.precision)
    actor_class = ray.remote(**options)(ShardWorker)
    log.info("starting %d Ray workers (%s)", count, "one GPU each" if wants_gpu else "CPU")
    return [actor_class.remote(config.glove, config.transformer, embed, config.tokenizer) for _ in range(count)]


def run(
    config: RunConfig,
    on_shard: ShardCallback | None = None,
    address: str | None = None,
    workers: int | None = None,
) -> RunSummary:
    """Process all inputs into `config.output` on a Ray cluster, resuming what an earlier run left."""
    import ray

    actors = start_workers(config, address, workers)
    try:
        models = ray.get(actors[0].describe.remote())
    except ray.exceptions.RayActorError as exc:  # the models failed to load in the worker
        cause = exc.__cause__ or exc
        raise ModelError(f"the Ray workers could not load the models: {cause}") from exc
    try:
        return run_job(config, models, RayRunner(actors), on_shard)
    finally:
        for actor in actors:
            ray.kill(actor)
