"""The Python API: the job, compare, evaluate and reading an output, with the command line's options
and defaults. The command line (cli.py) is built from these signatures.

`Embedder` holds loaded models for repeated calls in one process (like bert_score's BERTScorer);
the functions `run`, `compare` and `evaluate` load the models for one call. Nothing here prints:
progress goes to a callback or a tqdm bar, as the caller chooses, and results are returned.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batchembed.arguments import (
    EMBED_OPTIONS,
    INDEX_COLUMNS,
    SPAN_COLUMNS,
    SPEC_OPTIONS,
    WORD_COLUMNS,
    Progress,
    arguments_of,
    eval_config,
    model_specs,
    progress_callback,
    run_config,
)
from batchembed.config import DEFAULT_GLOVE, DEFAULT_SHARD_ROWS, DEFAULT_TRANSFORMER, EmbedOptions, RunConfig
from batchembed.errors import UsageError
from batchembed.precheck import RunPlan, check_run

if TYPE_CHECKING:
    import pyarrow as pa

    from batchembed.embedders.base import Embedder as Model
    from batchembed.evaluation.runner import EvalConfig, Evaluation, Tasks
    from batchembed.summary import RunSummary

ENGINES = ("local", "ray")


class Embedder:
    """The models, loaded once, for any number of `compare`, `run` and `evaluate` calls.

    Takes the model options of `batchembed.run` (same names and defaults); `glove=None` or
    `transformer=None` leaves that model out. Loading validates every option first.

    Raises UsageError (a bad option value), ModelError (a model that cannot be loaded).
    """

    def __init__(
        self,
        glove: str | None = DEFAULT_GLOVE,
        transformer: str | None = DEFAULT_TRANSFORMER,
        *,
        glove_name: str = "glove",
        transformer_name: str = "bert",
        layers: str = "-1",
        layer_mean: bool = True,
        subtoken_pooling: str = "first",
        device: str | None = None,
        token_budget: int | None = None,
        precision: str = "fp32",
    ) -> None:
        from batchembed.models import load_embedders

        self.glove, self.transformer = model_specs(
            glove, glove_name, transformer, transformer_name, layers, layer_mean, subtoken_pooling
        )
        self.options = EmbedOptions(device, token_budget, precision)  # type: ignore[arg-type]  # validated
        self._models: list[Model] = load_embedders(self.glove, self.transformer, self.options)

    @property
    def models(self) -> list[dict[str, str]]:
        """How each loaded model is described in an output's metadata (name, kind, source, dim, ...)."""
        return [model.describe() for model in self._models]

    @property
    def names(self) -> list[str]:
        """The models' column prefixes, in output order (e.g. ["glove", "bert"])."""
        return [model.name for model in self._models]

    def compare(
        self,
        sentence1: str,
        sentence2: str,
        *,
        word: str | None = None,
        tokenizer: str = "flair",
        skip_stopwords: bool = False,
        stopwords: str = "english",
    ) -> list[dict[str, Any]]:
        """One record per compared word occurrence pair (the output's columns), as `batchembed
        compare` prints them: every word the sentences share, or only `word`.

        Raises UsageError for an unknown tokenizer or an empty `word`.
        """
        from batchembed.comparison import compare_sentences
        from batchembed.stopwords import load_stopwords
        from batchembed.tokenize import TOKENIZERS

        if tokenizer not in TOKENIZERS:
            raise UsageError(f"--tokenizer must be one of {', '.join(TOKENIZERS)}")
        if word is not None and not word.strip():
            raise UsageError("--word is empty; give the word to compare, or leave --word out for every shared word")
        skip = frozenset(load_stopwords(stopwords)) if skip_stopwords else frozenset()
        table = compare_sentences(sentence1, sentence2, self._models, word, tokenizer, skip)  # type: ignore[arg-type]
        return table.to_pylist()

    def run(
        self,
        inputs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        output: str | os.PathLike[str],
        *,
        sentence1_column: str = "sentence1",
        sentence2_column: str = "sentence2",
        id_column: str = "id",
        span_columns: str | Sequence[str] = SPAN_COLUMNS,
        index_columns: str | Sequence[str] = INDEX_COLUMNS,
        word_columns: str | Sequence[str] = WORD_COLUMNS,
        word_column: str = "word",
        tokenizer: str = "flair",
        skip_stopwords: bool = False,
        stopwords: str = "english",
        tokenize_workers: int | None = None,
        threads: int | None = None,
        shard_rows: int = DEFAULT_SHARD_ROWS,
        max_bad_rows: int | None = None,
        overwrite: bool = False,
        incremental: bool = False,
        progress: Progress = False,
    ) -> RunSummary:
        """The job of `batchembed.run` with these models, on the local engine: the same job options
        and defaults (see `run`); returns the RunSummary; raises what `run` raises."""
        options = {k: v for k, v in locals().items() if k not in ("self", "progress")}
        config = run_config(options, self.glove, self.transformer, self._embed_options(tokenize_workers, threads))
        return self._run(config, progress)

    def _embed_options(self, tokenize_workers: int | None, threads: int | None) -> EmbedOptions:
        options = self.options
        return EmbedOptions(options.device, options.token_budget, options.precision, tokenize_workers, threads)

    def _run(self, config: RunConfig, progress: Progress) -> RunSummary:
        from batchembed.engines.local import run as run_local

        with progress_callback(progress) as on_shard:
            return run_local(config, self._models, on_shard)

    def evaluate(
        self,
        dev: str | os.PathLike[str] | None = None,
        test: str | os.PathLike[str] | None = None,
        *,
        dev_gold: str | os.PathLike[str] | None = None,
        test_gold: str | os.PathLike[str] | None = None,
        similarity: str | Sequence[str] | None = None,
        score_column: str = "score",
        tokenizer: str = "flair",
    ) -> Evaluation:
        """`batchembed.evaluate` with these models: the same labelled-data options and defaults;
        returns an Evaluation; raises UsageError (nothing to evaluate), InputError (labelled files)."""
        from batchembed.evaluation.runner import load_tasks

        options = {k: v for k, v in locals().items() if k != "self"}
        config = eval_config(options, self.glove, self.transformer, self.options)
        return self._evaluate(load_tasks(config), config)

    def _evaluate(self, tasks: Tasks, config: EvalConfig) -> Evaluation:
        from batchembed.evaluation.runner import evaluate

        return evaluate(tasks, self._models, config)


def run(
    inputs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    *,
    sentence1_column: str = "sentence1",
    sentence2_column: str = "sentence2",
    id_column: str = "id",
    span_columns: str | Sequence[str] = SPAN_COLUMNS,
    index_columns: str | Sequence[str] = INDEX_COLUMNS,
    word_columns: str | Sequence[str] = WORD_COLUMNS,
    word_column: str = "word",
    tokenizer: str = "flair",
    skip_stopwords: bool = False,
    stopwords: str = "english",
    glove: str | None = DEFAULT_GLOVE,
    glove_name: str = "glove",
    transformer: str | None = DEFAULT_TRANSFORMER,
    transformer_name: str = "bert",
    layers: str = "-1",
    layer_mean: bool = True,
    subtoken_pooling: str = "first",
    device: str | None = None,
    token_budget: int | None = None,
    precision: str = "fp32",
    tokenize_workers: int | None = None,
    threads: int | None = None,
    shard_rows: int = DEFAULT_SHARD_ROWS,
    max_bad_rows: int | None = None,
    overwrite: bool = False,
    incremental: bool = False,
    engine: str = "local",
    ray_address: str | None = None,
    ray_workers: int | None = None,
    ray_prepare_cpus: int | None = None,
    progress: Progress = False,
) -> RunSummary:
    """Embed every sentence pair of `inputs` and write per-word distances to `output`: the job of
    `batchembed run`, with its options and defaults (docs/options.md, docs/commands.md).

    `inputs`: CSV/TSV/Parquet files, directories or globs (one, or a list); `output`: a directory
    of Parquet parts, a local path or a URI (s3://...). A re-run resumes what an earlier run left.
    Column options take a sequence of names or the command line's comma-separated text.
    `engine="ray"` runs on a Ray cluster (`ray_address`; `ray_workers` model actors, where the models
    load; `ray_prepare_cpus` one-CPU prepare actors that read, tokenize and write).
    `progress`: False (nothing), True (a tqdm bar on stderr), or a callable given the number of
    pairs of each finished shard (e.g. a tqdm bar's `update`).

    Returns the RunSummary (also written as `<output>.batchembed/summary.json`); its `exit_code`
    is the command line's: 0, 3 when input files could not be read (the others were processed),
    6 when rows were bad (see the status column). Raises UsageError, InputError (no input at all),
    ModelError, OutputError (other settings, locked, not writable), TooManyBadRows past
    `max_bad_rows`; KeyboardInterrupt passes through (finished shards are kept).
    """
    return _prepare_run(locals())()


def _prepare_run(options: dict[str, Any]) -> Callable[[], RunSummary]:
    """Everything of `run` before the job: the options checked and, on the local engine, the models
    loaded; returns the job. The CLI installs its job-time signal handlers in between."""
    options = dict(options)
    engine, ray_address, ray_workers = options.pop("engine"), options.pop("ray_address"), options.pop("ray_workers")
    ray_prepare_cpus, progress = options.pop("ray_prepare_cpus"), options.pop("progress")
    if engine not in ENGINES:
        raise UsageError(f"--engine must be local or ray, got {engine!r}")
    for name, value in (("--ray-workers", ray_workers), ("--ray-prepare-cpus", ray_prepare_cpus)):
        if value is not None and value < 1:
            raise UsageError(f"{name} must be positive, got {value}")
    glove, transformer = model_specs(*(options[k] for k in SPEC_OPTIONS))
    embed = EmbedOptions(*(options[k] for k in EMBED_OPTIONS))
    config = run_config(options, glove, transformer, embed)  # every option checked before a model loads
    check_run(config)  # inputs, columns, output and settings, in a second (precheck.py)
    if engine == "ray":
        from batchembed.engines.ray import run as run_ray

        def ray_job() -> RunSummary:
            with progress_callback(progress) as on_shard:
                return run_ray(config, on_shard, ray_address, ray_workers, ray_prepare_cpus)

        return ray_job
    embedder = Embedder(**arguments_of(Embedder, options))
    return lambda: embedder._run(config, progress)


def _plan_run(options: dict[str, Any]) -> RunPlan:
    """`run --check`: the plan of `run` with these options (files, pairs, target modes, shards,
    what is done), from the inputs' headers and footers and the output's markers; no model loads."""
    options = {
        k: v for k, v in options.items() if k not in ("engine", "ray_address", "ray_workers", "ray_prepare_cpus")
    }
    glove, transformer = model_specs(*(options[k] for k in SPEC_OPTIONS))
    embed = EmbedOptions(*(options[k] for k in EMBED_OPTIONS))
    return check_run(run_config(options, glove, transformer, embed), count_csv=True)


def compare(
    sentence1: str,
    sentence2: str,
    *,
    word: str | None = None,
    tokenizer: str = "flair",
    skip_stopwords: bool = False,
    stopwords: str = "english",
    glove: str | None = DEFAULT_GLOVE,
    glove_name: str = "glove",
    transformer: str | None = DEFAULT_TRANSFORMER,
    transformer_name: str = "bert",
    layers: str = "-1",
    layer_mean: bool = True,
    subtoken_pooling: str = "first",
    device: str | None = None,
    token_budget: int | None = None,
    precision: str = "fp32",
) -> list[dict[str, Any]]:
    """Both models' distances for the words two sentences share (or for `word`), through the same
    pipeline as `run`: one record per compared occurrence pair, with the output's columns
    (word_1, word_2, <model>_euclidean, <model>_cosine, status, ...).

    Raises UsageError (a bad option), ModelError (a model that cannot be loaded).
    """
    options = locals()
    embedder = Embedder(**arguments_of(Embedder, options))
    return embedder.compare(
        sentence1, sentence2, word=word, tokenizer=tokenizer, skip_stopwords=skip_stopwords, stopwords=stopwords
    )


def evaluate(
    dev: str | os.PathLike[str] | None = None,
    test: str | os.PathLike[str] | None = None,
    *,
    dev_gold: str | os.PathLike[str] | None = None,
    test_gold: str | os.PathLike[str] | None = None,
    similarity: str | Sequence[str] | None = None,
    score_column: str = "score",
    tokenizer: str = "flair",
    glove: str | None = DEFAULT_GLOVE,
    glove_name: str = "glove",
    transformer: str | None = DEFAULT_TRANSFORMER,
    transformer_name: str = "bert",
    layers: str = "-1",
    layer_mean: bool = True,
    subtoken_pooling: str = "first",
    device: str | None = None,
    token_budget: int | None = None,
    precision: str = "fp32",
) -> Evaluation:
    """Score the distances against labelled data, as `batchembed evaluate`: word-in-context
    accuracy (`dev` tunes a distance threshold, `test` is scored with it; WiC NAME.data.txt with
    its NAME.gold.txt, or SuperGLUE .jsonl) and/or Spearman's rho on graded `similarity` files.

    Returns an Evaluation: `.binary` and `.graded` results per model and metric, `.table()` the
    text the command prints, `.to_dict()` / `.write_json(path)` its JSON. The labelled files are
    read and checked before a model loads. Raises UsageError, InputError, ModelError.
    """
    from batchembed.evaluation.runner import load_tasks

    options = locals()
    glove_spec, transformer_spec = model_specs(*(options[k] for k in SPEC_OPTIONS))
    embed = EmbedOptions(device, token_budget, precision)  # type: ignore[arg-type]  # validated
    config = eval_config(options, glove_spec, transformer_spec, embed)
    tasks = load_tasks(config)
    return Embedder(**arguments_of(Embedder, options))._evaluate(tasks, config)


def read_output(output: str | os.PathLike[str]) -> pa.Table:
    """A finished output (local path or URI) as one table, in input order; see batchembed.output."""
    from batchembed.output import read_output as read

    return read(output)


def report(
    output: str | os.PathLike[str], *, out: str | os.PathLike[str] | None = None, keep_stopwords: bool = False
) -> Path:
    """Write an HTML page of plots (and the plots as PNG files) of a result into `out` (default:
    `<output>.batchembed/report/`, or beside this directory for an output on object storage);
    returns the page's path. The per-word plots leave out pairs of function words ("the" x "the")
    unless `keep_stopwords`. Raises InputError (not a result), OutputError (cannot write)."""
    from batchembed.reporting import write_report

    return write_report(str(output), None if out is None else Path(out), keep_stopwords)
