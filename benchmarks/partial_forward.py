"""What computing the top layer only at the read positions buys (embedders/partial_forward.py).

    python benchmarks/partial_forward.py --pairs 1000 --repeats 5

In one process, on the generated corpus, for each target mode that matters
(shared words: every word the two sentences share; one word: one token per
sentence), the same TransformerEmbedder.embed_tokens call runs with the partial
top layer and with the full forward, interleaved, repeated; prints the medians,
their ratio, and the largest difference between the two paths' vectors.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import corpus  # noqa: E402
from benchmarks.common import machine, machine_markdown, median  # noqa: E402


def requests(path: Path, mode: str):  # type: ignore[no-untyped-def]
    """The pipeline's own plan for the corpus: distinct sentences and the (sentence, token) pairs read."""
    import numpy as np
    import pyarrow.parquet as pq

    from batchembed.stages.prepare import plan_rows
    from batchembed.targets import TargetMode
    from batchembed.tokenize import flair_tokenize, many

    table = pq.read_table(path).to_pydict()
    n = len(table["id"])
    if mode == "word":  # one target word per pair: the first word the two sentences share
        rows, sentences = plan_rows(_shard(table, TargetMode.SHARED, [()] * n), many(flair_tokenize))
        first_rows = np.unique(np.asarray(rows.pair_row), return_index=True)[1]
        words = [None] * n
        for k in first_rows.tolist():
            if rows.sentence_1[k] >= 0:
                words[rows.pair_row[k]] = sentences[rows.sentence_1[k]].tokens[rows.token_1[k]]
        targets = [(w or "",) for w in words]
        rows, sentences = plan_rows(_shard(table, TargetMode.WORD, targets), many(flair_tokenize))
    else:
        rows, sentences = plan_rows(_shard(table, TargetMode.SHARED, [()] * n), many(flair_tokenize))
    ok = np.asarray(rows.sentence_1) >= 0
    s = np.concatenate([np.asarray(rows.sentence_1)[ok], np.asarray(rows.sentence_2)[ok]])
    t = np.concatenate([np.asarray(rows.token_1)[ok], np.asarray(rows.token_2)[ok]])
    unique = np.unique(s * (1 << 32) + t)
    return sentences, unique >> 32, unique & ((1 << 32) - 1)


def _shard(table, mode, targets):  # type: ignore[no-untyped-def]
    from batchembed.io.reader import InputFile, InputShard

    return InputShard(
        InputFile(Path("corpus.parquet"), "parquet"),
        0,
        1,
        mode,
        table["id"],
        table["sentence1"],
        table["sentence2"],
        targets,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/batchembed-bench-partial"))
    args = parser.parse_args()

    import torch

    from batchembed.config import EmbedOptions, TransformerSpec
    from batchembed.embedders.transformer import TransformerEmbedder

    args.workdir.mkdir(parents=True, exist_ok=True)
    info = machine()
    path = corpus.ensure(args.pairs, args.seed, args.workdir)
    embedder = TransformerEmbedder.load(TransformerSpec(), EmbedOptions(), torch.device("cpu"))
    lines = [
        "| target mode | tokens read / model positions | partial top layer s (median) | full forward s (median) "
        "| speed-up | max abs diff of vectors |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for mode in ("shared", "word"):
        sentences, s_idx, t_idx = requests(path, mode)
        times: dict[bool, list[float]] = {True: [], False: []}
        vectors: dict[bool, torch.Tensor] = {}
        for _ in range(args.repeats):
            for partial in (True, False):
                embedder.partial = partial
                before = embedder.stats.subword_tokens
                started = time.perf_counter()
                vectors[partial] = embedder.embed_tokens(sentences, s_idx, t_idx).vectors
                times[partial].append(time.perf_counter() - started)
                positions = embedder.stats.subword_tokens - before
        diff = float((vectors[True] - vectors[False]).abs().max())
        a, b = median(times[True]), median(times[False])
        lines.append(f"| {mode} | {len(s_idx):,} / {positions:,} | {a:.2f} | {b:.2f} | **{b / a:.2f}x** | {diff:.1e} |")
        print(f"{mode}: partial {times[True]}, full {times[False]}", file=sys.stderr)
    print(f"Command: `python benchmarks/partial_forward.py {' '.join(sys.argv[1:])}`\n")
    print(machine_markdown(info) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
