"""The transformer forward alone, per precision and backend, on identical batches: what decides
how `--precision bf16` runs on a CPU, and whether int8 or OpenVINO would be worth offering.

    python benchmarks/precision_forward.py --pairs 500 --repeats 3 [--busy 1]

In one process, interleaved (A B C ... A B C), medians:
  embedder  TransformerEmbedder.embed_prepared on the same prepared arrays (length-sorted
            batches, top layer only at the read positions, pooling): fp32; bf16 autocast; bf16
            weights (what --precision bf16 runs on a CPU); bf16 weights with the full forward;
            int8 (dynamic, per-channel weights, torch.ao);
  padded    the model on the same padded batches, full forward: torch fp32, torch bf16 weights,
            and OpenVINO bf16 / f32 when `openvino` is importable.
Prints, per contender, the speed against fp32 and how far the word vectors moved (1 - cosine
against fp32, max and median; |v - v32| / |v32| max).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import common, corpus, workload  # noqa: E402


def embedder_contenders() -> tuple[dict[str, Any], Any]:
    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    from batchembed.config import EmbedOptions, TransformerSpec
    from batchembed.embedders.precision import Compute
    from batchembed.embedders.transformer import TransformerEmbedder

    cpu, spec = torch.device("cpu"), TransformerSpec()
    fp32 = TransformerEmbedder.load(spec, EmbedOptions(), cpu)
    autocast = TransformerEmbedder.load(spec, EmbedOptions(), cpu)
    autocast.compute = Compute("bf16", "float32", "bfloat16")  # what --precision bf16 ran before
    weights = TransformerEmbedder.load(spec, EmbedOptions(precision="bf16"), cpu)
    full = TransformerEmbedder.load(spec, EmbedOptions(precision="bf16"), cpu)
    full.partial = False
    int8 = TransformerEmbedder.load(spec, EmbedOptions(), cpu)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's quantized tensors are deprecated
        int8.model = quantize_dynamic(int8.model, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8)
    named = {
        "embedder fp32": fp32,
        "embedder bf16 autocast": autocast,
        "embedder bf16 weights": weights,
        "embedder bf16 weights, full forward": full,
        "embedder int8 dynamic per-channel": int8,
    }
    return named, fp32


def padded_batches(path: Path) -> list[tuple[Any, Any]]:
    import numpy as np

    ids = workload.encode(workload.sentences_in_order(path))
    batches = []
    for batch in workload.sorted_batches([len(x) for x in ids], workload.CPU_BUDGET):
        width = max(len(ids[i]) for i in batch)
        tokens, mask = np.zeros((len(batch), width), np.int64), np.zeros((len(batch), width), np.int64)
        for row, i in enumerate(batch):
            tokens[row, : len(ids[i])], mask[row, : len(ids[i])] = ids[i], 1
        batches.append((tokens, mask))
    return batches


def padded_contenders(batches: list[tuple[Any, Any]], threads: int) -> dict[str, Callable[[], Any]]:
    import numpy as np
    import torch
    from transformers import AutoModel

    def run_torch(model: Any) -> Callable[[], Any]:
        def go() -> Any:
            with torch.inference_mode():
                return [
                    model(torch.from_numpy(a), attention_mask=torch.from_numpy(m)).last_hidden_state.float()[m == 1]
                    for a, m in batches
                ]

        return go

    fp32 = AutoModel.from_pretrained(workload.model_path()).eval()
    contenders = {
        "padded torch fp32": run_torch(fp32),
        "padded torch bf16 weights": run_torch(
            AutoModel.from_pretrained(workload.model_path()).eval().to(torch.bfloat16)
        ),
    }
    try:
        import openvino as ov
    except ImportError:
        print("openvino not importable: its contenders skipped", file=sys.stderr)
        return contenders
    example = {"input_ids": torch.from_numpy(batches[0][0]), "attention_mask": torch.from_numpy(batches[0][1])}
    converted = ov.convert_model(fp32, example_input=example)
    core = ov.Core()
    for hint in ("bf16", "f32"):
        compiled = core.compile_model(
            converted,
            "CPU",
            {"INFERENCE_PRECISION_HINT": hint, "INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"},
        )

        def go(compiled: Any = compiled) -> Any:
            request = compiled.create_infer_request()
            out = []
            for a, m in batches:
                hidden = request.infer({"input_ids": a, "attention_mask": m})[compiled.outputs[0]]
                out.append(torch.from_numpy(np.array(hidden))[torch.from_numpy(m) == 1])
            return out

        contenders[f"padded OpenVINO {ov.__version__.split('-')[0]} {hint}"] = go
    return contenders


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--busy", type=int, default=0, help="busy-loop processes beside the measurement")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/batchembed-bench-precision"))
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    args.workdir.mkdir(parents=True, exist_ok=True)
    info = common.machine()
    path = corpus.ensure(args.pairs, args.seed, args.workdir)
    sentences, s_idx, t_idx = workload.requests(path, "shared")
    embedders, reference = embedder_contenders()
    arrays = reference.preparer().prepare(sentences, s_idx, t_idx)
    batches = padded_batches(path)
    runs: dict[str, Callable[[], Any]] = {
        name: (lambda e=e: e.embed_prepared(arrays).vectors) for name, e in embedders.items()
    }
    runs.update(padded_contenders(batches, args.threads))
    for go in runs.values():  # warm-up: first-call allocations, OpenVINO's shape compilation
        go()
    times: dict[str, list[float]] = {name: [] for name in runs}
    outputs: dict[str, Any] = {}
    load_start = common.load_average()
    with common.busy(args.busy):
        for _ in range(args.repeats):
            for name, go in runs.items():
                started = time.perf_counter()
                outputs[name] = go()
                times[name].append(time.perf_counter() - started)
    load_end = common.load_average()

    print(common.command_line(__file__))
    print(common.machine_markdown(info) + "\n")
    print(
        f"{len(s_idx):,} word vectors read from {len(sentences):,} sentences; {args.threads} torch threads; "
        f"{args.busy} busy-loop process(es); load average {load_start} at start, {load_end} at end.\n"
    )
    print(
        "| contender | s (median) | speed vs fp32 of its kind | 1 - cos vs fp32, max / median "
        "| max \\|dv\\|/\\|v\\| | runs |"
    )
    print("|---|---:|---:|---:|---:|---|")
    for name in runs:
        kind = "embedder fp32" if name.startswith("embedder") else "padded torch fp32"
        a, b = flat(outputs[name]), flat(outputs[kind])
        cos = 1 - torch.nn.functional.cosine_similarity(a, b, dim=-1)
        moved = float(((a - b).norm(dim=-1) / b.norm(dim=-1)).max())
        runs_text = ", ".join(f"{t:.2f}" for t in times[name])
        mine, theirs = common.median(times[name]), common.median(times[kind])
        print(
            f"| {name} | {mine:.2f} | {theirs / mine:.2f}x "
            f"| {float(cos.max()):.1e} / {float(cos.median()):.1e} | {moved:.2f} | {runs_text} |"
        )


def flat(output: Any) -> Any:
    import torch

    return torch.cat(output) if isinstance(output, list) else output


if __name__ == "__main__":
    main()
