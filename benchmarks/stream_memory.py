"""Peak RSS of `Embedder.distances` on a stream of record batches, 10x more pairs (target: the
larger within 1.25x of the smaller), GloVe only so that it is quick.

    python benchmarks/stream_memory.py --pairs 10000,100000
    python benchmarks/stream_memory.py --pairs 10000,100000 --table   # also a Table in, a Table out

Each size runs in a child process of its own (this script with --child): it loads the packaged
GloVe, reads the generated corpus (benchmarks/corpus.py) as an iterator of record batches, passes
it to `Embedder.distances` and counts the record batches that come back, holding none. Its peak
RSS comes from os.wait4 (that process and the workers it waited for) and is sampled over time.
With --table the same data goes in as one pyarrow Table and comes back as one: that path holds
the input and the result, so its memory grows with the data (for contrast).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import common, corpus  # noqa: E402

TARGET = 1.25


def peak_rss_mib() -> float:
    """This process's peak RSS since it started or since reset_peak_rss (Linux: VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak_rss() -> bool:
    """Start VmHWM over at the current RSS (Linux 4.0+: write 5 to clear_refs)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def child(args: argparse.Namespace) -> None:
    """One measured run: load GloVe, stream the corpus through distances, count what comes back."""
    import pyarrow.parquet as pq

    import batchembed

    started = time.perf_counter()
    embedder = batchembed.Embedder(transformer=None)
    loaded = time.perf_counter()
    at_load = peak_rss_mib()
    reset = reset_peak_rss()  # from here on, VmHWM is the job's own peak, not the model loading's
    source = pq.ParquetFile(args.child)
    options = {"tokenizer": args.tokenizer, "keep_columns": ["id"], "threads": args.threads}
    pairs = rows = batches = 0
    if args.mode == "stream":
        stream = source.iter_batches(batch_size=args.batch_pairs)
        for batch in embedder.distances(stream, **options):
            batches += 1
            rows += batch.num_rows
        pairs = source.metadata.num_rows
    else:
        table = embedder.distances(source.read(), **options)
        pairs, rows, batches = source.metadata.num_rows, table.num_rows, len(table.to_batches())
    done = time.perf_counter()
    result = {"pairs": pairs, "rows": rows, "batches": batches, "load_s": loaded - started, "job_s": done - loaded}
    result |= {"load_peak_mib": at_load, "job_peak_mib": peak_rss_mib() if reset else float("nan")}
    print("RESULT " + json.dumps(result))


def measure(args: argparse.Namespace, pairs: int, mode: str) -> tuple[common.ChildRun, dict[str, float]]:
    path = corpus.ensure(pairs, args.seed, args.workdir)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(path), "--mode", mode]
    cmd += ["--tokenizer", args.tokenizer, "--batch-pairs", str(args.batch_pairs)]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    log = args.workdir / "logs" / f"stream-{mode}-{pairs}.log"
    env = {**os.environ, "TMPDIR": str(args.workdir / "tmp")}
    (args.workdir / "tmp").mkdir(parents=True, exist_ok=True)
    run = common.check(
        common.run_child(cmd, log, env=env, sample_every=args.sample_every), f"distances ({mode}, {pairs} pairs)"
    )
    line = next(line for line in run.log.splitlines() if line.startswith("RESULT "))
    return run, json.loads(line.removeprefix("RESULT "))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=lambda s: sorted(int(x) for x in s.split(",")), default=[10_000, 100_000])
    parser.add_argument("--table", action="store_true", help="also measure a Table in, a Table out")
    parser.add_argument("--tokenizer", default="flair", help="flair (default) or whitespace")
    parser.add_argument("--batch-pairs", type=int, default=1000, help="pairs per record batch of the stream")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: batchembed's choice)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sample-every", type=float, default=0.5, help="seconds between RSS samples")
    parser.add_argument("--workdir", type=Path, default=None, help="corpora, logs, spooled files (default: a temp dir)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="stream", choices=("stream", "table"), help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.child:
        child(args)
        return
    args.workdir = args.workdir or Path(tempfile.mkdtemp(prefix="batchembed-stream-"))
    args.workdir.mkdir(parents=True, exist_ok=True)
    info = common.machine()
    for pairs in args.pairs:
        common.progress(f"generating/reusing a corpus of {pairs} pairs in {args.workdir}")
        corpus.ensure(pairs, args.seed, args.workdir)
    modes = ["stream", "table"] if args.table else ["stream"]
    results: dict[tuple[str, int], tuple[common.ChildRun, dict[str, float]]] = {}
    for mode in modes:
        for pairs in args.pairs:
            common.progress(f"distances, {mode}, {pairs} pairs, GloVe only")
            run, result = measure(args, pairs, mode)
            common.progress(f"  wall {run.wall_s:.0f}s, peak RSS {run.peak_rss_mib:.0f} MiB")
            results[mode, pairs] = run, result
    info["load average at end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    report(args, info, modes, results)


def report(
    args: argparse.Namespace,
    info: dict[str, str],
    modes: list[str],
    results: dict[tuple[str, int], tuple[common.ChildRun, dict[str, float]]],
) -> None:
    print(f"Command: `python benchmarks/stream_memory.py {' '.join(sys.argv[1:])}`\n")
    print("Machine:\n")
    print(common.machine_markdown(info))
    print(f"\n### Peak RSS of `Embedder.distances`, GloVe only, {args.tokenizer} tokenizer\n")
    print(
        "| input | pairs | rows out | batches out | load s | job s | peak RSS MiB (whole process) "
        "| peak RSS MiB after the model loaded | sampled RSS MiB at 25/50/75/95% |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for (mode, pairs), (run, result) in results.items():
        samples = run.rss_samples
        sampled = " / ".join(
            f"{min(samples, key=lambda s: abs(s[0] - f * run.wall_s))[1]:.0f}" if samples else "-"
            for f in (0.25, 0.5, 0.75, 0.95)
        )
        what = f"iterator of {args.batch_pairs:,}-pair record batches" if mode == "stream" else "one pyarrow Table"
        print(
            f"| {what} | {pairs:,} | {int(result['rows']):,} | {int(result['batches']):,} | {result['load_s']:.1f} "
            f"| {result['job_s']:.1f} | {run.peak_rss_mib:.0f} | {result['job_peak_mib']:.0f} | {sampled} |"
        )
    print()
    small, large = args.pairs[0], args.pairs[-1]
    for mode in modes:
        whole = results[mode, large][0].peak_rss_mib / results[mode, small][0].peak_rss_mib
        job = results[mode, large][1]["job_peak_mib"] / results[mode, small][1]["job_peak_mib"]
        for what, ratio in (("peak RSS", whole), ("peak RSS after the model loaded", job)):
            verdict = "meets" if ratio <= TARGET else "misses"
            target = f"{verdict} the <= {TARGET}x target" if mode == "stream" else "no target: it holds the data"
            print(f"- {mode}: {what} at {large:,} pairs / at {small:,} pairs = **{ratio:.2f}x** ({target})")


if __name__ == "__main__":
    main()
