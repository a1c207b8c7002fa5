"""Peak RSS of `batchembed run` on a small and a 10x larger generated corpus (target: < 15% apart).

    python benchmarks/memory.py --pairs 20000,200000 --no-transformer   # GloVe only: reading, tokenizing, writing
    python benchmarks/memory.py --pairs 2000,20000 --transformer        # both models (slow on CPU)

Each size runs `batchembed run` as a child process; its peak RSS comes from
os.wait4 (that process alone), and its RSS is also sampled over time, so growth
during the run shows even when the peak is set early (e.g. by model loading).
Sizes run smallest first, and the time of the next one is estimated from it
before it starts.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import common, corpus  # noqa: E402


def rss_at(run: common.ChildRun, fraction: float) -> float:
    """Sampled RSS at `fraction` of the child's wall time (nan if it never got sampled)."""
    if not run.rss_samples:
        return float("nan")
    moment = fraction * run.wall_s
    return min(run.rss_samples, key=lambda sample: abs(sample[0] - moment))[1]


def options(args: argparse.Namespace) -> list[str]:
    opts = [] if args.transformer else ["--no-transformer"]
    if args.device:
        opts += ["--device", args.device]
    if args.shard_rows:
        opts += ["--shard-rows", str(args.shard_rows)]
    return opts


def measure(args: argparse.Namespace, pairs: int) -> tuple[common.ChildRun, dict[str, object]]:
    path = corpus.ensure(pairs, args.seed, args.workdir)
    output = args.workdir / "out" / f"memory-{pairs}"
    log = args.workdir / "logs" / f"memory-{pairs}.log"
    run = common.run_batchembed(path, output, options(args), log, threads=args.threads, sample_every=args.sample_every)
    return run, common.read_summary(output)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--pairs",
        type=lambda s: sorted(int(x) for x in s.split(",")),
        default=[20_000, 200_000],
        help="comma-separated corpus sizes in pairs",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--transformer",
        dest="transformer",
        action="store_true",
        default=False,
        help="both models (default: GloVe only)",
    )
    mode.add_argument(
        "--no-transformer",
        dest="transformer",
        action="store_false",
        help="GloVe only: exercises reading, tokenizing and writing at scale",
    )
    parser.add_argument("--repeats", type=int, default=1, help="runs per size, interleaved (small, large, small...)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads in batchembed")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: batchembed's choice)")
    parser.add_argument("--shard-rows", type=int, default=None, help="passed to batchembed (default: its own)")
    parser.add_argument("--sample-every", type=float, default=0.5, help="seconds between RSS samples")
    parser.add_argument("--workdir", type=Path, default=None, help="corpora, outputs, logs (default: a temp dir)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    args.workdir = args.workdir or Path(tempfile.mkdtemp(prefix="batchembed-mem-"))
    args.workdir.mkdir(parents=True, exist_ok=True)
    info = common.machine()
    results: dict[int, list[tuple[common.ChildRun, dict[str, object]]]] = {pairs: [] for pairs in args.pairs}
    for pairs in args.pairs:
        common.progress(f"generating/reusing corpus of {pairs} pairs in {args.workdir}")
        corpus.ensure(pairs, args.seed, args.workdir)
    for repeat in range(args.repeats):
        for k, pairs in enumerate(args.pairs):
            if repeat == 0 and k > 0:  # time scales with pairs once the models are loaded
                prev = args.pairs[k - 1]
                prev_run, prev_summary = results[prev][0]
                job = float(prev_summary["seconds"])  # type: ignore[arg-type]
                estimate = prev_run.wall_s - job + job * pairs / prev
                common.progress(f"estimated {estimate / 60:.1f} min for {pairs} pairs (from {prev} pairs)")
            common.progress(
                f"repeat {repeat + 1}/{args.repeats}: batchembed run, {pairs} pairs, "
                f"{'GloVe + transformer' if args.transformer else 'GloVe only'}"
            )
            run, summary = measure(args, pairs)
            common.progress(f"  wall {run.wall_s:.0f}s, peak RSS {run.peak_rss_mib:.0f} MiB")
            results[pairs].append((run, summary))
    info["load average at end"] = common.load_average()
    report(args, info, results)


def report(
    args: argparse.Namespace, info: dict[str, str], results: dict[int, list[tuple[common.ChildRun, dict[str, object]]]]
) -> None:
    models = "GloVe + transformer" if args.transformer else "GloVe only (`--no-transformer`)"
    print(common.command_line(__file__))
    print("Machine:\n")
    print(common.machine_markdown(info))
    print(f"\n### Peak RSS of `batchembed run`, {models}, {args.repeats} repeat(s)\n")
    print(
        "| pairs | rows written | subword tokens | job s | wall s | peak RSS MiB (median) | peak RSS MiB per run "
        "| sampled RSS MiB at 25% / 50% / 75% / 95% of the first run |"
    )
    print("|---:|---:|---:|---:|---:|---:|---|---|")
    peaks: dict[int, float] = {}
    for pairs, runs in results.items():
        first, summary = runs[0]
        peaks[pairs] = common.median([run.peak_rss_mib for run, _ in runs])
        sampled = " / ".join(f"{rss_at(first, f):.0f}" for f in (0.25, 0.5, 0.75, 0.95))
        print(
            f"| {pairs:,} | {summary['rows_written']:,} | {summary['subword_tokens']:,} "
            f"| {common.median([float(s['seconds']) for _, s in runs]):.1f} "  # type: ignore[arg-type]
            f"| {common.median([run.wall_s for run, _ in runs]):.1f} | {peaks[pairs]:.0f} "
            f"| {', '.join(f'{run.peak_rss_mib:.0f}' for run, _ in runs)} | {sampled} |"
        )
    small, large = args.pairs[0], args.pairs[-1]
    growth = (peaks[large] - peaks[small]) / peaks[small]
    verdict = "meets" if abs(growth) < 0.15 else "misses"
    print(f"\n- median peak RSS {large:,} vs {small:,} pairs: **{growth:+.1%}** ({verdict} the < 15% target)")


if __name__ == "__main__":
    main()
