"""The Ray engine's driver cost, and its throughput with 1 and 2 CPU workers.

    python benchmarks/ray_driver.py                # sizes 25k and 100k pairs, 2 repeats
    python benchmarks/ray_driver.py --sizes 25000 100000 --repeats 3

Each measurement is a fresh process that starts a local Ray cluster (`ray.init`, 2
CPUs) and runs `--engine ray` on Parquet inputs made by benchmarks/corpus.py (files
of 25,000 pairs, 5,000-row shards), with the packaged GloVe only, so the workers'
cost per pair stays small and the driver's share shows. It reports:

- the driver's CPU seconds (all its threads: planning, Ray Data's executor, the
  commits) from just before the run to its end, per 100,000 input pairs, at each
  corpus size: it must not grow with the rows read (the driver reads none);
- the wall time with `--ray-workers 1` (one actor on both cores) and
  `--ray-workers 2` (two actors, one core each), interleaved, medians.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, machine_markdown, median, progress  # noqa: E402
from corpus import generate  # noqa: E402

FILE_PAIRS = 25_000


def corpus(directory: Path, pairs: int) -> Path:
    """`pairs` pairs as Parquet files of FILE_PAIRS rows (row groups of 5,000)."""
    import pyarrow.parquet as pq

    target = directory / f"corpus-{pairs}"
    if target.is_dir():
        return target
    target.mkdir(parents=True)
    table = generate(pairs, seed=0)
    for k, start in enumerate(range(0, pairs, FILE_PAIRS)):
        pq.write_table(table.slice(start, FILE_PAIRS), target / f"part-{k:03d}.parquet", row_group_size=5_000)
    return target


def child(inputs: str, output: str, workers: int) -> None:
    """One measurement, in its own process: prints a JSON line."""
    import ray

    from batchembed.config import GloveSpec, RunConfig
    from batchembed.engines.ray import run

    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    config = RunConfig((inputs,), output, glove=GloveSpec(), transformer=None, shard_rows=5_000)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    summary = run(config, workers=workers)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    ray.shutdown()
    print(json.dumps({"driver_cpu": cpu, "wall": wall, "pairs": summary.pairs_read, "code": summary.exit_code}))


def measure(inputs: Path, workers: int, scratch: Path) -> dict[str, float]:
    output = scratch / "out"
    shutil.rmtree(output, ignore_errors=True)
    shutil.rmtree(scratch / "out.batchembed", ignore_errors=True)
    command = [sys.executable, __file__, "--child", str(inputs), str(output), str(workers)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"measurement failed ({done.returncode}):\n{done.stderr[-3000:]}")
    result: dict[str, float] = json.loads(lines[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[25_000, 100_000])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], int(args.child[2]))
        return
    work = Path(tempfile.mkdtemp(prefix="batchembed-ray-bench-"))
    try:
        inputs = {size: corpus(work, size) for size in args.sizes}
        driver: dict[int, list[float]] = {size: [] for size in args.sizes}
        walls: dict[tuple[int, int], list[float]] = {}
        for repeat in range(args.repeats):
            for size in args.sizes:
                for workers in (1, 2):  # interleaved: 1 then 2 workers, size after size
                    progress(f"repeat {repeat + 1}: {size} pairs, {workers} worker(s)")
                    result = measure(inputs[size], workers, work)
                    assert result["pairs"] == size, result
                    driver[size].append(result["driver_cpu"])
                    walls.setdefault((size, workers), []).append(result["wall"])
        print(machine_markdown(machine()))
        print(f"\nRay engine, GloVe only, shards of 5,000 rows, {args.repeats} repeats, medians\n")
        print("| input pairs | driver CPU s | per 100k pairs | wall s, 1 worker | wall s, 2 workers | 2 vs 1 |")
        print("|---:|---:|---:|---:|---:|---:|")
        for size in args.sizes:
            one, two = median(walls[(size, 1)]), median(walls[(size, 2)])
            cpu = median(driver[size])
            print(f"| {size:,} | {cpu:.2f} | {cpu / size * 100_000:.2f} | {one:.1f} | {two:.1f} | {one / two:.2f}x |")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    os._exit(0)


if __name__ == "__main__":
    main()
