"""The Python API: the job, compare, evaluate and reading an output, with the command line's options
and defaults. The command line (cli.py) is built from these signatures.

`Embedder` holds loaded models for repeated calls in one process (like bert_score's BERTScorer);
the functions `run`, `compare` and `evaluate` load the models for one call. Nothing here prints:
progress goes to a callback or a tqdm bar, as the caller chooses, and results are returned.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
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
    progress_unit,
    run_config,
    uses_plan,
)
from batchembed.config import DEFAULT_GLOVE, DEFAULT_SHARD_ROWS, DEFAULT_TRANSFORMER, EmbedOptions, RunConfig
from batchembed.errors import UsageError
from batchembed.precheck import RunPlan, check_run

if TYPE_CHECKING:
    import pyarrow as pa

    from batchembed.config import EvalConfig
    from batchembed.embedders.base import Embedder as Model
    from batchembed.evaluation.runner import Evaluation, Tasks
    from batchembed.results.summary import RunSummary
    from batchembed.usage.job import UsesSummary

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
        from batchembed.embedders.load import load_embedders

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

        check_sentences(sentence1, sentence2)
        if tokenizer not in TOKENIZERS:
            raise UsageError(f"--tokenizer must be one of {', '.join(TOKENIZERS)}")
        if word is not None and not word.strip():
            raise UsageError("--word is empty; give the word to compare, or leave --word out for every shared word")
        skip = frozenset(load_stopwords(stopwords)) if skip_stopwords else frozenset()
        table = compare_sentences(sentence1, sentence2, self._models, word, tokenizer, skip)  # type: ignore[arg-type]
        return table.to_pylist()

    def distances(
        self,
        pairs: Any,
        *,
        sentence1_column: str = "sentence1",
        sentence2_column: str = "sentence2",
        id_column: str = "id",
        span_columns: str | Sequence[str] = SPAN_COLUMNS,
        index_columns: str | Sequence[str] = INDEX_COLUMNS,
        word_columns: str | Sequence[str] = WORD_COLUMNS,
        word_column: str = "word",
        keep_columns: str | Sequence[str] = (),
        tokenizer: str = "flair",
        skip_stopwords: bool = False,
        stopwords: str = "english",
        tokenize_workers: int | None = None,
        threads: int | None = None,
        max_bad_rows: int | None = None,
        stall_seconds: float | None = None,
        progress: Progress = False,
    ) -> pa.Table | Iterator[pa.RecordBatch]:
        """`batchembed.distances` with these models: the same options and defaults (see there)."""
        from batchembed import data_in_memory as in_memory

        options = {k: v for k, v in locals().items() if k not in ("self", "pairs", "progress")}
        embed = self._embed_options(tokenize_workers, threads)
        job = in_memory.plan(pairs, options, self.glove, self.transformer, embed)
        return in_memory.execute(job, lambda config: self._run(config, progress), self.names)

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
        keep_columns: str | Sequence[str] = (),
        tokenizer: str = "flair",
        skip_stopwords: bool = False,
        stopwords: str = "english",
        tokenize_workers: int | None = None,
        threads: int | None = None,
        shard_rows: int = DEFAULT_SHARD_ROWS,
        max_bad_rows: int | None = None,
        stall_seconds: float | None = None,
        overwrite: bool = False,
        incremental: bool = False,
        progress: Progress = False,
    ) -> RunSummary:
        """The job of `batchembed.run` with these models, on the local engine: the same job options
        and defaults (see `run`); returns the RunSummary; raises what `run` raises."""
        options = {k: v for k, v in locals().items() if k not in ("self", "progress")}
        config = run_config(options, self.glove, self.transformer, self._embed_options(tokenize_workers, threads))
        return self._run(config, progress)

    def uses(
        self,
        inputs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        output: str | os.PathLike[str],
        *,
        sentence_column: str = "sentence",
        start_column: str = "start",
        end_column: str = "end",
        index_column: str = "index",
        word_column: str = "word",
        lemma_column: str = "lemma",
        grouping_column: str = "grouping",
        id_column: str = "id",
        vectors: bool = False,
        pair_distances: bool = False,
        max_pairs_per_word: int | None = 10_000,
        seed: int = 0,
        tokenizer: str = "flair",
        tokenize_workers: int | None = None,
        threads: int | None = None,
        shard_rows: int = DEFAULT_SHARD_ROWS,
        max_bad_rows: int | None = None,
        stall_seconds: float | None = None,
        overwrite: bool = False,
        incremental: bool = False,
        progress: Progress = False,
    ) -> UsesSummary:
        """The job of `batchembed.uses` with these models, on the local engine: the same options and
        defaults (see `uses`); returns the UsesSummary; raises what `uses` raises."""
        options = {k: v for k, v in locals().items() if k not in ("self", "progress")}
        embed = self._embed_options(tokenize_workers, threads)
        plan = uses_plan(options, self.glove, self.transformer, embed)
        return plan.job(lambda: self._run(plan.config, progress), self.options.device)()

    def _embed_options(self, tokenize_workers: int | None, threads: int | None) -> EmbedOptions:
        options = self.options
        return EmbedOptions(options.device, options.token_budget, options.precision, tokenize_workers, threads)

    def _run(self, config: RunConfig, progress: Progress) -> RunSummary:
        from batchembed.engines.local import run as run_local

        with progress_callback(progress, progress_unit(config)) as on_progress:
            return run_local(config, self._models, on_progress)

    def evaluate(
        self,
        dev: str | os.PathLike[str] | None = None,
        test: str | os.PathLike[str] | None = None,
        *,
        dev_gold: str | os.PathLike[str] | None = None,
        test_gold: str | os.PathLike[str] | None = None,
        similarity: str | Sequence[str] | Any | None = None,
        score_column: str = "score",
        uses: str | Sequence[str] | None = None,
        change: str | os.PathLike[str] | None = None,
        tokenizer: str = "flair",
    ) -> Evaluation:
        """`batchembed.evaluate` with these models: the same labelled-data options and defaults;
        returns an Evaluation; raises UsageError (nothing to evaluate), InputError (labelled files)."""
        from batchembed import data_in_memory as in_memory
        from batchembed.evaluation.runner import load_tasks

        options = {k: v for k, v in locals().items() if k != "self"}
        with in_memory.similarity_files(similarity, score_column) as options["similarity"]:
            config = eval_config(options, self.glove, self.transformer, self.options)
            evaluation = self._evaluate(load_tasks(config), config)
        return in_memory.in_memory_similarity(evaluation, similarity)

    def _evaluate(self, tasks: Tasks, config: EvalConfig) -> Evaluation:
        from batchembed.evaluation.runner import evaluate

        evaluation = evaluate(tasks, self._models, config)
        if config.uses:
            self._score_change(evaluation, config)
        return evaluation

    def _score_change(self, evaluation: Evaluation, config: EvalConfig) -> None:
        """Graded change: the uses job on the labelled uses, each word's APD and PRT between its two
        groupings ranked against the gold score (evaluation/change.py)."""
        import tempfile

        from batchembed.embedders.distances import METRICS
        from batchembed.evaluation.change import read_change_gold, score_change
        from batchembed.results.read import read_output as read

        assert config.change is not None
        gold = read_change_gold(config.change)
        with tempfile.TemporaryDirectory(prefix="batchembed-uses-") as scratch:
            summary = self.uses(list(config.uses), os.path.join(scratch, "uses"), tokenizer=config.tokenizer)
            words = read(os.path.join(scratch, "uses"))
        evaluation.change = score_change(words, gold, self.names, METRICS)
        evaluation.change_data = {
            "uses": list(config.uses),
            "gold": str(config.change),
            "words_measured": words.num_rows,
            "words_in_gold": len(gold),
            "uses_by_status": dict(sorted(summary.use_counts.items())),
        }


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
    keep_columns: str | Sequence[str] = (),
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
    stall_seconds: float | None = None,
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
    Column options take a sequence of names or the command line's comma-separated text;
    `keep_columns` names input columns (labels, the sentences) copied into every output row of
    their pair, typed as in the input. For data in memory (a DataFrame, ...), call `distances`.
    `engine="ray"` runs on a Ray cluster (`ray_address`; `ray_workers` model actors, where the models
    load; `ray_prepare_cpus` one-CPU prepare actors that read, tokenize and write).
    `progress`: False (nothing), True (a tqdm bar on stderr), or a callable given the number of
    pairs of each piece written, as it is written (e.g. a tqdm bar's `update`).
    `stall_seconds`: a stage that finishes nothing for this long while work waits on it (a hung
    process) stops the run with WorkersLost; default: BATCHEMBED_STALL_SECONDS, else measured.

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
    engine = _EngineChoice(options)
    glove, transformer = model_specs(*(options[k] for k in SPEC_OPTIONS))
    embed = EmbedOptions(*(options[k] for k in EMBED_OPTIONS))
    config = run_config(options, glove, transformer, embed)  # every option checked before a model loads
    check_run(config)  # inputs, columns, output and settings, in a second (precheck.py)
    return engine.job(config, options)


class _EngineChoice:
    """`engine` and its Ray options, taken out of the options and checked; `job(config)` is the one
    job on that engine (on the local engine, the models load then)."""

    def __init__(self, options: dict[str, Any]) -> None:
        self.engine, self.ray_address = options.pop("engine"), options.pop("ray_address")
        self.ray_workers, self.ray_prepare_cpus = options.pop("ray_workers"), options.pop("ray_prepare_cpus")
        self.progress = options.pop("progress")
        if self.engine not in ENGINES:
            raise UsageError(f"--engine must be local or ray, got {self.engine!r}")
        for name, value in (("--ray-workers", self.ray_workers), ("--ray-prepare-cpus", self.ray_prepare_cpus)):
            if value is not None and value < 1:
                raise UsageError(f"{name} must be positive, got {value}")

    def job(self, config: RunConfig, options: dict[str, Any]) -> Callable[[], RunSummary]:
        progress = self.progress
        if self.engine == "ray":
            from batchembed.engines.ray import run as run_ray

            def ray_job() -> RunSummary:
                with progress_callback(progress, progress_unit(config)) as on_progress:
                    return run_ray(config, on_progress, self.ray_address, self.ray_workers, self.ray_prepare_cpus)

            return ray_job
        embedder = Embedder(**arguments_of(Embedder, options))
        return lambda: embedder._run(config, progress)


def uses(
    inputs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    *,
    sentence_column: str = "sentence",
    start_column: str = "start",
    end_column: str = "end",
    index_column: str = "index",
    word_column: str = "word",
    lemma_column: str = "lemma",
    grouping_column: str = "grouping",
    id_column: str = "id",
    vectors: bool = False,
    pair_distances: bool = False,
    max_pairs_per_word: int | None = 10_000,
    seed: int = 0,
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
    tokenize_workers: int | None = None,
    threads: int | None = None,
    shard_rows: int = DEFAULT_SHARD_ROWS,
    max_bad_rows: int | None = None,
    stall_seconds: float | None = None,
    overwrite: bool = False,
    incremental: bool = False,
    engine: str = "local",
    ray_address: str | None = None,
    ray_workers: int | None = None,
    ray_prepare_cpus: int | None = None,
    progress: Progress = False,
) -> UsesSummary:
    """Word usage analytics, the job of `batchembed uses`: one row per use in `inputs` (a sentence
    and its target: `start_column`/`end_column` character offsets, an `index_column` token index,
    or a `word_column` word; an optional word key `lemma_column`, grouping and id), each use's
    target embedded once per model, then per word and pair of groupings the APD (across, and within
    each side) and PRT, and for a word without groupings its APD and spread, in `output`/words/.
    A DWUG/DURel corpus (a uses.csv, or a folder of data/<word>/uses.csv) is read as published.

    `vectors` also writes the use vectors (`output`/vectors/); `pair_distances` each word's pairs
    (at most `max_pairs_per_word`, drawn reproducibly from `seed`) in `run`'s long format
    (`output`/pairs/). The other options are `run`'s. Returns a UsesSummary (also written as
    `<output>.batchembed/uses.json`); `read_output(output)` returns the words table. Raises what
    `run` raises.
    """
    return _prepare_uses(locals())()


def _prepare_uses(options: dict[str, Any]) -> Callable[[], UsesSummary]:
    options = dict(options)
    engine = _EngineChoice(options)
    glove, transformer = model_specs(*(options[k] for k in SPEC_OPTIONS))
    embed = EmbedOptions(*(options[k] for k in EMBED_OPTIONS))
    plan = uses_plan(options, glove, transformer, embed)  # the inputs' headers checked before a model loads
    return plan.job(engine.job(plan.config, options), options["device"])


def distances(
    pairs: Any,
    *,
    sentence1_column: str = "sentence1",
    sentence2_column: str = "sentence2",
    id_column: str = "id",
    span_columns: str | Sequence[str] = SPAN_COLUMNS,
    index_columns: str | Sequence[str] = INDEX_COLUMNS,
    word_columns: str | Sequence[str] = WORD_COLUMNS,
    word_column: str = "word",
    keep_columns: str | Sequence[str] = (),
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
    max_bad_rows: int | None = None,
    stall_seconds: float | None = None,
    progress: Progress = False,
) -> pa.Table | Iterator[pa.RecordBatch]:
    """The job of `run` on data in memory: the same options, target modes and statuses, with the
    output's rows returned instead of written, in input order.

    `pairs`: a pandas or Polars DataFrame, a pyarrow Table, RecordBatch, RecordBatchReader or
    Dataset, anything with the Arrow PyCapsule stream interface (a DuckDB relation), a list of
    dicts or of (sentence1, sentence2) tuples. Returns a pyarrow Table (`.to_pandas()`,
    `polars.from_arrow(...)`); `source_file` is "<memory>", `source_row` the 1-based row, and a
    pair without an id gets its row number as `pair_id`. `keep_columns` copies input columns
    (labels, the sentences) into every output row of their pair, typed as in the input.

    Given an iterator of record batches (a generator, `iter(reader)`), for data larger than memory:
    returns an iterator of record batches, with memory bounded by a piece, not the data (the
    batches are spooled to a temporary Parquet file under TMPDIR, read back part by part).

    Raises UsageError (a bad option, a path instead of data), InputError (a missing column),
    ModelError, TooManyBadRows past `max_bad_rows`; nothing loads before the data is checked.
    """
    from batchembed import data_in_memory as in_memory

    options = locals()
    job_options = {k: v for k, v in options.items() if k not in ("pairs", "progress") and k not in SPEC_OPTIONS}
    glove_spec, transformer_spec = model_specs(*(options[k] for k in SPEC_OPTIONS))
    embed = EmbedOptions(*(options[k] for k in EMBED_OPTIONS))
    job = in_memory.plan(pairs, job_options, glove_spec, transformer_spec, embed)  # before any model loads
    embedder = Embedder(**arguments_of(Embedder, options))
    return in_memory.execute(job, lambda config: embedder._run(config, progress), embedder.names)


def check_sentences(sentence1: object, sentence2: object) -> None:
    """`compare` takes two sentences; columns of them are `distances`' (a UsageError says so)."""
    from batchembed.arguments import type_name

    for name, value in (("sentence1", sentence1), ("sentence2", sentence2)):
        if not isinstance(value, str):
            raise UsageError(
                f"compare takes two sentences (text), but {name} is a {type_name(value)}; for many pairs "
                "call batchembed.distances(pairs) (or Embedder.distances), e.g. with list(zip(series1, series2))"
            )


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
    check_sentences(sentence1, sentence2)  # before the models load
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
    similarity: str | Sequence[str] | Any | None = None,
    score_column: str = "score",
    uses: str | Sequence[str] | None = None,
    change: str | os.PathLike[str] | None = None,
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
    its NAME.gold.txt, or SuperGLUE .jsonl) and/or Spearman's rho on graded `similarity` files,
    or on graded pairs in memory (a DataFrame or table with run's columns and `score_column`),
    and/or graded change: `uses` (word uses with two groupings, e.g. DWUG) embedded by the uses job,
    each word's APD and PRT between the groupings ranked against `change` (a gold score per word:
    DWUG's stats_groupings.csv, or a CSV/TSV with a word and a score column).

    Returns an Evaluation: `.binary` and `.graded` results per model and metric, `.table()` the
    text the command prints, `.to_dict()` / `.write_json(path)` its JSON. The labelled files are
    read and checked before a model loads. Raises UsageError, InputError, ModelError.
    """
    from batchembed import data_in_memory as in_memory
    from batchembed.evaluation.runner import load_tasks

    options = locals()
    glove_spec, transformer_spec = model_specs(*(options[k] for k in SPEC_OPTIONS))
    embed = EmbedOptions(device, token_budget, precision)  # type: ignore[arg-type]  # validated
    with in_memory.similarity_files(similarity, score_column) as options["similarity"]:
        config = eval_config(options, glove_spec, transformer_spec, embed)
        tasks = load_tasks(config)
        evaluation = Embedder(**arguments_of(Embedder, options))._evaluate(tasks, config)
    return in_memory.in_memory_similarity(evaluation, similarity)


def read_output(output: str | os.PathLike[str]) -> pa.Table:
    """A finished output (local path or URI) as one table, in input order; see batchembed.results.read."""
    from batchembed.results.read import read_output as read

    return read(output)


def report(
    output: str | os.PathLike[str], *, out: str | os.PathLike[str] | None = None, keep_stopwords: bool = False
) -> Path:
    """Write an HTML page of plots (and the plots as PNG files) of a result into `out` (default:
    `<output>.batchembed/report/`, or beside this directory for an output on object storage);
    returns the page's path. The per-word plots leave out pairs of function words ("the" x "the")
    unless `keep_stopwords`. A uses output gets its words ranked by APD. Raises InputError (not a
    result), OutputError (cannot write)."""
    from batchembed.results.report import write_report

    return write_report(str(output), None if out is None else Path(out), keep_stopwords)
