"""Throughput of `batchembed run` against plain flair and the bare model forward.

    python benchmarks/throughput.py --pairs 1500 --repeats 3

On one generated corpus (benchmarks/corpus.py), in one run, interleaved
(A B C A B C ...) so that noise from other work on the machine hits every
contender alike, each in its own process (so peak RSS is its own):

  (1) flair as a notebook user batches it: Sentence(text) objects in input order,
      TransformerWordEmbeddings(<default model>).embed and WordEmbeddings (the default
      GloVe, built as batchembed builds it).embed on chunks of 32 sentences, then
      token.get_embedding() of the shared words and their distances, written to Parquet;
  (2) the bare transformers AutoModel forward on length-sorted, per-batch padded
      batches of the same subword ids (tokenized before the timed region), no pooling;
  (3) `batchembed run corpus.parquet -o OUT --overwrite -q`: wall clock of the
      process, and the job's own seconds without model loading (OUT.batchembed/summary.json).

Every contender is credited with the same work: the unpadded model positions of
all sentences ([CLS]/[SEP] included), counted once with the model's tokenizer.
Then the precision table (benchmarks/precision_table.py: each precision against flair, the
bare fp32 forward and fp32 end to end, quiet and beside busy processes, distance changes, WiC
accuracy with --wic) and a --token-budget sweep (speed, and identical rows whatever the budget).
Prints markdown for BENCHMARKS.md, with the CPU model, its flags and the load average.

    python benchmarks/throughput.py --pairs 1000 --repeats 3 --skip-main --skip-budgets \
        --precision-busy 0,1 --wic ../shared/eval/wic
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import common, contenders, corpus, precision_table, workload  # noqa: E402

FLAIR_CHUNK = 32  # sentences per flair .embed() call, flair's own default mini_batch_size


# -- corpus and token counts (parent and workers) ------------------------------------------


def token_lengths(path: Path) -> list[int]:
    """Unpadded model positions per sentence, cached beside the corpus."""
    cache = path.with_suffix(".lengths.json")
    if cache.exists():
        return list(json.loads(cache.read_text()))
    lengths = [len(ids) for ids in workload.encode(workload.sentences_in_order(path))]
    cache.write_text(json.dumps(lengths))
    return lengths


def padded_in_chunks(lengths: list[int], chunk: int) -> int:
    return sum(max(lengths[i : i + chunk]) * len(lengths[i : i + chunk]) for i in range(0, len(lengths), chunk))


def padded_sorted(lengths: list[int], budget: int) -> int:
    return sum(max(lengths[i] for i in b) * len(b) for b in workload.sorted_batches(lengths, budget))


# -- workers: each contender in its own process ---------------------------------------------


def _set_threads(threads: int | None) -> None:
    import torch

    if threads is not None:
        torch.set_num_threads(threads)


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _shared_pairs(a: Any, b: Any) -> list[tuple[int, int]]:
    """batchembed's shared-word rule: case-insensitive, punctuation skipped, every occurrence pair."""
    positions: defaultdict[str, list[int]] = defaultdict(list)
    for j, token in enumerate(b.tokens):
        if any(ch.isalnum() for ch in token.text):
            positions[token.text.casefold()].append(j)
    return [(i, j) for i, token in enumerate(a.tokens) for j in positions.get(token.text.casefold(), ())]


def worker_flair(corpus_path: Path, out: Path, device: str, chunk: int) -> dict[str, Any]:
    """Contender (1): what a user of the original notebook does, minimal but complete."""
    import flair
    import pyarrow as pa
    import pyarrow.parquet as pq
    import torch
    import torch.nn.functional as F
    from flair.data import Sentence
    from flair.embeddings import TransformerWordEmbeddings

    from batchembed.config import GloveSpec
    from batchembed.embedders.glove import load_flair_glove

    flair.device = torch.device(device)
    started = time.perf_counter()
    bert = TransformerWordEmbeddings(workload.model_path())
    glove, _ = load_flair_glove(GloveSpec())
    glove.to(flair.device)
    load_s = time.perf_counter() - started

    started = time.perf_counter()
    ids, first, second = workload.read_pairs(corpus_path)
    texts = [text for pair in zip(first, second, strict=True) for text in pair]
    rows: dict[str, list[Any]] = defaultdict(list)
    for c in range(0, len(texts), chunk):  # chunk is even: a pair never straddles two chunks
        sentences = [Sentence(text) for text in texts[c : c + chunk]]
        bert.embed(sentences)
        glove.embed(sentences)
        for p in range(0, len(sentences), 2):
            a, b = sentences[p], sentences[p + 1]
            pairs = _shared_pairs(a, b)
            if not pairs:
                continue
            pair_id = ids[(c + p) // 2]
            rows["pair_id"] += [pair_id] * len(pairs)
            rows["token_index_1"] += [i for i, _ in pairs]
            rows["token_index_2"] += [j for _, j in pairs]
            for model in (glove, bert):
                va = torch.stack([a.tokens[i].get_embedding([model.name]) for i, _ in pairs])
                vb = torch.stack([b.tokens[j].get_embedding([model.name]) for _, j in pairs])
                prefix = "glove" if model is glove else "bert"
                rows[f"{prefix}_euclidean"] += (va - vb).norm(dim=-1).tolist()
                rows[f"{prefix}_cosine"] += (1 - F.cosine_similarity(va, vb, dim=-1)).tolist()
    pq.write_table(pa.table(dict(rows)), out)
    _sync(device)
    return {"load_s": load_s, "job_s": time.perf_counter() - started, "attn": bert.model.config._attn_implementation}


def worker_bare(corpus_path: Path, device: str, budget: int, precision: str = "fp32") -> dict[str, Any]:
    """Contender (2): AutoModel forward only, length-sorted batches, padded per batch; precision
    fp32, bf16 (weights cast to bf16, as batchembed does on a CPU) or bf16-autocast."""
    import contextlib

    import torch
    from transformers import AutoModel

    started = time.perf_counter()
    model = AutoModel.from_pretrained(workload.model_path()).eval().to(device)
    if precision == "bf16":
        model.to(torch.bfloat16)
    autocast = (
        torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
        if precision == "bf16-autocast"
        else contextlib.nullcontext()
    )
    load_s = time.perf_counter() - started

    started = time.perf_counter()
    input_ids = workload.encode(workload.sentences_in_order(corpus_path))
    batches = workload.sorted_batches([len(x) for x in input_ids], budget)
    tokenize_s = time.perf_counter() - started

    started = time.perf_counter()
    with torch.inference_mode(), autocast:
        for batch in batches:
            width = max(len(input_ids[i]) for i in batch)
            ids = torch.zeros(len(batch), width, dtype=torch.long)
            mask = torch.zeros(len(batch), width, dtype=torch.long)
            for row, i in enumerate(batch):
                ids[row, : len(input_ids[i])] = torch.tensor(input_ids[i])
                mask[row, : len(input_ids[i])] = 1
            _ = model(input_ids=ids.to(device), attention_mask=mask.to(device)).last_hidden_state
    _sync(device)
    return {
        "load_s": load_s,
        "tokenize_s": tokenize_s,
        "job_s": time.perf_counter() - started,
        "tokens": sum(len(x) for x in input_ids),
        "attn": model.config._attn_implementation,
    }


def worker_main(args: argparse.Namespace) -> None:
    _set_threads(args.threads)
    if args.worker == "flair":
        result = worker_flair(args.corpus, args.flair_out, args.device, args.chunk)
    else:
        result = worker_bare(args.corpus, args.device, args.bare_budget, args.bare_precision)
    import torch

    result["threads"] = torch.get_num_threads()
    args.result.write_text(json.dumps(result))


# -- the parent: schedules, measures, reports --------------------------------------------------


def flair_vs_batchembed(flair_out: Path, batchembed_out: Path) -> dict[str, float]:
    """Max |difference| of each distance between contender (1) and (3), joined on the compared pair."""
    import numpy as np

    ours = contenders.load_output(batchembed_out)
    theirs = contenders.load_output(flair_out).to_pydict()
    key = list(
        zip(
            ours.column("pair_id").to_pylist(),
            ours.column("token_index_1").to_pylist(),
            ours.column("token_index_2").to_pylist(),
            strict=True,
        )
    )
    where = {k: i for i, k in enumerate(key)}
    keys = zip(theirs["pair_id"], theirs["token_index_1"], theirs["token_index_2"], strict=True)
    rows = [where.get(k, -1) for k in keys]
    result: dict[str, float] = {"flair rows": len(rows), "not in batchembed": rows.count(-1)}
    found = np.array([r for r in rows if r >= 0])
    mask = np.array([r >= 0 for r in rows])
    for column in contenders.OUTPUT_COLUMNS:
        x = ours.column(column).to_numpy(zero_copy_only=False)[found].astype(np.float64)
        y = np.asarray(theirs[column], dtype=np.float64)[mask]
        both = np.isfinite(x) & np.isfinite(y)  # GloVe OOV: batchembed null, flair a zero vector
        result[column] = float(np.abs(x[both] - y[both]).max()) if both.any() else 0.0
    return result


# -- phases -----------------------------------------------------------------------------------------


TABLE_HEAD = [
    "| contender | job s (median) | tokens/s (job, median) | tokens/s (job, best run) | wall s incl. start + load "
    "| tokens/s (wall) | process CPU s | peak RSS MiB | job s per repeat |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---|",
]


def table_row(label: str, samples: contenders.Samples, tokens: int) -> str:
    job, wall, cpu = common.median(samples.job_s), common.median(samples.wall_s), common.median(samples.cpu_s)
    rate = contenders.rate
    return (
        f"| {label} | {job:.1f} | {rate(tokens, job)} "
        f"| {rate(tokens, min(samples.job_s))} | {wall:.1f} | {rate(tokens, wall)} | {cpu:.0f} "
        f"| {max(samples.rss_mib):.0f} | {contenders.runs(samples.job_s)} |"
    )


def main_phase(bench: contenders.Bench, lengths: list[int]) -> list[str]:
    args = bench.args
    flair_s, ours_s = contenders.Samples("(1) flair"), contenders.Samples("(3) batchembed run")
    bare = [contenders.Samples(f"(2) bare forward, budget {b}") for b in args.bare_budgets]
    contenders.interleave(
        args.repeats,
        [
            (flair_s, bench.flair),
            *[(s, lambda s, b=b: bench.bare(s, b)) for s, b in zip(bare, args.bare_budgets, strict=True)],
            (ours_s, lambda s: bench.batchembed(s, "batchembed", [])),
        ],
    )
    tokens = bench.tokens
    j1, j3 = common.median(flair_s.job_s), common.median(ours_s.job_s)
    fastest = min(bare, key=lambda s: common.median(s.job_s))
    lines = [
        f"Corpus: {args.pairs:,} pairs = {len(lengths):,} sentences, {tokens:,} subword tokens "
        f"(mean {tokens / len(lengths):.1f} per sentence, [CLS]/[SEP] included); "
        f"device {args.device}, torch threads {flair_s.extra['threads'][0]}, {args.repeats} interleaved repeats.",
        "",
        *TABLE_HEAD,
        table_row(
            f"(1) flair: TransformerWordEmbeddings + WordEmbeddings .embed, chunks of {args.chunk}", flair_s, tokens
        ),
        *[
            table_row(f"(2) bare AutoModel forward, length-sorted, budget {b}", s, tokens)
            for s, b in zip(bare, args.bare_budgets, strict=True)
        ],
        table_row("(3) `batchembed run` (job = summary.json seconds)", ours_s, tokens),
        "",
        f"- ratio 3/1 (job, medians): **{j1 / j3:.2f}x** (target >= 1.8x); best run vs best run "
        f"{min(flair_s.job_s) / min(ours_s.job_s):.2f}x; wall clock incl. start and loading "
        f"{common.median(flair_s.wall_s) / common.median(ours_s.wall_s):.2f}x",
    ]
    for s, b in zip(bare, args.bare_budgets, strict=True):
        lines.append(
            f"- ratio 3/2 vs bare budget {b} (job vs forward only, medians): **{common.median(s.job_s) / j3:.2f}x**"
            f"{' (the fastest bare forward; target >= 0.9x)' if s is fastest else ''}; best vs best "
            f"{min(s.job_s) / min(ours_s.job_s):.2f}x"
        )
    lines += [
        f"- (2) tokenization before its timed region: {common.median(bare[0].extra['tokenize_s']):.1f}s "
        "(flair word split + fast tokenizer); model load: "
        f"flair {common.median(flair_s.extra['load_s']):.1f}s, bare {common.median(bare[0].extra['load_s']):.1f}s",
        f"- padded positions / real positions: flair chunks of {args.chunk} in input order "
        f"{padded_in_chunks(lengths, args.chunk) / tokens:.2f}; length-sorted "
        + ", ".join(f"budget {b} {padded_sorted(lengths, b) / tokens:.2f}" for b in args.bare_budgets),
        f"- attention implementation: flair's model {flair_s.extra['attn'][0]}, bare {bare[0].extra['attn'][0]}",
    ]
    diffs = flair_vs_batchembed(bench.work / "flair.parquet", bench.work / "out" / "batchembed")
    lines.append(
        f"- same answers: (1) wrote {diffs['flair rows']:,} compared pairs, {diffs['not in batchembed']} missing "
        "from (3); max |(1) - (3)|: " + ", ".join(f"{c} {diffs[c]:.1e}" for c in contenders.OUTPUT_COLUMNS)
    )
    return lines


def budget_phase(bench: contenders.Bench) -> list[str]:
    budgets = bench.args.budgets
    samples = [contenders.Samples(f"batchembed --token-budget {b}") for b in budgets]
    contenders.interleave(
        bench.args.budget_repeats,
        [
            (s, lambda s, b=b: bench.batchembed(s, f"budget-{b}", ["--token-budget", str(b)]))
            for s, b in zip(samples, budgets, strict=True)
        ],
    )
    reference = contenders.load_output(bench.work / "out" / f"budget-{budgets[0]}")
    lengths = token_lengths(bench.corpus)
    lines = [
        f"| --token-budget | job s (median) | tokens/s (job) | job s per repeat | padded/real positions "
        f"| peak RSS MiB | same rows as budget {budgets[0]} | max abs diff bert_cosine | max abs diff bert_euclidean "
        "| all distances within 1e-5 x max(1, \\|d\\|) |",
        "|---:|---:|---:|---|---:|---:|---|---:|---:|---|",
    ]
    for budget, s in zip(budgets, samples, strict=True):
        out = contenders.load_output(bench.work / "out" / f"budget-{budget}")
        diffs = {c: contenders.column_diff(reference, out, c) for c in contenders.OUTPUT_COLUMNS}
        close = all(contenders.within(reference, out, c, 1e-5) and diffs[c][2] for c in contenders.OUTPUT_COLUMNS)
        j = common.median(s.job_s)
        lines.append(
            f"| {budget} | {j:.1f} | {contenders.rate(bench.tokens, j)} | {contenders.runs(s.job_s)} "
            f"| {padded_sorted(lengths, budget) / bench.tokens:.2f} | {max(s.rss_mib):.0f} "
            f"| {contenders.same_rows(reference, out)} | {diffs['bert_cosine'][0]:.1e} "
            f"| {diffs['bert_euclidean'][0]:.1e} "
            f"| {close} |"
        )
    return lines


def int_list(text: str) -> list[int]:
    return [int(x) for x in text.split(",")]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1000, help="sentence pairs in the generated corpus")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats of the three contenders")
    parser.add_argument("--seed", type=int, default=0, help="corpus seed")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads in every contender")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: CUDA when present, else CPU)")
    parser.add_argument("--chunk", type=int, default=FLAIR_CHUNK, help="sentences per flair embed() call (even)")
    parser.add_argument(
        "--bare-budgets",
        type=int_list,
        default=[workload.CPU_BUDGET, 1024],
        help="padded positions per bare-forward batch; one contender (2) per value",
    )
    parser.add_argument("--bare-budget", type=int, default=workload.CPU_BUDGET, help=argparse.SUPPRESS)  # worker's
    parser.add_argument("--bare-precision", default="fp32", help=argparse.SUPPRESS)  # worker's
    parser.add_argument(
        "--budgets", type=int_list, default=[512, 2048, 8192], help="comma-separated --token-budget values to sweep"
    )
    parser.add_argument(
        "--precisions",
        type=lambda t: t.split(","),
        default=None,
        help="reduced precisions to compare with fp32, e.g. bf16,fp16 on a GPU (default: bf16 where it runs natively)",
    )
    parser.add_argument(
        "--precision-busy",
        type=int_list,
        default=[0, 1],
        help="the precision table beside this many busy-loop processes, one table per value",
    )
    parser.add_argument("--wic", type=Path, default=None, help="WiC directory (train/, dev/): accuracy per precision")
    parser.add_argument("--skip-main", action="store_true", help="only the precision and budget tables")
    parser.add_argument("--no-bare", action="store_true", help="the precision table without the bare forwards (2)")
    parser.add_argument("--precision-repeats", type=int, default=None, help="default: --repeats")
    parser.add_argument("--budget-repeats", type=int, default=None, help="default: --repeats")
    parser.add_argument("--skip-precision", action="store_true")
    parser.add_argument("--skip-budgets", action="store_true")
    parser.add_argument("--workdir", type=Path, default=None, help="corpus, outputs and logs (default: a temp dir)")
    # internal: one contender in a child process
    parser.add_argument("--worker", choices=["flair", "bare"], help=argparse.SUPPRESS)
    parser.add_argument("--corpus", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--flair-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.chunk % 2:
        parser.error("--chunk must be even, so a sentence pair never straddles two embed() calls")
    return args


def main() -> None:
    args = parse_args()
    if args.worker:
        worker_main(args)
        return
    import torch

    args.device_auto = args.device is None  # then batchembed chooses, as a user would see it
    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    args.precision_repeats = args.precision_repeats or args.repeats
    if args.precisions is None:
        from batchembed.hardware import cpu_features

        native = torch.cuda.is_bf16_supported() if args.device.startswith("cuda") else cpu_features().bf16
        args.precisions = ["bf16"] if native else []
    args.budget_repeats = args.budget_repeats or args.repeats
    args.workdir = args.workdir or Path(tempfile.mkdtemp(prefix="batchembed-bench-"))
    args.workdir.mkdir(parents=True, exist_ok=True)
    info = common.machine()
    corpus_path = corpus.ensure(args.pairs, args.seed, args.workdir)
    lengths = token_lengths(corpus_path)
    bench = contenders.Bench(args, corpus_path, sum(lengths), Path(__file__).resolve())
    common.progress(
        f"corpus {corpus_path}: {len(lengths)} sentences, {bench.tokens} subword tokens; work dir {args.workdir}"
    )

    sections = [] if args.skip_main else [("Throughput", main_phase(bench, lengths))]
    if not args.skip_precision:
        sections.append(("Precision (`--precision`)", precision_table.precision_phase(bench)))
    if not args.skip_budgets:
        sections.append(("`--token-budget` sweep", budget_phase(bench)))
    info["load average at end"] = common.load_average()

    print(common.command_line(__file__))
    print("Machine:\n")
    print(common.machine_markdown(info))
    for title, lines in sections:
        print(f"\n### {title}\n")
        print("\n".join(lines))


if __name__ == "__main__":
    main()
