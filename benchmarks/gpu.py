"""batchembed on a GPU: end-to-end tokens/s, the model's share of the bf16 peak, OOM back-off, bf16 vs fp32.

    python benchmarks/gpu.py --pairs 20000 --repeats 3

Needs a CUDA torch and flair; no network, no packaged model: the transformer is a
random-weight BERT-base-sized BertModel (12 layers, 768 wide, 12 heads, 3072 FFN) built
from a BertConfig with a WordPiece vocabulary made from the corpus's own words (padded to
BERT's 30,522 entries), and GloVe a random 50-d text file of the same words. On one
generated corpus (benchmarks/corpus.py), interleaved and repeated, each run its own process:

  fp32, bf16   `batchembed run corpus.parquet -o OUT --transformer BERT --glove GLOVE
               --device cuda --precision P`: job seconds (_summary.json, model loading
               excluded), subword tokens/s, and the model's share of the GPU's bf16 peak:
               forward FLOPs (per sentence of n positions, 24*L*d^2*n + 4*L*d*n^2) / seconds
               / --peak-tflops (default by GPU name: H100 and H200 989 dense bf16 TFLOP/s);
  OOM back-off `--token-budget 262144` with the process's CUDA memory capped
               (torch.cuda.set_per_process_memory_fraction, --oom-limit-gib): the budget
               must halve on real CUDA out-of-memory errors and the run finish with the rows
               of the fp32 run;
  bf16 vs fp32 the distances of the two runs compared (max and median absolute difference).

`--device cpu --size tiny --pairs 200 --repeats 1` checks the script on a machine without a GPU
(add `--precisions fp32` on a CPU without native bf16, where batchembed refuses bf16).
"""

from __future__ import annotations

import argparse
import json
import os
import string
import sys
import tempfile
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import common, corpus  # noqa: E402

BF16_PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0}
SIZES = {
    "base": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072},
    "tiny": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64},
}
BERT_VOCAB_SIZE = 30522
OOM_BUDGET = 262144
DISTANCES = ("bert_euclidean", "bert_cosine")


def corpus_words(path: Path) -> list[str]:
    import pyarrow.parquet as pq

    from batchembed.tokenize import flair_tokenize

    table = pq.read_table(path, columns=["sentence1", "sentence2"]).to_pydict()
    words: dict[str, None] = {}
    for text in table["sentence1"] + table["sentence2"]:
        for token in flair_tokenize(text).tokens:
            words.setdefault(token.lower(), None)
    return list(words)


def build_models(path: Path, directory: Path, size: str) -> tuple[Path, Path]:
    """A random BERT of `size` with a WordPiece vocabulary of the corpus words, and a random GloVe file."""
    import numpy as np
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    bert, glove = directory / f"bert-{size}", directory / "glove.50d.txt"
    if (bert / "config.json").exists() and glove.exists():
        return bert, glove
    words = corpus_words(path)
    pieces = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *string.punctuation, *string.digits]
    pieces += list(string.ascii_lowercase) + [f"##{c}" for c in string.ascii_lowercase + string.digits]
    pieces = list(dict.fromkeys(pieces + words))
    pieces += [f"[unused{k}]" for k in range(max(0, BERT_VOCAB_SIZE - len(pieces)))]
    bert.mkdir(parents=True, exist_ok=True)
    (bert / "vocab.txt").write_text("\n".join(pieces) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast(vocab_file=str(bert / "vocab.txt"), do_lower_case=True, model_max_length=512)
    tokenizer.save_pretrained(bert)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(pieces), max_position_embeddings=512, **SIZES[size])
    BertModel(config).eval().save_pretrained(bert)
    rng = np.random.default_rng(0)
    lines = [" ".join([w, *(f"{v:.5f}" for v in rng.normal(size=50))]) for w in words]
    glove.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return bert, glove


def forward_flops(path: Path, bert: Path) -> float:
    """FLOPs of one full forward over every distinct sentence (multiply-add = 2)."""
    import pyarrow.parquet as pq
    from transformers import AutoConfig, AutoTokenizer

    from batchembed.tokenize import flair_tokenize

    config = AutoConfig.from_pretrained(bert)
    tokenizer = AutoTokenizer.from_pretrained(bert)
    table = pq.read_table(path, columns=["sentence1", "sentence2"]).to_pydict()
    texts = list(dict.fromkeys(table["sentence1"] + table["sentence2"]))
    encoding = tokenizer([list(flair_tokenize(t).tokens) for t in texts], is_split_into_words=True, truncation=False)
    layers, d = config.num_hidden_layers, config.hidden_size
    ffn_ratio = config.intermediate_size / d
    total = 0.0
    for ids in encoding["input_ids"]:
        n = len(ids)
        total += layers * ((8 + 4 * ffn_ratio) * d * d * n + 4 * d * n * n)
    return total


def peak_tflops(requested: float | None) -> float:
    if requested:
        return requested
    import torch

    name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else ""
    for key, value in BF16_PEAK_TFLOPS.items():
        if key in name:
            return value
    return BF16_PEAK_TFLOPS["H100"]


def run_cmd(path: Path, output: Path, options: list[str]) -> list[str]:
    """`python -m batchembed run ...`: works from a checkout without an installed console script."""
    return [sys.executable, "-m", "batchembed", "run", str(path), "-o", str(output), "--overwrite", "-q", *options]


def oom_cmd(path: Path, output: Path, options: list[str], limit_gib: float) -> list[str]:
    """batchembed run in a process whose CUDA allocations are capped at `limit_gib`."""
    launcher = (
        "import sys, torch; limit = float(sys.argv.pop(1)); "
        "total = torch.cuda.get_device_properties(0).total_memory / 2**30; "
        "torch.cuda.set_per_process_memory_fraction(min(1.0, limit / total)); "
        "sys.argv[0] = 'batchembed'; from batchembed.cli import main; main()"
    )
    args = ["run", str(path), "-o", str(output), "--overwrite", "-v", *options]
    return [sys.executable, "-c", launcher, str(limit_gib), *args]


def compare(a: Path, b: Path) -> dict[str, Any]:
    """Same rows (everything but the distances equal) and the distances' differences."""
    import numpy as np
    import pyarrow.parquet as pq

    keys = [(c, "ascending") for c in ("source_row", "token_index_1", "token_index_2")]
    ta, tb = pq.read_table(a).sort_by(keys), pq.read_table(b).sort_by(keys)
    distances = [c for c in ta.column_names if c.endswith(("_euclidean", "_cosine"))]
    same_rows = ta.drop_columns(distances).equals(tb.drop_columns(distances))
    out: dict[str, Any] = {"rows": ta.num_rows, "same_rows": same_rows}
    for column in DISTANCES:
        x = ta.column(column).to_numpy(zero_copy_only=False)
        y = tb.column(column).to_numpy(zero_copy_only=False)
        diff = np.abs(x - y)
        out[column] = (
            float(np.nanmax(diff)),
            float(np.nanmedian(diff)),
            bool(np.array_equal(np.isnan(x), np.isnan(y))),
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--size", choices=sorted(SIZES), default="base")
    parser.add_argument("--precisions", default="fp32,bf16", help="comma-separated, fp32 first (default fp32,bf16)")
    parser.add_argument("--peak-tflops", type=float, help="the GPU's dense bf16 peak; default by name (H100/H200 989)")
    parser.add_argument("--oom-limit-gib", type=float, default=3.0, help="CUDA memory cap of the OOM back-off run")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "batchembed-bench-gpu")
    args = parser.parse_args()

    work: Path = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    info = common.machine()
    common.progress("corpus and models")
    path = corpus.ensure(args.pairs, args.seed, work)
    bert, glove = build_models(path, work, args.size)
    flops = forward_flops(path, bert)
    peak = peak_tflops(args.peak_tflops)
    base = ["--transformer", str(bert), "--glove", str(glove), "--device", args.device]
    root = str(Path(__file__).resolve().parent.parent)  # the checkout's batchembed, installed or not
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}

    seconds: dict[str, list[float]] = {p: [] for p in args.precisions.split(",")}
    tokens = 0
    for repeat in range(args.repeats):
        for precision in seconds:
            common.progress(f"repeat {repeat + 1}/{args.repeats}: {precision}")
            output = work / "out" / precision
            cmd = run_cmd(path, output, [*base, "--precision", precision])
            common.check(
                common.run_child(cmd, work / "logs" / f"{precision}.log", env), f"batchembed run ({precision})"
            )
            summary = common.read_summary(output)
            seconds[precision].append(summary["seconds"])
            tokens = summary["subword_tokens"]

    oom: dict[str, Any] | None = None
    if args.device.startswith("cuda"):
        common.progress(f"OOM back-off: --token-budget {OOM_BUDGET}, CUDA memory capped at {args.oom_limit_gib} GiB")
        output = work / "out" / "oom"
        options = [*base, "--precision", "fp32", "--token-budget", str(OOM_BUDGET)]
        run = common.check(
            common.run_child(oom_cmd(path, output, options, args.oom_limit_gib), work / "logs" / "oom.log", env),
            "OOM run",
        )
        oom = {"halvings": run.log.count("token budget halved"), **compare(output, work / "out" / "fp32")}
    both = "bf16" in seconds and "fp32" in seconds
    precision_diff = compare(work / "out" / "bf16", work / "out" / "fp32") if both else None

    print(common.command_line(__file__))
    print(common.machine_markdown(info) + "\n")
    print(
        f"{args.pairs:,} pairs, {tokens:,} subword tokens, random BERT-{args.size}, forward {flops / 1e12:.2f} TFLOP "
        f"(full forward; the partial top layer does a little less), bf16 peak taken as {peak:g} TFLOP/s; "
        f"{args.repeats} interleaved repeats, medians.\n"
    )
    print("| precision | job s (median) | runs | subword tokens/s | model share of the bf16 peak |")
    print("|---|---:|---|---:|---:|")
    for precision, values in seconds.items():
        s = common.median(values)
        share = flops / s / (peak * 1e12)
        print(f"| {precision} | {s:.2f} | {', '.join(f'{v:.2f}' for v in values)} | {tokens / s:,.0f} | {share:.1%} |")
    if precision_diff is None:
        print("\nbf16 against fp32: not run (`--precisions` without both).")
    else:
        print("\nbf16 against fp32 (same rows: " + str(precision_diff["same_rows"]) + "):\n")
        print("| column | max abs diff | median abs diff | same nulls |\n|---|---:|---:|---|")
        for column in DISTANCES:
            high, mid, nulls = precision_diff[column]
            print(f"| {column} | {high:.1e} | {mid:.1e} | {nulls} |")
    if oom is None:
        print("\nOOM back-off: not run (no CUDA device).")
    else:
        verdict = "exercised" if oom["halvings"] else "NOT exercised: lower --oom-limit-gib"
        print(
            f"\nOOM back-off ({verdict}): {oom['halvings']} halvings of the token budget from {OOM_BUDGET:,} "
            f"under a {args.oom_limit_gib} GiB cap; same rows as the fp32 run: {oom['same_rows']}; "
            + "; ".join(f"{c} max abs diff {oom[c][0]:.1e}" for c in DISTANCES)
        )
    print("\n" + json.dumps({"seconds": seconds, "tokens": tokens, "flops": flops, "oom": oom}, default=str))


if __name__ == "__main__":
    main()
