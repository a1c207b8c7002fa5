"""Every option of the API and the command line, described once.

The API's functions (batchembed/api.py) own each option's name, type and default, in their
signatures; this table owns what the command line adds: the help text and any flag beyond
`--name-with-dashes`. The CLI builds its commands from both (cli.py), so an option added to an
API function and described here is on the command line too, with the same default; a test holds
every parameter of the API's functions to having an entry here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Option:
    help: str
    short: str | None = None  # e.g. "-o"
    off_flag: str | None = None  # a boolean's second flag, e.g. "--layer-concat" for --layer-mean
    none_flag: str | None = None  # a flag that sets the value to None, e.g. "--no-glove"
    none_help: str = ""
    switch: bool = False  # a boolean that is off unless its flag is given
    metavar: str | None = None
    cli_type: Any = None  # the command line's type where the API's is richer (paths, sequences)
    command_help: dict[str, str] = field(default_factory=dict)  # the help under one command, by its name

    def help_for(self, command: str) -> str:
        return self.command_help.get(command, self.help)


def flag(name: str) -> str:
    """The command-line flag of an API parameter: `shard_rows` -> `--shard-rows`."""
    return "--" + name.replace("_", "-")


_MODEL = "the packaged default"
OPTIONS: dict[str, Option] = {
    # -- what the job reads and writes
    "inputs": Option("CSV/TSV/Parquet files, directories or globs.", cli_type=list[str]),
    "output": Option(
        "Output directory of Parquet parts: a local path or a URI (s3://, gs://, ...).", short="-o", cli_type=str
    ),
    "sentence1_column": Option("Column of the first sentence."),
    "sentence2_column": Option("Column of the second sentence."),
    "id_column": Option("Column of the pair id (optional in the input)."),
    "span_columns": Option("Character-span columns start1,end1,start2,end2."),
    "index_columns": Option("Token-index columns index1,index2."),
    "word_columns": Option("Target-word columns word1,word2."),
    "word_column": Option("Column of one target word found in both sentences."),
    "keep_columns": Option(
        "Input columns copied into every output row of their pair, e.g. label,sentence1 (comma-separated)."
    ),
    # -- uses: one row per use of a word
    "sentence_column": Option("Column of the sentence that holds the use."),
    "start_column": Option("Column of the target's first character offset (with --end-column)."),
    "end_column": Option("Column of the target's end offset, exclusive."),
    "index_column": Option("Column of the target's token index (0-based), where there are no offsets."),
    "lemma_column": Option("Column of the word key (default: the target's surface form, lowercased)."),
    "grouping_column": Option("Column of the use's grouping: a period, corpus or source (optional)."),
    "vectors": Option("Also write the use vectors to OUTPUT/vectors/ (one fixed-size list per model).", switch=True),
    "pair_distances": Option("Also write each word's use pairs and their distances to OUTPUT/pairs/.", switch=True),
    "max_pairs_per_word": Option("At most this many pairs per word and pair of groupings, sampled with --seed."),
    "seed": Option("Seed of the pair sampling: the same seed, the same pairs on any machine."),
    "tokenizer": Option(
        "flair (flair's default tokenizer) or whitespace (pre-tokenized text).",
        command_help={
            "evaluate": "flair (flair's default tokenizer) or whitespace (pre-tokenized text), for the "
            "--similarity files (WiC and SuperGLUE files imply their own)."
        },
    ),
    "skip_stopwords": Option(
        "Shared-word mode: leave function words (the, and, of, ...) out of the compared words. Off by default, "
        "so every shared word has its row.",
        switch=True,
    ),
    "stopwords": Option("With --skip-stopwords: english (a built-in list) or a text file of one word per line."),
    # -- the models
    "glove": Option(
        f"GloVe: {_MODEL}, a GloVe .txt file, a directory with .npy + vocabulary, or a flair name.",
        none_flag="--no-glove",
        none_help="Skip the GloVe model.",
    ),
    "glove_name": Option("Column prefix for the GloVe distances."),
    "transformer": Option(
        f"Transformer: {_MODEL}, a Hugging Face model id, or a local directory.",
        none_flag="--no-transformer",
        none_help="Skip the transformer model.",
    ),
    "transformer_name": Option("Column prefix for the transformer distances."),
    "layers": Option("Transformer layers, flair style: '-1', '-1,-2,-3,-4' or 'all'."),
    "layer_mean": Option("Average the chosen layers (flair's default) or concatenate them.", off_flag="--layer-concat"),
    "subtoken_pooling": Option("How subwords make a word vector: first, last, first_last or mean."),
    # -- where and how fast
    "device": Option("cpu, cuda or cuda:N. Default: CUDA when present, else CPU."),
    "token_budget": Option("Padded subword positions per batch. Default: automatic."),
    "precision": Option(
        "fp32 (default); bf16 (bf16 weights on a CPU with AVX-512 bf16 or AMX, autocast on a GPU: faster, "
        "cosine distances within ~6e-3 of fp32); fp16 (autocast, for GPUs)."
    ),
    "tokenize_workers": Option(
        "Processes that prepare pieces (tokenize, encode, targets) and write parts around the model. "
        "Default: one per 8 cores on CPU (none below 8), the spare cores on GPU; 0 does it all in this process."
    ),
    "threads": Option("torch threads of the model. Default: the cores no other process is busy on (CPU), 1 (GPU)."),
    # -- the job
    "shard_rows": Option("Input rows per output part."),
    "max_bad_rows": Option("Stop with exit code 7 once more rows than this are bad."),
    "stall_seconds": Option(
        "Stop with exit code 8 when a stage finishes nothing for this many seconds while work waits on it "
        "(a hung process). Default: BATCHEMBED_STALL_SECONDS if set, else 20 times the stage's slowest "
        "piece so far, at least 300.",
        metavar="SECONDS",
    ),
    "overwrite": Option("Replace results already in the output directory.", switch=True),
    "incremental": Option(
        "Add new input files and rows appended to known ones to an existing output; redo files that changed.",
        switch=True,
    ),
    "engine": Option("local (this process) or ray (Ray actors; pip install batchembed-pairs[ray])."),
    "ray_address": Option("Ray cluster to join (default: RAY_ADDRESS, else a local one)."),
    "ray_workers": Option("Ray model actors: only the model runs there (default: one per GPU, else 1)."),
    "ray_prepare_cpus": Option(
        "Ray prepare actors, one CPU each: read, tokenize, write (default: the CPUs the model actors leave)."
    ),
    # -- distances (the API only: data in memory)
    "pairs": Option("A DataFrame, pyarrow Table, list of pairs, or an iterator of record batches."),
    # -- compare
    "sentence1": Option("The first sentence."),
    "sentence2": Option("The second sentence."),
    "word": Option("Compare only this word (default: every shared word)."),
    # -- evaluate
    "dev": Option("Split that tunes the threshold: WiC NAME.data.txt or SuperGLUE .jsonl.", cli_type=Path | None),
    "test": Option("Split scored with the tuned threshold (same layouts).", cli_type=Path | None),
    "dev_gold": Option("Gold T/F file of --dev. Default: NAME.gold.txt.", cli_type=Path | None),
    "test_gold": Option("Gold T/F file of --test. Default: NAME.gold.txt.", cli_type=Path | None),
    "similarity": Option(
        "Graded-similarity CSV/Parquet: run's input columns plus a score column.",
        metavar="PATH",
        cli_type=list[str] | None,
    ),
    "uses": Option(
        "Word uses with two groupings (a DWUG corpus, or the uses job's input) to score --change on.",
        metavar="PATH",
        cli_type=list[str] | None,
    ),
    "change": Option(
        "Graded change per word: DWUG's stats_groupings.csv, or a CSV/TSV with a word and a score column.",
        cli_type=Path | None,
    ),
    "score_column": Option("Gold score column of the --similarity files."),
    # -- report
    "keep_stopwords": Option(
        "Keep pairs of function words (the, and, of, ...) in the per-word plots, which leave them out by default.",
        switch=True,
    ),
    "out": Option("Folder for report.html and the PNG plots. Default: OUTPUT.batchembed/report.", cli_type=Path | None),
}
