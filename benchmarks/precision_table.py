"""The precision table of benchmarks/throughput.py (a phase of that script, not a script of its
own): each precision end to end against plain flair, the bare fp32 forward and fp32 end to end,
quiet and beside busy processes, with the distance changes and the WiC accuracy per precision.

In one run, interleaved (A B C ... A B C), each contender its own process:
  (1) flair's `.embed` as a notebook uses it (quiet only: it is the baseline, not a contender);
  (2) the bare AutoModel forward in fp32, with weights cast to bf16, and under bf16 autocast;
  (3) `batchembed run --precision P` for fp32 and each reduced precision (job seconds from its
      summary.json: start-up and model loading excluded).
Beside N busy processes (`--precision-busy`), the same without (1): a machine shared with other work.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks import common, contenders, workload

BARE_PRECISIONS = ("fp32", "bf16", "bf16-autocast")  # bf16: weights cast to bf16, as batchembed does on a CPU
METRICS = ("bert_cosine", "bert_euclidean")


def wic_accuracy(wic: Path, precision: str, work: Path, device: list[str]) -> dict[str, float]:
    """`batchembed evaluate` tuned on WiC train, scored on WiC dev: the transformer's accuracy by metric."""
    out = work / f"wic-{precision}.json"
    cmd = [
        common.batchembed_exe(),
        "evaluate",
        "--dev",
        str(wic / "train" / "train.data.txt"),
        "--test",
        str(wic / "dev" / "dev.data.txt"),
        "--no-glove",
        "--precision",
        precision,
        "--json",
        str(out),
        *device,
    ]
    common.check(common.run_child(cmd, work / "logs" / f"wic-{precision}.log"), f"batchembed evaluate ({precision})")
    results = json.loads(out.read_text())["binary"]["results"]
    return {r["metric"]: 100 * r["test_accuracy"] for r in results}


def precision_phase(bench: contenders.Bench) -> list[str]:
    args = bench.args
    names = ["fp32", *args.precisions]
    lines: list[str] = []
    for busy in args.precision_busy:
        flair = contenders.Samples("(1) flair") if busy == 0 else None
        bare = {p: contenders.Samples(f"(2) bare forward {p}") for p in ([] if args.no_bare else BARE_PRECISIONS)}
        ours = {p: contenders.Samples(f"(3) batchembed --precision {p}") for p in names}
        runners: list[tuple[contenders.Samples, Any]] = [(flair, bench.flair)] if flair else []
        runners += [(bare[p], lambda s, p=p: bench.bare(s, workload.CPU_BUDGET, p)) for p in bare]
        runners += [(ours[p], lambda s, p=p: bench.batchembed(s, f"precision-{p}", ["--precision", p])) for p in names]
        started_load = common.load_average()
        common.progress(f"precision table beside {busy} busy process(es)")
        with common.busy(busy):
            contenders.interleave(args.precision_repeats, runners)
        base32 = common.median(bare["fp32"].job_s) if bare else float("nan")
        ours32 = common.median(ours["fp32"].job_s)
        lines += [
            f"#### Beside {busy} busy-loop process(es) (load average at start {started_load}, "
            f"at end {common.load_average()})",
            "",
            "| contender | job s (median) | tokens/s | vs (1) flair | vs (2) bare fp32 forward "
            "| vs (3) batchembed fp32 | job s per repeat |",
            "|---|---:|---:|---:|---:|---:|---|",
        ]
        every = ([flair] if flair else []) + list(bare.values()) + list(ours.values())
        for s in every:
            j = common.median(s.job_s)
            vs_flair = f"{common.median(flair.job_s) / j:.2f}x" if flair else "—"
            lines.append(
                f"| {s.label} | {j:.1f} | {contenders.rate(bench.tokens, j)} | {vs_flair} | {base32 / j:.2f}x "
                f"| {ours32 / j:.2f}x | {contenders.runs(s.job_s)} |"
            )
        lines.append("")

    outputs = {p: contenders.load_output(bench.work / "out" / f"precision-{p}") for p in names}
    wic = {p: wic_accuracy(args.wic, p, bench.work, bench.device_options()) for p in names} if args.wic else {}
    lines += [
        "#### Distances and WiC accuracy against fp32",
        "",
        "| precision | same rows and statuses | nulls identical | bert_cosine max / median abs diff "
        "| bert_euclidean max / median abs diff | WiC dev acc % (cosine / euclidean) |",
        "|---|---|---|---|---|---|",
    ]
    for p in names:
        diffs = {c: contenders.column_diff(outputs["fp32"], outputs[p], c) for c in METRICS}
        acc = f"{wic[p]['cosine']:.1f} / {wic[p]['euclidean']:.1f}" if wic else "not run (--wic)"
        lines.append(
            f"| {p} | {contenders.same_rows(outputs['fp32'], outputs[p])} | {all(d[2] for d in diffs.values())} "
            + " ".join(f"| {diffs[c][0]:.1e} / {diffs[c][1]:.1e}" for c in METRICS)
            + f" | {acc} |"
        )
    return lines
