"""The uses job (`batchembed uses`): every use's target embedded once per model, then each word's
measures across its uses.

Two steps, the first of them a run of the one job (engines/job.py, stages/task.run_task, on
either engine, resumable, on object storage):

    embed       each use is one row: its sentence paired with itself and its target with
                itself (RunConfig.use_vectors), so the prepare step tokenizes the sentence once,
                the model embeds the target once, and the part holds the use's vector per
                model (io/schema.py vector_schema), or a status saying why it has none
    aggregate   the vectors read back, grouped by word (usage/aggregate.py), measured, and
                written as one Parquet file per table, each in one step

Layout of OUTPUT:

    OUTPUT/words/part-000000.parquet   one row per word and pair of groupings (usage/measures.py)
    OUTPUT/pairs/part-000000.parquet   --pair-distances: each word's sampled pairs
    OUTPUT/vectors/                    --vectors: the embedding step's output, one row per use
    OUTPUT.batchembed/                 the bookkeeping: the lock, uses.json (this run's account),
                                       and, without --vectors, the embedding step's output
                                       (vectors/), kept so that a re-run embeds only what is new

The aggregation is recomputed from the vectors on every run: it costs seconds where the
embedding costs minutes, and it always agrees with the vectors it read.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from batchembed.config import Columns
from batchembed.errors import ExitCode, InputError, OutputError, UsageError
from batchembed.io.dwug import dwug_uses, find_dwug_files, read_dwug_file
from batchembed.io.inputs import InputFile, safe_name
from batchembed.io.layout import OutputLayout
from batchembed.io.lease import hold
from batchembed.io.reader import discover
from batchembed.io.sources import header_columns, show
from batchembed.io.storage import Location, locate
from batchembed.results.summary import RunSummary
from batchembed.usage.aggregate import Aggregated, aggregate
from batchembed.version import __version__

log = logging.getLogger(__name__)

RECORD = "uses.json"  # in OUTPUT.batchembed/: what says an output is a uses output
OWN_ENTRIES = ("words", "pairs", "vectors", "vectors.batchembed")


@dataclass(frozen=True)
class UseColumns:
    """The uses input's columns: a sentence and its target in one of `run`'s target modes for one
    sentence (a character span, a token index, or a word), a word key, a grouping, an id."""

    sentence: str = "sentence"
    start: str = "start"
    end: str = "end"
    index: str = "index"
    word: str = "word"
    lemma: str = "lemma"
    grouping: str = "grouping"
    id: str = "id"

    def target_mode(self, names: set[str], where: str) -> str:
        if self.start in names and self.end in names:
            return "spans"
        if self.index in names:
            return "index"
        if self.word in names:
            return "word"
        raise InputError(
            f"{where}: no target column: give {self.start!r} and {self.end!r} (character offsets), {self.index!r} "
            f"(a token index) or {self.word!r} (a word found in the sentence) (columns: {', '.join(sorted(names))}); "
            "name them with --start-column/--end-column, --index-column or --word-column"
        )

    def pair_columns(self, mode: str, keep: tuple[str, ...]) -> Columns:
        """The one job's columns for this mode: the sentence on both sides, the target on both."""
        base = Columns(sentence1=self.sentence, sentence2=self.sentence, id=self.id, keep=keep)
        if mode == "spans":
            return Columns(
                **{**vars(base), "start1": self.start, "end1": self.end, "start2": self.start, "end2": self.end}
            )
        if mode == "index":
            return Columns(**{**vars(base), "index1": self.index, "index2": self.index})
        return Columns(**{**vars(base), "word": self.word})


@dataclass(frozen=True)
class UsesOptions:
    vectors: bool = False  # the use vectors as a user-facing output, OUTPUT/vectors/
    pair_distances: bool = False  # each word's sampled pairs, OUTPUT/pairs/
    max_pairs_per_word: int | None = 10_000
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_pairs_per_word is not None and self.max_pairs_per_word < 1:
            raise UsageError(f"--max-pairs-per-word must be positive, got {self.max_pairs_per_word}")


@dataclass(frozen=True)
class UsesLayout:
    output: Location  # OUTPUT
    vectors_in_output: bool

    @property
    def state(self) -> Location:
        return OutputLayout.of(self.output).state

    @property
    def vectors(self) -> Location:
        return (self.output if self.vectors_in_output else self.state).join("vectors")

    @property
    def words(self) -> Location:
        return self.output.join("words", "part-000000.parquet")

    @property
    def pairs(self) -> Location:
        return self.output.join("pairs", "part-000000.parquet")

    @property
    def record(self) -> Location:
        return self.state.join(RECORD)

    @property
    def dwug(self) -> Location:
        return self.state.join("dwug")


@dataclass
class UsesSummary:
    """A uses run's account: the embedding step's RunSummary, then the uses and words it measured."""

    output: str
    embedding: RunSummary
    words: int = 0
    use_counts: Counter[str] = field(default_factory=Counter)  # uses by status; "ok" were measured
    word_counts: Counter[str] = field(default_factory=Counter)  # word rows by status
    exit_code: int = 0
    outcome: str = ""

    @property
    def errors(self) -> list[str]:
        """The input files that could not be read (the others were processed)."""
        return self.embedding.errors

    def line(self) -> str:
        measured, left = self.use_counts.get("ok", 0), sum(n for s, n in self.use_counts.items() if s != "ok")
        return (
            f"{self.outcome}: {measured} uses measured ({left} with a status), {self.words} word rows "
            f"in {self.output}; embedding: {self.embedding.line()}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "uses",
            "version": __version__,
            "output": self.output,
            "exit_code": self.exit_code,
            "outcome": self.outcome,
            "words": self.words,
            "uses": dict(sorted(self.use_counts.items())),
            "word_statuses": dict(sorted(self.word_counts.items())),
            "embedding": self.embedding.to_dict(),
        }


def plan_inputs(
    inputs: Sequence[str], columns: UseColumns, layout: UsesLayout
) -> tuple[list[str], Columns, str | None, str | None]:
    """The embedding step's inputs and columns: DWUG corpora converted (dwug_inputs), every input's
    header read for its target mode (one mode for the run) and its optional lemma/grouping columns
    (used when every input has them)."""
    specs = dwug_inputs(inputs, columns, layout)
    files = discover(specs)
    modes: dict[str, list[InputFile]] = {}
    headers = {}
    for file in files:
        names = set(header_columns(file, Columns(sentence1=columns.sentence, sentence2=columns.sentence)))
        where = show(file.path)
        if columns.sentence not in names:
            raise InputError(
                f"{where}: missing column {columns.sentence!r} (columns: {', '.join(sorted(names))}); "
                "name the sentence column with --sentence-column"
            )
        modes.setdefault(columns.target_mode(names, where), []).append(file)
        headers[file.key] = names
    if len(modes) > 1:
        described = "; ".join(f"{mode}: {show(found[0].path)}" for mode, found in sorted(modes.items()))
        raise InputError(f"the inputs give their targets in different ways ({described}); run them separately")
    keep = []
    optional = [name for name in (columns.lemma, columns.grouping) if name]
    for name in optional:
        having = [f for f in files if name in headers[f.key]]
        if having and len(having) < len(files):
            lacking = next(f for f in files if name not in headers[f.key])
            raise InputError(
                f"{show(lacking.path)}: no column {name!r}, which the other inputs have; add it to every input"
            )
        if having:
            keep.append(name)
    lemma = columns.lemma if columns.lemma in keep else None
    grouping = columns.grouping if columns.grouping in keep else None
    return specs, columns.pair_columns(next(iter(modes)), tuple(keep)), lemma, grouping


def dwug_inputs(inputs: Sequence[str], columns: UseColumns, layout: UsesLayout) -> list[str]:
    """Each DWUG/DURel corpus among the inputs (a uses.csv, or a folder of data/<word>/uses.csv) as
    Parquet files of the uses columns in OUTPUT.batchembed/dwug/, rewritten only when their content
    changes, so a re-run finds them as it left them; other inputs as given."""
    specs: list[str] = []
    for spec in inputs:
        found = find_dwug_files(spec) if locate(spec).is_local else None
        if not found:
            specs.append(spec)
            continue
        layout.dwug.make_dirs()
        for path in found:
            table = dwug_uses(read_dwug_file(path)).rename_columns(
                [columns.sentence, columns.start, columns.end, columns.lemma, columns.grouping, columns.id]
            )
            sink = io.BytesIO()
            pq.write_table(table, sink, compression="zstd")
            digest = hashlib.sha1(str(Path(path).resolve()).encode("utf-8", "surrogateescape")).hexdigest()[:8]
            target = layout.dwug.join(f"{safe_name(Path(path).parent.name)}-{digest}.parquet")
            data = sink.getvalue()
            if not target.exists() or target.read_bytes() != data:
                target.write_atomic(data)
            specs.append(str(target))
    return specs


def run_uses(
    layout: UsesLayout,
    embed: Callable[[], RunSummary],
    lemma: str | None,
    grouping: str | None,
    options: UsesOptions,
    device: str | None = None,
) -> UsesSummary:
    """Hold OUTPUT, run the embedding step (`embed`, the one job into layout.vectors), then write
    the words table (and the pairs) from the vectors it left."""
    from batchembed.results.read import read_output

    _refuse_foreign(layout.output)
    layout.output.make_dirs()
    layout.state.make_dirs()
    with hold(OutputLayout.of(layout.output)):
        embedding = embed()
        summary = UsesSummary(str(layout.output), embedding)
        if embedding.exit_code not in (ExitCode.OK, ExitCode.BAD_ROWS):
            summary.exit_code = int(embedding.exit_code or ExitCode.INTERNAL_ERROR)
            summary.outcome = "stopped before measuring: " + embedding.outcome
            _write_record(layout, summary)
            return summary
        uses = read_output(str(layout.vectors))
        models = [f.name for f in uses.schema if pa.types.is_fixed_size_list(f.type)]
        result = aggregate(
            uses,
            models,
            lemma,
            grouping,
            pair_distances_wanted=options.pair_distances,
            max_pairs_per_word=options.max_pairs_per_word,
            seed=options.seed,
            device=_device(device),
        )
        _write_tables(layout, result, uses.schema.metadata, options)
        summary.words = result.words.num_rows
        summary.use_counts, summary.word_counts = result.use_counts, result.word_counts
        bad_uses = sum(n for s, n in result.use_counts.items() if s != "ok")
        summary.exit_code = int(ExitCode.BAD_ROWS if bad_uses else ExitCode.OK)
        summary.outcome = "finished with uses that have a status" if bad_uses else "finished"
        _write_record(layout, summary)
        return summary


def _device(device: str | None) -> Any:
    """Where the products run: the model's device (CUDA when present, unless --device says)."""
    from batchembed.embedders.load import choose_device

    return choose_device(device)


def _refuse_foreign(output: Location) -> None:
    """OUTPUT holds only what this job writes: never write beside, or over, a user's files."""
    if not output.is_local or not Path(output.path).is_dir():
        return
    foreign = sorted(p.name for p in Path(output.path).iterdir() if p.name not in OWN_ENTRIES)
    if foreign:
        raise OutputError(
            f"{output}: holds files that batchembed uses did not write ({', '.join(foreign[:3])}); "
            "choose another --output"
        )


def _parquet_bytes(table: pa.Table, metadata: dict[bytes, bytes] | None, extra: dict[str, Any]) -> bytes:
    merged = dict(metadata or {})
    merged[b"batchembed_uses"] = json.dumps(extra, sort_keys=True).encode()
    sink = io.BytesIO()
    pq.write_table(table.replace_schema_metadata(merged), sink, compression="zstd")
    return sink.getvalue()


def _write_tables(layout: UsesLayout, result: Aggregated, metadata: Any, options: UsesOptions) -> None:
    described = {
        "max_pairs_per_word": options.max_pairs_per_word,
        "seed": options.seed,
        "measures": "apd (all pairs, exact), prt, spread",
    }
    layout.output.join("words").make_dirs()
    layout.words.write_atomic(_parquet_bytes(result.words, metadata, described))
    if result.pairs is not None:
        layout.output.join("pairs").make_dirs()
        layout.pairs.write_atomic(_parquet_bytes(result.pairs, metadata, described))


def _write_record(layout: UsesLayout, summary: UsesSummary) -> None:
    layout.record.write_text(json.dumps(summary.to_dict(), indent=2, sort_keys=True) + "\n")


def read_uses_output(output: Location) -> pa.Table | None:
    """The words table of a uses output, or None when `output` is not one. Raises OutputError
    when its last run did not finish."""
    layout = UsesLayout(output, vectors_in_output=False)
    try:
        record = json.loads(layout.record.read_text())
    except (OSError, OutputError, ValueError, pa.ArrowException):
        return None
    if record.get("kind") != "uses":
        return None
    if record.get("exit_code") not in (ExitCode.OK, ExitCode.BAD_ROWS):
        raise OutputError(f"{output}: unfinished: its last uses run {record.get('outcome')}; run it again")
    try:
        return pq.read_table(layout.words.path, filesystem=layout.words.fs)
    except (OSError, pa.ArrowException) as exc:
        raise OutputError(f"{output}: cannot read its words table ({exc}); run the same uses job again") from exc
