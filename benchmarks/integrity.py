"""What it costs a run to vouch for what it resumes: hashing the inputs, verifying the parts.

    python benchmarks/integrity.py                 # 100,000 pairs, GloVe only
    python benchmarks/integrity.py --pairs 20000 --transformer

A run hashes every local input (SHA-256; the content decides whether it changed) and, before
it trusts a done marker, reads the marked part and checks its size and SHA-256. This runs
`batchembed run` once on a corpus from benchmarks/corpus.py (CSV), then times, in this process
and repeated (medians), the two checks a resume makes, and sets them against the run's own
seconds, which is what a resume of a killed run would otherwise redo.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import common, corpus  # noqa: E402


def timed(fn, repeats: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return common.median(times)


def main() -> None:
    import pyarrow.csv as pacsv

    from batchembed.io.layout import OutputLayout
    from batchembed.io.manifest import inspect
    from batchembed.io.markers import load_markers
    from batchembed.io.reader import InputFile
    from batchembed.io.storage import locate

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=100_000)
    parser.add_argument("--transformer", action="store_true", help="also the packaged transformer (slow on CPU)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="batchembed-integrity-"))
    try:
        pairs = work / "corpus.csv"
        pacsv.write_csv(corpus.generate(args.pairs, seed=0), pairs)
        output = work / "out"
        options = [] if args.transformer else ["--no-transformer"]
        common.progress(f"batchembed run on {args.pairs} pairs")
        common.run_batchembed(pairs, output, options, work / "run.log")
        job_seconds = float(common.read_summary(output)["seconds"])
        layout = OutputLayout.of(locate(output))
        file = InputFile(locate(pairs), "csv")
        hashing = timed(lambda: inspect(file, None), args.repeats)
        listing = timed(lambda: load_markers(layout, verify=False), args.repeats)
        verifying = timed(lambda: load_markers(layout, verify=True), args.repeats)
        parts = sum(p.stat().st_size for p in output.glob("part-*.parquet"))
        print(common.machine_markdown(common.machine()))
        print(
            f"\n{args.pairs:,} pairs, {'GloVe + transformer' if args.transformer else 'GloVe only'}, "
            f"{pairs.stat().st_size / 1e6:.1f} MB of CSV, {len(list(output.glob('part-*')))} parts of "
            f"{parts / 1e6:.1f} MB; medians of {args.repeats}\n"
        )
        print("| check | seconds | share of the run's own seconds |")
        print("|---|---:|---:|")
        print(f"| the run itself (summary.json seconds) | {job_seconds:.2f} | 100% |")
        print(f"| hash the input (SHA-256, every run) | {hashing:.3f} | {hashing / job_seconds:.2%} |")
        print(f"| load markers, size check only | {listing:.3f} | {listing / job_seconds:.2%} |")
        print(f"| load markers, parts read and hashed | {verifying:.3f} | {verifying / job_seconds:.2%} |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
