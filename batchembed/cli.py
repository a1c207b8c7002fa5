"""The command line: parse, build a config, call the library, map errors to exit codes.

This is the only module that prints or chooses an exit code.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from batchembed.config import (
    DEFAULT_GLOVE,
    DEFAULT_SHARD_ROWS,
    DEFAULT_TRANSFORMER,
    Columns,
    EmbedOptions,
    GloveSpec,
    RunConfig,
    TransformerSpec,
)
from batchembed.errors import BatchembedError, ExitCode, UsageError

if TYPE_CHECKING:
    from batchembed.summary import RunSummary

app = typer.Typer(
    name="batchembed",
    help="Per-word GloVe and BERT distances between the two sentences of each pair, in batch.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# -- options shared by `run` and `compare` ---------------------------------------------
GloveOpt = Annotated[
    str,
    typer.Option(
        "--glove",
        help="GloVe: the packaged default, a GloVe .txt file, a directory with .npy + vocabulary, or a flair name.",
    ),
]
NoGloveOpt = Annotated[bool, typer.Option("--no-glove", help="Skip the GloVe model.")]
GloveNameOpt = Annotated[str, typer.Option("--glove-name", help="Column prefix for the GloVe distances.")]
TransformerOpt = Annotated[
    str,
    typer.Option(
        "--transformer", help="Transformer: the packaged default, a Hugging Face model id, or a local directory."
    ),
]
NoTransformerOpt = Annotated[bool, typer.Option("--no-transformer", help="Skip the transformer model.")]
TransformerNameOpt = Annotated[
    str, typer.Option("--transformer-name", help="Column prefix for the transformer distances.")
]
LayersOpt = Annotated[
    str, typer.Option("--layers", help="Transformer layers, flair style: '-1', '-1,-2,-3,-4' or 'all'.")
]
LayerMeanOpt = Annotated[
    bool,
    typer.Option(
        "--layer-mean/--layer-concat", help="Average the chosen layers (flair's default) or concatenate them."
    ),
]
PoolingOpt = Annotated[
    str, typer.Option("--subtoken-pooling", help="How subwords make a word vector: first, last, first_last or mean.")
]
TokenizerOpt = Annotated[
    str, typer.Option("--tokenizer", help="flair (flair's default tokenizer) or whitespace (pre-tokenized text).")
]
DeviceOpt = Annotated[
    str | None, typer.Option("--device", help="cpu, cuda or cuda:N. Default: CUDA when present, else CPU.")
]
TokenBudgetOpt = Annotated[
    int | None, typer.Option("--token-budget", help="Padded subword positions per batch. Default: automatic.")
]
PrecisionOpt = Annotated[
    str,
    typer.Option(
        "--precision",
        help="fp32 (default); bf16 (bf16 weights on a CPU with AVX-512 bf16 or AMX, autocast on a GPU: faster, "
        "cosine distances within ~6e-3 of fp32); fp16 (autocast, for GPUs).",
    ),
]
TokenizeWorkersOpt = Annotated[
    int | None,
    typer.Option(
        "--tokenize-workers",
        help="Processes that prepare shards (tokenize, encode, targets) ahead of the model. "
        "Default: 1 on CPU, the spare cores on GPU; 0 prepares in a thread of the model's process.",
    ),
]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details to stderr.")]


def _models(
    glove: str,
    no_glove: bool,
    glove_name: str,
    transformer: str,
    no_transformer: bool,
    transformer_name: str,
    layers: str,
    layer_mean: bool,
    subtoken_pooling: str,
) -> tuple[GloveSpec | None, TransformerSpec | None]:
    glove_spec = None if no_glove else GloveSpec(glove, glove_name)
    transformer_spec = (
        None if no_transformer else TransformerSpec(transformer, transformer_name, layers, layer_mean, subtoken_pooling)
    )
    return glove_spec, transformer_spec


def _columns(pairs: str, names: int, option: str) -> tuple[str, ...]:
    parts = tuple(p.strip() for p in pairs.split(","))
    if len(parts) != names or not all(parts):
        raise UsageError(f"{option} needs {names} comma-separated column names, got {pairs!r}")
    return parts


def _setup_logging(verbose: bool, quiet: bool) -> None:
    level = logging.INFO if verbose else logging.ERROR if quiet else logging.WARNING
    logging.basicConfig(level=level, stream=sys.stderr, format="batchembed: %(levelname)s: %(message)s")
    for noisy in ("flair", "transformers", "huggingface_hub"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def _fail(error: BatchembedError) -> typer.Exit:
    typer.echo(f"Error: {error}", err=True)
    return typer.Exit(int(error.exit_code))


@app.command()
def run(
    inputs: Annotated[
        list[str], typer.Argument(help="CSV/TSV/Parquet files, directories or globs.", show_default=False)
    ],
    output: Annotated[
        str,
        typer.Option(
            "--output", "-o", help="Output directory of Parquet parts: a local path or a URI (s3://, gs://, ...)."
        ),
    ],
    sentence1_column: Annotated[str, typer.Option(help="Column of the first sentence.")] = "sentence1",
    sentence2_column: Annotated[str, typer.Option(help="Column of the second sentence.")] = "sentence2",
    id_column: Annotated[str, typer.Option(help="Column of the pair id (optional in the input).")] = "id",
    span_columns: Annotated[
        str, typer.Option(help="Character-span columns start1,end1,start2,end2.")
    ] = "start1,end1,start2,end2",
    index_columns: Annotated[str, typer.Option(help="Token-index columns index1,index2.")] = "index1,index2",
    word_columns: Annotated[str, typer.Option(help="Target-word columns word1,word2.")] = "word1,word2",
    word_column: Annotated[str, typer.Option(help="Column of one target word found in both sentences.")] = "word",
    tokenizer: TokenizerOpt = "flair",
    glove: GloveOpt = DEFAULT_GLOVE,
    no_glove: NoGloveOpt = False,
    glove_name: GloveNameOpt = "glove",
    transformer: TransformerOpt = DEFAULT_TRANSFORMER,
    no_transformer: NoTransformerOpt = False,
    transformer_name: TransformerNameOpt = "bert",
    layers: LayersOpt = "-1",
    layer_mean: LayerMeanOpt = True,
    subtoken_pooling: PoolingOpt = "first",
    device: DeviceOpt = None,
    token_budget: TokenBudgetOpt = None,
    precision: PrecisionOpt = "fp32",
    tokenize_workers: TokenizeWorkersOpt = None,
    threads: Annotated[
        int | None,
        typer.Option(help="torch threads of the model. Default: the cores no other process is busy on (CPU), 1 (GPU)."),
    ] = None,
    shard_rows: Annotated[int, typer.Option(help="Input rows per output part.")] = DEFAULT_SHARD_ROWS,
    max_bad_rows: Annotated[
        int | None, typer.Option(help="Stop with exit code 7 once more rows than this are bad.")
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace results already in the output directory.")
    ] = False,
    incremental: Annotated[
        bool,
        typer.Option(
            "--incremental",
            help="Add new input files and rows appended to known ones to an existing output; redo files that changed.",
        ),
    ] = False,
    engine: Annotated[
        str, typer.Option("--engine", help="local (this process) or ray (Ray actors; pip install batchembed\\[ray]).")
    ] = "local",
    ray_address: Annotated[
        str | None, typer.Option("--ray-address", help="Ray cluster to join (default: RAY_ADDRESS, else a local one).")
    ] = None,
    ray_workers: Annotated[
        int | None, typer.Option("--ray-workers", help="Ray actors (default: one per GPU, else one per node).")
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bar and no summary line (for cron).")
    ] = False,
    verbose: VerboseOpt = False,
) -> None:
    """Embed every sentence pair of INPUTS and write per-word distances to OUTPUT.

    Exit codes:
    0 success;
    1 internal error (a bug: please report it);
    2 usage error (bad option or value);
    3 input error: a file is missing or unreadable (the other files were processed);
    4 model error: a model could not be loaded;
    5 output error: other settings or inputs, locked by another run, or not writable;
    6 finished, with bad rows (see the status column);
    7 stopped: more bad rows than --max-bad-rows;
    130 interrupted (finished shards are kept).
    """
    _setup_logging(verbose, quiet)
    try:
        if not output.strip():
            raise UsageError("--output is empty; name the output directory (use . for this directory)")
        start1, end1, start2, end2 = _columns(span_columns, 4, "--span-columns")
        index1, index2 = _columns(index_columns, 2, "--index-columns")
        word1, word2 = _columns(word_columns, 2, "--word-columns")
        glove_spec, transformer_spec = _models(
            glove,
            no_glove,
            glove_name,
            transformer,
            no_transformer,
            transformer_name,
            layers,
            layer_mean,
            subtoken_pooling,
        )
        config = RunConfig(
            inputs=tuple(inputs),
            output=output,
            columns=Columns(
                sentence1_column,
                sentence2_column,
                id_column,
                start1,
                end1,
                start2,
                end2,
                index1,
                index2,
                word1,
                word2,
                word_column,
            ),
            tokenizer=tokenizer,  # type: ignore[arg-type]  # validated by RunConfig
            glove=glove_spec,
            transformer=transformer_spec,
            embed=EmbedOptions(device, token_budget, precision, tokenize_workers, threads),  # type: ignore[arg-type]
            shard_rows=shard_rows,
            max_bad_rows=max_bad_rows,
            overwrite=overwrite,
            incremental=incremental,
        )
        if engine not in ("local", "ray"):
            raise UsageError(f"--engine must be local or ray, got {engine!r}")
        if ray_workers is not None and ray_workers < 1:
            raise UsageError(f"--ray-workers must be positive, got {ray_workers}")
        summary = _run_with_progress(config, quiet, engine, ray_address, ray_workers)
    except BatchembedError as error:
        raise _fail(error) from None
    except KeyboardInterrupt:
        typer.echo(INTERRUPTED, err=True)
        raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
    for message in summary.errors:  # files that could not be read; the others were processed
        typer.echo(f"Error: {message}", err=True)
    if not quiet:
        typer.echo(summary.line(), err=True)
        _precision_hint(config, engine)
    if summary.exit_code:
        raise typer.Exit(summary.exit_code)


def _precision_hint(config: RunConfig, engine: str) -> None:
    """One line when this machine runs a faster precision than the one used (hardware.py); not for
    Ray, whose workers may run on other CPUs."""
    if engine != "local" or config.transformer is None:
        return
    from batchembed.hardware import precision_hint
    from batchembed.models import choose_device

    hint = precision_hint(config.embed.precision, choose_device(config.embed.device).type)
    if hint:
        typer.echo(hint, err=True)


INTERRUPTED = "Interrupted: finished shards are kept; run the same command again to finish."
_signals_received: list[int] = []  # SIGINT/SIGTERM seen while a run's job was going


def _interrupt(signum: int, frame: object) -> None:
    _signals_received.append(signum)
    raise KeyboardInterrupt


def _exit_at_once(signum: int, frame: object) -> None:
    """Start-up (imports, loading models): nothing is written yet, so nothing to clean up. Raising
    KeyboardInterrupt here could land inside an import of torch or flair and surface as an unrelated
    error (once "ImportError: initialization failed", exit 1) or be swallowed: exit instead."""
    with contextlib.suppress(OSError):
        os.write(2, f"{INTERRUPTED}\n".encode())
    os._exit(int(ExitCode.INTERRUPTED))


@contextlib.contextmanager
def _job_interrupts() -> Iterator[None]:
    """While the job runs, SIGTERM (cron timeouts, systemd, kill) and Ctrl-C raise KeyboardInterrupt,
    so the job writes its summary and keeps its finished shards: exit 130."""
    import signal

    try:
        previous = [(sig, signal.signal(sig, _interrupt)) for sig in (signal.SIGINT, signal.SIGTERM)]
    except ValueError:  # not the main thread (e.g. a test harness): keep the defaults
        previous = []
    try:
        yield
    finally:  # in-process callers (tests) get their own handlers back
        for sig, handler in previous:
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


def _run_with_progress(
    config: RunConfig, quiet: bool, engine: str, ray_address: str | None, ray_workers: int | None
) -> RunSummary:
    from tqdm import tqdm

    def progress_bar() -> tqdm:
        return tqdm(desc="pairs", unit=" pairs", disable=quiet, file=sys.stderr, dynamic_ncols=True)

    if engine == "ray":
        from batchembed.engines.ray import run as run_ray

        with _job_interrupts(), progress_bar() as bar:  # Ray workers load the models while the bar waits
            return run_ray(config, lambda result: bar.update(result.pairs), ray_address, ray_workers)
    from batchembed.engines.local import run as run_local
    from batchembed.models import load_embedders

    embedders = load_embedders(config.glove, config.transformer, config.embed)  # before the bar: its rate is pairs/s
    with _job_interrupts(), progress_bar() as bar:
        return run_local(config, embedders, on_shard=lambda result: bar.update(result.pairs))


@app.command()
def compare(
    sentence1: Annotated[str, typer.Argument(help="The first sentence.", show_default=False)],
    sentence2: Annotated[str, typer.Argument(help="The second sentence.", show_default=False)],
    word: Annotated[str | None, typer.Option(help="Compare only this word (default: every shared word).")] = None,
    tokenizer: TokenizerOpt = "flair",
    glove: GloveOpt = DEFAULT_GLOVE,
    no_glove: NoGloveOpt = False,
    glove_name: GloveNameOpt = "glove",
    transformer: TransformerOpt = DEFAULT_TRANSFORMER,
    no_transformer: NoTransformerOpt = False,
    transformer_name: TransformerNameOpt = "bert",
    layers: LayersOpt = "-1",
    layer_mean: LayerMeanOpt = True,
    subtoken_pooling: PoolingOpt = "first",
    device: DeviceOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """Print both models' distances for the words two sentences share."""
    from batchembed.compare import compare_sentences, format_table
    from batchembed.models import load_embedders

    _setup_logging(verbose, quiet=False)
    try:
        if tokenizer not in ("flair", "whitespace"):
            raise UsageError("--tokenizer must be one of flair, whitespace")
        if word is not None and not word.strip():
            raise UsageError("--word is empty; give the word to compare, or leave --word out for every shared word")
        glove_spec, transformer_spec = _models(
            glove,
            no_glove,
            glove_name,
            transformer,
            no_transformer,
            transformer_name,
            layers,
            layer_mean,
            subtoken_pooling,
        )
        if glove_spec is None and transformer_spec is None:
            raise UsageError("both models are disabled: keep --glove or --transformer")
        embedders = load_embedders(glove_spec, transformer_spec, EmbedOptions(device=device))
        table = compare_sentences(sentence1, sentence2, embedders, word, tokenizer)  # type: ignore[arg-type]
    except BatchembedError as error:
        raise _fail(error) from None
    typer.echo(format_table(table, [e.name for e in embedders]))


# -- evaluate and report (issue 6) ------------------------------------------------------


@app.command()
def evaluate(
    dev: Annotated[
        Path | None, typer.Option(help="Split that tunes the threshold: WiC NAME.data.txt or SuperGLUE .jsonl.")
    ] = None,
    test: Annotated[Path | None, typer.Option(help="Split scored with the tuned threshold (same layouts).")] = None,
    dev_gold: Annotated[Path | None, typer.Option(help="Gold T/F file of --dev. Default: NAME.gold.txt.")] = None,
    test_gold: Annotated[Path | None, typer.Option(help="Gold T/F file of --test. Default: NAME.gold.txt.")] = None,
    similarity: Annotated[
        list[str] | None,
        typer.Option(metavar="PATH", help="Graded-similarity CSV/Parquet: run's input columns plus a score column."),
    ] = None,
    score_column: Annotated[str, typer.Option(help="Gold score column of the --similarity files.")] = "score",
    tokenizer: Annotated[
        str, typer.Option("--tokenizer", help="Tokenizer for --similarity files (WiC: whitespace, SuperGLUE: flair).")
    ] = "flair",
    json_path: Annotated[Path | None, typer.Option("--json", help="Also write the results as JSON here.")] = None,
    glove: GloveOpt = DEFAULT_GLOVE,
    no_glove: NoGloveOpt = False,
    glove_name: GloveNameOpt = "glove",
    transformer: TransformerOpt = DEFAULT_TRANSFORMER,
    no_transformer: NoTransformerOpt = False,
    transformer_name: TransformerNameOpt = "bert",
    layers: LayersOpt = "-1",
    layer_mean: LayerMeanOpt = True,
    subtoken_pooling: PoolingOpt = "first",
    device: DeviceOpt = None,
    token_budget: TokenBudgetOpt = None,
    precision: PrecisionOpt = "fp32",
    verbose: VerboseOpt = False,
) -> None:
    """Score the distances against labelled data: WiC-style accuracy (--dev/--test) or Spearman (--similarity)."""
    from batchembed.evaluation import EvalConfig, format_table, run_evaluation

    _setup_logging(verbose, quiet=False)
    try:
        glove_spec, transformer_spec = _models(
            glove,
            no_glove,
            glove_name,
            transformer,
            no_transformer,
            transformer_name,
            layers,
            layer_mean,
            subtoken_pooling,
        )
        config = EvalConfig(
            dev=dev,
            test=test,
            dev_gold=dev_gold,
            test_gold=test_gold,
            similarity=tuple(similarity or ()),
            score_column=score_column,
            tokenizer=tokenizer,  # type: ignore[arg-type]  # validated by EvalConfig
            glove=glove_spec,
            transformer=transformer_spec,
            embed=EmbedOptions(device, token_budget, precision),  # type: ignore[arg-type]
        )
        result = run_evaluation(config)
        if json_path is not None:
            result.write_json(json_path)
    except BatchembedError as error:
        raise _fail(error) from None
    typer.echo(format_table(result))


@app.command()
def report(
    output: Annotated[
        str,
        typer.Argument(help="A result directory written by `batchembed run` (path or URI).", show_default=False),
    ],
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Folder for report.html and the PNG plots. Default: OUTPUT.batchembed/report."),
    ] = None,
    verbose: VerboseOpt = False,
) -> None:
    """Turn a result directory into one self-contained HTML page of plots (and the plots as PNG files)."""
    from batchembed.report import write_report

    _setup_logging(verbose, quiet=False)
    try:
        page = write_report(output, out)
    except BatchembedError as error:
        raise _fail(error) from None
    typer.echo(str(page))


def main() -> None:
    """The program. Signal handlers come first, so that SIGINT/SIGTERM at any point after the
    interpreter has started (the seconds torch and flair take to import included) exits 130 with one
    line: at once during start-up, through the job's own clean-up once a run has begun."""
    import signal

    with contextlib.suppress(ValueError):  # not the main thread: keep the defaults
        signal.signal(signal.SIGINT, _exit_at_once)
        signal.signal(signal.SIGTERM, _exit_at_once)
    try:
        app()
    except BaseException as exc:  # click would turn a stray KeyboardInterrupt into "Aborted!", exit 1
        if not _signals_received or (isinstance(exc, SystemExit) and exc.code in (0, ExitCode.INTERRUPTED)):
            raise
        with contextlib.suppress(BaseException):
            typer.echo(INTERRUPTED, err=True)
        raise SystemExit(int(ExitCode.INTERRUPTED)) from None


if __name__ == "__main__":
    main()
