"""The uses job's aggregation alone: one word's measures (APD across and within, PRT) from its vectors.

    python benchmarks/usage_aggregate.py --uses 100,1000,10000,100000 --markdown docs/bench/usage-aggregate.md

One word, two models (384 and 50 dims, the default models' sizes), two groupings of half the uses
each, euclidean and cosine: `batchembed.usage.measures.word_rows`, nothing else (no embedding, no IO).
Each size runs in its own child process: the time is the aggregation's wall time inside the child
(the median of --repeats calls, after one warm-up call for sizes up to 10,000); the memory is the
child's peak RSS from os.wait4 (interpreter, numpy, torch and the random vectors included), beside the
peak RSS the child had just before aggregating (torch imported, vectors built), so the difference is
what the aggregation added.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import common  # noqa: E402

MODELS = {"bert": 384, "glove": 50}
GROUPINGS = ["1", "2"]


def child(uses: int, repeats: int, seed: int, device: str, budget: int | None) -> None:
    """Runs in the child: build the vectors, aggregate, print one JSON line."""
    import numpy as np
    import torch  # noqa: F401  (imported before the "before" RSS, so "added" is the aggregation's own)

    from batchembed.usage.measures import word_rows
    from batchembed.usage.pairwise import DEFAULT_MEMORY_BUDGET

    rng = np.random.default_rng(seed)
    # contextual vectors share a common direction (anisotropy), as BERT's do; sizes are what matter here
    vectors = {
        name: (rng.normal(size=(uses, dims)) + rng.normal(size=dims) * 2).astype(np.float32)
        for name, dims in MODELS.items()
    }
    groups = [GROUPINGS[n % 2] for n in range(uses)]
    budget = budget or DEFAULT_MEMORY_BUDGET

    def aggregate() -> float:
        started = time.perf_counter()
        word_rows("word", vectors, groups, GROUPINGS, device=device, memory_budget=budget)
        return time.perf_counter() - started

    before_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if uses <= 10_000:
        aggregate()  # warm-up: first torch calls, page faults
    times, cpu = [], []
    for _ in range(repeats):
        started = time.process_time()
        times.append(aggregate())
        cpu.append(time.process_time() - started)
    print(json.dumps({"times": times, "cpu": cpu, "rss_before_mib": before_mib}))


def measure(args: argparse.Namespace, uses: int) -> dict[str, float]:
    repeats = args.repeats if uses <= 10_000 else 1
    cmd = [sys.executable, __file__, "--child", str(uses), "--repeats", str(repeats), "--seed", str(args.seed)]
    cmd += ["--device", args.device] + (["--memory-budget", str(args.memory_budget)] if args.memory_budget else [])
    run = common.check(
        common.run_child(cmd, args.workdir / f"usage-aggregate-{uses}.log"), f"aggregation of {uses} uses"
    )
    result = json.loads(run.log.strip().splitlines()[-1])
    return {
        "uses": uses,
        "seconds": common.median(result["times"]),
        "fastest": min(result["times"]),
        "cpu_seconds": common.median(result["cpu"]),
        "runs": len(result["times"]),
        "peak_mib": run.peak_rss_mib,
        "before_mib": result["rss_before_mib"],
        "vectors_mib": uses * sum(MODELS.values()) * 4 / 2**20,
    }


def markdown(args: argparse.Namespace, rows: list[dict[str, float]], info: dict[str, str]) -> str:
    lines = [
        f"Command: `python benchmarks/usage_aggregate.py --uses {args.uses} --repeats {args.repeats}"
        f"{' --device ' + args.device if args.device != 'cpu' else ''}`",
        "",
        common.machine_markdown(info),
        "",
        f"One word, two groupings of half the uses each, models of {' and '.join(map(str, MODELS.values()))} dims,",
        "euclidean and cosine: APD across, each side's own APD, PRT (`batchembed.usage.measures.word_rows`).",
        "Time: the aggregation's wall time in a child process (median and fastest of the runs; one warm-up",
        "call first up to 10,000 uses), and its CPU time (all threads). The machine is shared: compare the",
        "load averages below with its 2 cores, and read the fastest run as the closest to an idle machine.",
        "Memory: the child's peak RSS (os.wait4), and its peak RSS just before aggregating (interpreter,",
        "numpy, torch and the float32 vectors): the difference is what the aggregation added.",
        "",
        "| uses | pairs (cross + within) | wall s (median) | wall s (fastest) | CPU s (median) | runs "
        "| peak RSS MiB | RSS before MiB | added MiB | vectors MiB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        half = int(row["uses"]) // 2
        pairs = half * half + 2 * (half * (half - 1) // 2)
        lines.append(
            f"| {int(row['uses']):,} | {pairs:,} | {row['seconds']:.3f} | {row['fastest']:.3f} "
            f"| {row['cpu_seconds']:.3f} | {int(row['runs'])} | {row['peak_mib']:.0f} "
            f"| {row['before_mib']:.0f} | {row['peak_mib'] - row['before_mib']:.0f} | {row['vectors_mib']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def lscpu_model() -> str:
    """`lscpu`'s model name (the CPU the figures came from, as the benchmark notes record it)."""
    try:
        listing = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown (no lscpu)"
    return next((line.split(":", 1)[1].strip() for line in listing.splitlines() if line.startswith("Model name")), "?")


def load_now() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--uses", default="100,1000,10000,100000", help="comma-separated sizes, smallest first")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per size up to 10,000 uses (1 above)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="torch device of the blocked products")
    parser.add_argument("--memory-budget", type=int, default=None, help="bytes per block (default: the library's)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/batchembed-usage-aggregate"))
    parser.add_argument("--markdown", type=Path, default=None, help="write the table here too")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child, args.repeats, args.seed, args.device, args.memory_budget)
        return
    load = load_now()
    rows = []
    for uses in (int(size) for size in args.uses.split(",")):
        common.progress(f"aggregating {uses:,} uses")
        rows.append(measure(args, uses))
        common.progress(f"{uses:,} uses: {rows[-1]['seconds']:.3f} s, peak RSS {rows[-1]['peak_mib']:.0f} MiB")
    # after the children: common.machine() imports torch, and a child inherits its parent's peak RSS across
    # fork + exec (Linux's ru_maxrss), so a parent holding torch would set every child's "peak"
    info = {"lscpu model name": lscpu_model(), **common.machine(), "load average at start": load}
    info["load average at end"] = load_now()
    text = markdown(args, rows, info)
    print(text)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(text)


if __name__ == "__main__":
    main()
