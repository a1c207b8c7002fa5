"""The command line: typer only. Each command's options are its API function's parameters
(batchembed/api.py: names, types, defaults) with the help in batchembed/options.py; a command
parses, calls the API, prints the result, and maps errors to exit codes.

This is the only module that prints or chooses an exit code.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperArgument, TyperCommand

from batchembed import api
from batchembed.errors import BatchembedError, ExitCode, naming
from batchembed.options import OPTIONS, flag

app = typer.Typer(
    name="batchembed",
    help="Per-word GloVe and BERT distances between the two sentences of each pair, in batch.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain click help: full width, no boxes, defaults never cut off
    context_settings={"max_content_width": 120},
)

API_ONLY = frozenset({"progress"})  # parameters with no command-line form
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details to stderr.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar and no summary line (for cron).")]
JsonOpt = Annotated[Path | None, typer.Option("--json", help="Also write the results as JSON here.")]
CheckOpt = Annotated[
    bool,
    typer.Option(
        "--check",
        help="Dry run: check the inputs, columns, output and settings and print the plan (files, pairs, "
        "target mode per file, shards, what is already done); no model loads, nothing is written.",
    ),
]

_KEYWORD = inspect.Parameter.KEYWORD_ONLY  # typer passes every parameter by name
# annotations of the API's signatures (strings: api.py postpones them) that typer takes as they are
_PLAIN_TYPES: dict[str, Any] = {
    "str": str,
    "int": int,
    "bool": bool,
    "float": float,
    "str | None": str | None,
    "int | None": int | None,
    "float | None": float | None,
}


class _Command(TyperCommand):
    """Usage lines as click writes them, `run [OPTIONS] INPUTS...`, not typer's `{inputs}...`."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if isinstance(param, TyperArgument):
                name = (param.metavar or param.name or "").upper()
                pieces.append(name + ("..." if param.nargs != 1 else ""))
        return pieces


def cli_parameters(function: Callable[..., Any], arguments: tuple[str, ...] = ()) -> list[inspect.Parameter]:
    """The command-line parameters of an API function: each of its parameters as an option (or, if
    named in `arguments`, a positional argument) with the same default; a sequence default becomes
    its comma-separated text; an option that may be None gets its own flag for that (--no-glove)."""
    parameters = []
    for parameter in inspect.signature(function).parameters.values():
        if parameter.name in API_ONLY:
            continue
        option = OPTIONS[parameter.name]
        default = parameter.default
        if isinstance(default, tuple):
            default = ",".join(default)
        if option.cli_type is not None:
            kind = option.cli_type
        elif option.none_flag or isinstance(default, str):
            kind = str
        else:
            kind = _PLAIN_TYPES[str(parameter.annotation)]
        info: Any
        help_text = option.help_for(function.__name__)
        if parameter.name in arguments:
            info = typer.Argument(help=help_text, show_default=False, metavar=parameter.name.upper())
        else:
            declared = f"{flag(parameter.name)}/{option.off_flag}" if option.off_flag else flag(parameter.name)
            names = [declared, option.short] if option.short else [declared]
            info = typer.Option(*names, help=help_text, metavar=option.metavar)
        parameters.append(
            inspect.Parameter(parameter.name, _KEYWORD, default=default, annotation=Annotated[kind, info])
        )
        if option.none_flag:
            none = Annotated[bool, typer.Option(option.none_flag, help=option.none_help)]
            parameters.append(inspect.Parameter(_none_name(parameter.name), _KEYWORD, default=False, annotation=none))
    return parameters


def _none_name(name: str) -> str:
    return f"no_{name}"


def command(
    function: Callable[..., Any], arguments: tuple[str, ...] = ()
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Register `handler(options, **cli_only)` as the command of API `function`: typer sees
    `function`'s parameters (cli_parameters) plus the handler's own, which are command-line only
    (--quiet, --verbose, --json); the handler gets the API's keyword arguments in `options`.
    Errors inside name options by their flags (errors.naming)."""

    def register(handler: Callable[..., None]) -> Callable[..., None]:
        api_parameters = cli_parameters(function, arguments)
        own = [
            p.replace(kind=_KEYWORD) for p in list(inspect.signature(handler, eval_str=True).parameters.values())[1:]
        ]
        names = [p.name for p in inspect.signature(function).parameters.values() if p.name not in API_ONLY]

        @functools.wraps(handler)
        def invoke(**values: Any) -> None:
            options = {}
            for name in names:
                value = values.pop(name)
                options[name] = None if values.pop(_none_name(name), False) else value
            with naming("cli"):
                handler(options, **values)

        invoke.__signature__ = inspect.Signature([*api_parameters, *own])  # type: ignore[attr-defined]
        invoke.__annotations__ = {}  # typer reads the signature's Annotated types
        del invoke.__wrapped__  # type: ignore[attr-defined]  # or inspect would show the handler's
        return app.command(handler.__name__, cls=_Command)(invoke)

    return register


NOISY_LOGGERS = ("flair", "transformers", "huggingface_hub", "ray", "ray.data", "urllib3", "filelock")


def _setup_logging(verbose: bool, quiet: bool) -> None:
    """--quiet is for cron: errors only, from batchembed and from the libraries it runs (their
    Python warnings and log lines too, in this process and in the worker processes it starts)."""
    level = logging.INFO if verbose else logging.ERROR if quiet else logging.WARNING
    logging.basicConfig(level=level, stream=sys.stderr, format="batchembed: %(levelname)s: %(message)s")
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    if quiet:
        import warnings

        warnings.simplefilter("ignore")
        os.environ["PYTHONWARNINGS"] = "ignore"  # worker processes (prepare workers, local Ray actors)
        os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("RAY_DATA_LOG_LEVEL", "ERROR")  # Ray Data configures its loggers from this
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def _fail(error: BatchembedError) -> typer.Exit:
    """One `Error:` line, or one per input when none could be read (precheck.NoReadableInput)."""
    for message in getattr(error, "messages", None) or [str(error)]:
        typer.echo(f"Error: {message}", err=True)
    return typer.Exit(int(error.exit_code))


@command(api.run, arguments=("inputs",))
def run(options: dict[str, Any], check: CheckOpt = False, quiet: QuietOpt = False, verbose: VerboseOpt = False) -> None:
    """Embed every sentence pair of INPUTS and write per-word distances to OUTPUT.

    \b
    Exit codes:
    0 success;
    1 internal error (a bug: please report it);
    2 usage error (bad option or value);
    3 input error: a file is missing or unreadable (the other files were processed);
    4 model error: a model could not be loaded;
    5 output error: other settings or inputs, locked by another run, or not writable;
    6 finished, with bad rows (see the status column);
    7 stopped: more bad rows than --max-bad-rows;
    8 stopped: worker processes kept dying or a stage hung (finished shards are kept);
    130 interrupted (finished shards are kept).
    """
    _setup_logging(verbose, quiet)
    if check:
        _check(options)
        return
    summary = _job(api._prepare_run, options, quiet)
    if not quiet and not summary.exit_code:  # a hint about speed is noise next to a failure
        _precision_hint(options)
    if summary.exit_code:
        raise typer.Exit(summary.exit_code)


def _job(prepare: Callable[[dict[str, Any]], Callable[[], Any]], options: dict[str, Any], quiet: bool) -> Any:
    """Prepare a job (models load before the job's signal handlers: see _exit_at_once), run it,
    print the unreadable files' errors and, unless quiet, its summary line; return its summary."""
    try:
        job = prepare({**options, "progress": not quiet})
        with _job_interrupts():
            summary = job()
    except BatchembedError as error:
        raise _fail(error) from None
    except KeyboardInterrupt:
        typer.echo(INTERRUPTED, err=True)
        raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
    for message in summary.errors:  # files that could not be read; the others were processed
        typer.echo(f"Error: {message}", err=True)
    if not quiet:
        typer.echo(summary.line(), err=True)
    return summary


def _check(options: dict[str, Any]) -> None:
    """`run --check`: the plan on stdout, inputs that would fail as error lines (exit 3)."""
    try:
        plan = api._plan_run(options)
    except BatchembedError as error:
        raise _fail(error) from None
    for line in plan.lines():
        typer.echo(line)
    for message in plan.errors:
        typer.echo(f"Error: {message}", err=True)
    if plan.errors:
        raise typer.Exit(int(ExitCode.INPUT_ERROR))


def _precision_hint(options: dict[str, Any]) -> None:
    """One line when this machine runs a faster precision than the one used (hardware.py); not for
    Ray, whose workers may run on other CPUs."""
    if options.get("engine") != "local" or options.get("transformer") is None:
        return
    from batchembed.embedders.load import choose_device
    from batchembed.hardware import precision_hint

    hint = precision_hint(options.get("precision", "fp32"), choose_device(options.get("device")).type)
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


@command(api.uses, arguments=("inputs",))
def uses(options: dict[str, Any], quiet: QuietOpt = False, verbose: VerboseOpt = False) -> None:
    """Word usage analytics: embed each use of INPUTS once, and write per word how far apart its
    uses are (APD, PRT, spread), within and between groupings, to OUTPUT/words/.

    Exit codes as for run; 6 when uses have a status (no target found, no vector, no word key).
    """
    _setup_logging(verbose, quiet)
    summary = _job(api._prepare_uses, options, quiet)
    if summary.exit_code:
        raise typer.Exit(summary.exit_code)


@command(api.compare, arguments=("sentence1", "sentence2"))
def compare(options: dict[str, Any], verbose: VerboseOpt = False) -> None:
    """Print both models' distances for the words two sentences share."""
    from batchembed.comparison import format_table

    _setup_logging(verbose, quiet=False)
    try:
        records = api.compare(**options)
    except BatchembedError as error:
        raise _fail(error) from None
    names = [options[f"{m}_name"] for m in ("glove", "transformer") if options[m] is not None]
    typer.echo(format_table(records, names))


@command(api.evaluate)
def evaluate(options: dict[str, Any], json_path: JsonOpt = None, verbose: VerboseOpt = False) -> None:
    """Score the distances against labelled data: WiC-style accuracy (--dev/--test) or Spearman (--similarity)."""
    _setup_logging(verbose, quiet=False)
    try:
        result = api.evaluate(**options)
        if json_path is not None:
            result.write_json(json_path)
    except BatchembedError as error:
        raise _fail(error) from None
    typer.echo(result.table())


@command(api.report, arguments=("output",))
def report(options: dict[str, Any], verbose: VerboseOpt = False) -> None:
    """Turn a result directory into one self-contained HTML page of plots (and the plots as PNG files)."""
    _setup_logging(verbose, quiet=False)
    try:
        page = api.report(**options)
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
