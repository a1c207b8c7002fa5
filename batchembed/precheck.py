"""What a run can be told before a model loads: loading takes about 20 seconds, so every mistake
that needs no model (an input missing or unreadable, a sentence or target column not there, an
output that may not be written, settings that conflict with the output's) fails here, in about a
second, and `run --check` prints the plan from the same facts.

Nothing here imports torch or flair, and nothing is written: the job (engines/job.py) still checks
all of this again under the output's lock, where it is authoritative.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

import batchembed
from batchembed.config import RunConfig
from batchembed.embedders.distances import METRICS
from batchembed.errors import InputError, OutputError
from batchembed.io.inputs import InputFile
from batchembed.io.layout import OutputLayout
from batchembed.io.manifest import differences, load_manifest
from batchembed.io.markers import marked_shards
from batchembed.io.outputs import check_output
from batchembed.io.reader import discover_all
from batchembed.io.sources import csv_chunks, parquet_chunks, parquet_rows
from batchembed.messages import show
from batchembed.targets import TargetMode

OPENERS = 32  # concurrent header reads: on object storage, latency is the cost
MODE_NAMES = {
    TargetMode.SPANS: "spans",
    TargetMode.INDICES: "token indices",
    TargetMode.WORDS: "two words",
    TargetMode.WORD: "one word",
    TargetMode.SHARED: "shared words",
}


class NoReadableInput(InputError):
    """No input can be read: one message per input (the command line prints one line each)."""

    def __init__(self, messages: list[str]) -> None:
        more = f" (and {len(messages) - 1} more inputs that cannot be read)" if len(messages) > 1 else ""
        super().__init__(messages[0] + more)
        self.messages = messages


@dataclass
class FilePlan:
    """One input as the run would read it."""

    path: str
    format: str
    mode: TargetMode | None = None
    pairs: int | None = None  # None: a CSV file that was not counted
    shards_done: int = 0
    error: str | None = None

    def shards(self, shard_rows: int) -> int | None:
        return None if self.pairs is None else -(-self.pairs // shard_rows)


@dataclass
class RunPlan:
    """What `run` would do with these options: the inputs, their target modes and shards, and
    what the output already holds."""

    output: str
    shard_rows: int
    files: list[FilePlan] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # inputs that would fail: exit 3, the others are run
    output_state: str = "new"

    def lines(self) -> list[str]:
        """The plan as `run --check` prints it, one line per input and a total."""
        rows = []
        for file in self.files:
            if file.error is not None:
                continue
            mode = MODE_NAMES[file.mode] if file.mode else "?"
            rows.append(
                f"  {file.path}: {file.format}, target mode {mode}, {_count(file.pairs, 'pair')}, "
                f"{_count(file.shards(self.shard_rows), 'shard')}, {file.shards_done:,} done"
            )
        known = [f for f in self.files if f.error is None]
        total_shards = sum(f.shards(self.shard_rows) or 0 for f in known)
        done = sum(f.shards_done for f in known)
        total_pairs = sum(f.pairs or 0 for f in known)
        return [
            f"plan for {self.output} ({self.output_state}; --shard-rows {self.shard_rows:,}):",
            *rows,
            f"{_count(len(known), 'input file')}, {_count(total_pairs, 'pair')}, {_count(total_shards, 'shard')}: "
            f"{done:,} done, {total_shards - done:,} to run (no model was loaded, nothing was written)",
        ]


def _count(number: int | None, noun: str) -> str:
    """`1 shard`, `5 shards`, `? pairs` (a CSV file that was not counted)."""
    if number is None:
        return f"? {noun}s"
    return f"{number:,} {noun}" + ("" if number == 1 else "s")


def check_run(config: RunConfig, count_csv: bool = False) -> RunPlan:
    """Check everything of a run that needs no model; returns the plan. Raises InputError when no
    input can be read at all, OutputError for an output that may not be written or whose results
    were made with other settings. Inputs that fail while others are fine are listed in the plan's
    `errors` and left to the job, which processes the others (exit 3). `count_csv` reads CSV files
    through to count their pairs (Parquet's count is in its footer)."""
    layout = check_output(config.output)
    found, problems = discover_all(config.inputs, exclude=(layout.data, layout.state))
    plan = RunPlan(str(layout.data), config.shard_rows, errors=[str(p) for p in problems])
    if not found:
        raise problems[0] if problems else InputError("no input files found")
    with ThreadPoolExecutor(max_workers=min(OPENERS, len(found))) as pool:
        plan.files = list(pool.map(lambda file: _file_plan(file, config, count_csv), found))
    plan.errors += [file.error for file in plan.files if file.error is not None]
    if all(file.error is not None for file in plan.files):
        raise NoReadableInput(plan.errors)
    _check_settings(config, layout, found, plan)
    return plan


def _file_plan(file: InputFile, config: RunConfig, count: bool) -> FilePlan:
    plan = FilePlan(show(file.path), file.format)
    try:
        if file.format == "parquet":
            plan.mode, chunks = parquet_chunks(file, config.columns)
            plan.pairs = parquet_rows(file)
        else:
            plan.mode, chunks = csv_chunks(file, config.columns)
            if count:
                plan.pairs = sum(len(next(iter(chunk.values()))) for chunk in chunks if chunk)
        getattr(chunks, "close", lambda: None)()
    except InputError as error:
        plan.error = str(error)
    return plan


def _check_settings(config: RunConfig, layout: OutputLayout, found: list[InputFile], plan: RunPlan) -> None:
    """Refuse an output whose parts were made with other settings, as the job would after loading
    the models, from the settings that need no model to know. Only parts bind an output: a
    manifest left by a run that wrote none is not a conflict."""
    if config.overwrite:
        plan.output_state = "replaced (--overwrite)"
        return
    try:
        marked = marked_shards(layout)
        if not marked:
            if layout.state.exists():
                plan.output_state = "nothing written yet"
            return
        manifest = load_manifest(layout)  # raises OutputError for a damaged one, as the job would
    except FileNotFoundError:
        return
    except (OSError, pa.ArrowException):  # damaged bookkeeping: the job names it (io/layout.py's checks)
        return
    if manifest is None:
        return
    expected = _settings(config)
    recorded = _comparable(manifest.fingerprint, expected)
    changed = differences(recorded, expected)
    if changed:
        raise OutputError(
            f"{layout.data}: holds results made with other settings ({', '.join(changed)}); "
            "pass --overwrite to replace them, or choose another --output"
        )
    by_key = {file.key: file_plan for file, file_plan in zip(found, plan.files)}
    for shard_id in marked:
        file_plan = by_key.get(shard_id.rsplit("-", 1)[0])
        if file_plan is not None:
            file_plan.shards_done += 1
    plan.output_state = f"resumes an output of {manifest.runs} runs" if manifest.runs != 1 else "resumes an output"


def _settings(config: RunConfig) -> dict[str, Any]:
    """The output's fingerprint (io/manifest.py) as far as the options alone tell it: a model's
    dimension and vocabulary, and where a packaged model lies, need the model loaded."""
    models: list[dict[str, str]] = []
    if config.glove is not None:
        models.append({"name": config.glove.name, "kind": "glove"})
    if config.transformer is not None:
        spec = config.transformer
        models.append(
            {
                "name": spec.name,
                "kind": "transformer",
                "source": spec.model,
                "layers": spec.layers,
                "layer_mean": str(spec.layer_mean),
                "subtoken_pooling": spec.subtoken_pooling,
                "precision": config.embed.precision,
            }
        )
    return {
        "tool": "batchembed",
        "version": batchembed.__version__,
        "models": models,
        "metrics": list(METRICS),
        "tokenizer": config.tokenizer,
        "columns": config.columns.fingerprint(),
        "shard_rows": config.shard_rows,
    }


def _comparable(recorded: dict[str, Any], expected: dict[str, Any]) -> dict[str, Any]:
    """The recorded fingerprint cut to the keys `expected` holds."""
    result = {key: recorded.get(key) for key in expected}
    models = recorded.get("models")
    if isinstance(models, list) and len(models) == len(expected["models"]):
        result["models"] = [
            {k: m.get(k) for k in want} if isinstance(m, dict) else m for m, want in zip(models, expected["models"])
        ]
    return result
