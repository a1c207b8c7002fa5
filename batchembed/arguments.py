"""The API's arguments turned into the validated configuration a job or an evaluation runs with."""

from __future__ import annotations

import contextlib
import inspect
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batchembed.config import Columns, EmbedOptions, EvalConfig, GloveSpec, RunConfig, TransformerSpec
from batchembed.errors import UsageError
from batchembed.stopwords import load_stopwords

if TYPE_CHECKING:
    from batchembed.stages.task import ProgressCallback

Progress = bool | Callable[[int], None]
SPAN_COLUMNS = ("start1", "end1", "start2", "end2")
INDEX_COLUMNS = ("index1", "index2")
WORD_COLUMNS = ("word1", "word2")

SPEC_OPTIONS = ("glove", "glove_name", "transformer", "transformer_name", "layers", "layer_mean", "subtoken_pooling")
USE_COLUMNS = ("sentence", "start", "end", "index", "word", "lemma", "grouping", "id")  # <name>_column, in order
EMBED_OPTIONS = ("device", "token_budget", "precision", "tokenize_workers", "threads")


def arguments_of(function: Callable[..., Any], options: dict[str, Any]) -> dict[str, Any]:
    """The options `function` takes, by name."""
    names = inspect.signature(function).parameters
    return {name: value for name, value in options.items() if name in names and name != "self"}


def model_specs(
    glove: str | None,
    glove_name: str,
    transformer: str | None,
    transformer_name: str,
    layers: str,
    layer_mean: bool,
    subtoken_pooling: str,
) -> tuple[GloveSpec | None, TransformerSpec | None]:
    if glove is None and transformer is None:
        raise UsageError("both models are disabled: keep --glove or --transformer")
    glove_spec = None if glove is None else GloveSpec(str(glove), glove_name)
    transformer_spec = (
        None
        if transformer is None
        else TransformerSpec(str(transformer), transformer_name, str(layers), layer_mean, subtoken_pooling)
    )
    return glove_spec, transformer_spec


def column_names(value: str | Sequence[str], count: int, option: str) -> tuple[str, ...]:
    """Column names from a sequence or the command line's comma-separated text."""
    parts = tuple(p.strip() for p in (value.split(",") if isinstance(value, str) else value))
    if len(parts) != count or not all(parts):
        raise UsageError(f"{option} needs {count} comma-separated column names, got {value!r}")
    return parts


def keep_column_names(value: str | Sequence[str]) -> tuple[str, ...]:
    """--keep-columns from a sequence or comma-separated text; empty text keeps none."""
    if isinstance(value, str):
        return tuple(p.strip() for p in value.split(",")) if value.strip() else ()
    if not all(isinstance(name, str) for name in value):
        raise UsageError(f"keep_columns must be column names (text), got {value!r}")
    return tuple(value)


def type_name(value: object) -> str:
    """How a value's type reads in a message: 'pandas DataFrame', 'pyarrow Table', 'list'."""
    kind = type(value)
    package = kind.__module__.split(".")[0]
    return kind.__name__ if package == "builtins" else f"{package} {kind.__name__}"


def file_inputs(inputs: Any) -> list[str | os.PathLike[str]]:
    """`run`'s inputs, which name files; data in memory is `distances`' (a UsageError says so)."""
    if isinstance(inputs, (str, os.PathLike)):
        return [inputs]
    if isinstance(inputs, Sequence) and all(isinstance(i, (str, os.PathLike)) for i in inputs):
        return list(inputs)
    raise UsageError(
        f"run reads files, but inputs is a {type_name(inputs)}; give paths, directories or globs, "
        "or call batchembed.distances(data, ...) (or Embedder.distances) for data in memory"
    )


def run_config(
    options: dict[str, Any],
    glove: GloveSpec | None,
    transformer: TransformerSpec | None,
    embed: EmbedOptions,
) -> RunConfig:
    inputs, output = file_inputs(options["inputs"]), options["output"]
    if not str(output).strip():
        raise UsageError("--output is empty; name the output directory (use . for this directory)")
    start1, end1, start2, end2 = column_names(options["span_columns"], 4, "--span-columns")
    index1, index2 = column_names(options["index_columns"], 2, "--index-columns")
    word1, word2 = column_names(options["word_columns"], 2, "--word-columns")
    columns = Columns(
        options["sentence1_column"],
        options["sentence2_column"],
        options["id_column"],
        start1,
        end1,
        start2,
        end2,
        index1,
        index2,
        word1,
        word2,
        options["word_column"],
        keep_column_names(options["keep_columns"]),
        load_stopwords(options["stopwords"]) if options["skip_stopwords"] else (),
    )
    return job_config(options, [os.fspath(i) for i in inputs], os.fspath(output), columns, glove, transformer, embed)


def job_config(
    options: dict[str, Any],
    inputs: list[str],
    output: str,
    columns: Columns,
    glove: GloveSpec | None,
    transformer: TransformerSpec | None,
    embed: EmbedOptions,
    use_vectors: bool = False,
) -> RunConfig:
    """The one job's configuration: these inputs, output and columns, the job options of `options`."""
    return RunConfig(
        inputs=tuple(inputs),
        output=output,
        columns=columns,
        tokenizer=options["tokenizer"],
        glove=glove,
        transformer=transformer,
        embed=embed,
        shard_rows=options["shard_rows"],
        max_bad_rows=options["max_bad_rows"],
        stall_seconds=options["stall_seconds"],
        overwrite=options["overwrite"],
        incremental=options["incremental"],
        use_vectors=use_vectors,
    )


class UsesPlan:
    """What `uses` runs: the embedding step's RunConfig, and how its vectors are measured."""

    def __init__(
        self, options: dict[str, Any], glove: GloveSpec | None, transformer: TransformerSpec | None, embed: EmbedOptions
    ) -> None:
        from batchembed.io.storage import locate
        from batchembed.usage.job import UseColumns, UsesLayout, UsesOptions, plan_inputs

        output = options["output"]
        if not str(output).strip():
            raise UsageError("--output is empty; name the output directory (use . for this directory)")
        columns = UseColumns(*(options[f"{name}_column"] for name in USE_COLUMNS))
        self.options = UsesOptions(
            options["vectors"], options["pair_distances"], options["max_pairs_per_word"], options["seed"]
        )
        self.layout = UsesLayout(locate(os.fspath(output)), self.options.vectors)
        inputs = [os.fspath(i) for i in file_inputs(options["inputs"])]
        specs, pair_columns, self.lemma, self.grouping = plan_inputs(inputs, columns, self.layout)
        vectors = str(self.layout.vectors)
        self.config = job_config(options, specs, vectors, pair_columns, glove, transformer, embed, use_vectors=True)

    def job(self, embed: Callable[[], Any], device: str | None) -> Callable[[], Any]:
        from batchembed.usage.job import run_uses

        return lambda: run_uses(self.layout, embed, self.lemma, self.grouping, self.options, device)


def uses_plan(
    options: dict[str, Any], glove: GloveSpec | None, transformer: TransformerSpec | None, embed: EmbedOptions
) -> UsesPlan:
    return UsesPlan(options, glove, transformer, embed)


def _as_list(value: Any) -> list[Any]:
    """One path or several, as a list."""
    if value is None:
        return []
    return [value] if isinstance(value, (str, os.PathLike)) else list(value)


def eval_config(
    options: dict[str, Any], glove: GloveSpec | None, transformer: TransformerSpec | None, embed: EmbedOptions
) -> EvalConfig:

    def path(name: str) -> Path | None:
        return None if options[name] is None else Path(options[name])

    similarity = options["similarity"]
    if isinstance(similarity, (str, os.PathLike)):
        similarity = [similarity]
    return EvalConfig(
        dev=path("dev"),
        test=path("test"),
        dev_gold=path("dev_gold"),
        test_gold=path("test_gold"),
        similarity=tuple(os.fspath(s) for s in similarity or ()),
        uses=tuple(os.fspath(u) for u in _as_list(options["uses"])),
        change=path("change"),
        score_column=options["score_column"],
        tokenizer=options["tokenizer"],
        glove=glove,
        transformer=transformer,
        embed=embed,
    )


class _Bar:
    """A tqdm bar of the pairs (`unit`: or uses) written, made on the first piece (a run that fails
    before one shows no empty bar), with a total and an ETA from the moment the job knows how many
    it will write (`expect`): at once from Parquet footers, once counted for local CSV files."""

    def __init__(self, unit: str = "pairs") -> None:
        self.bar: Any = None
        self.unit = unit
        self.total: Callable[[], int | None] = lambda: None

    def expect(self, total: Callable[[], int | None]) -> None:
        """`total()`: the pairs the job will write, None while not known; asked at each update until known."""
        self.total = total

    def __call__(self, pairs: int) -> None:
        if self.bar is None:
            from tqdm import tqdm

            total, unit = self.total(), self.unit
            self.bar = tqdm(desc=unit, unit=f" {unit}", total=total, file=sys.stderr, dynamic_ncols=True)
        elif self.bar.total is None:
            self.bar.total = self.total()  # a CSV count has come in: from now on a percentage and an ETA
        self.bar.update(pairs)

    def close(self) -> None:
        if self.bar is not None:
            if self.bar.total is None:  # a count that came in after the last piece: the last line shows it
                self.bar.total = self.total()
            self.bar.close()


def progress_unit(config: RunConfig) -> str:
    """What a job's progress counts: the uses job (`uses`) embeds uses, `run` sentence pairs."""
    return "uses" if config.use_vectors else "pairs"


@contextlib.contextmanager
def progress_callback(progress: Progress, unit: str = "pairs") -> Iterator[ProgressCallback | None]:
    """The job's per-piece callback (pairs written) for the caller's choice of progress; `unit`
    names what a bar counts."""
    if progress is True:
        update = _Bar(unit)
        try:
            yield update
        finally:
            update.close()
    elif progress is False or progress is None:
        yield None
    elif callable(progress):
        yield progress
    else:
        raise UsageError(f"progress must be True, False or a callable taking a number of pairs, got {progress!r}")
