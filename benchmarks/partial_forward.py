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

from benchmarks import common, corpus, workload  # noqa: E402


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
    info = common.machine()
    path = corpus.ensure(args.pairs, args.seed, args.workdir)
    embedder = TransformerEmbedder.load(TransformerSpec(), EmbedOptions(), torch.device("cpu"))
    lines = [
        "| target mode | tokens read / model positions | partial top layer s (median) | full forward s (median) "
        "| speed-up | max abs diff of vectors |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for mode in ("shared", "word"):
        sentences, s_idx, t_idx = workload.requests(path, mode)
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
        a, b = common.median(times[True]), common.median(times[False])
        lines.append(f"| {mode} | {len(s_idx):,} / {positions:,} | {a:.2f} | {b:.2f} | **{b / a:.2f}x** | {diff:.1e} |")
        print(f"{mode}: partial {times[True]}, full {times[False]}", file=sys.stderr)
    print(common.command_line(__file__))
    print(common.machine_markdown(info) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
