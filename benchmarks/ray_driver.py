"""The Ray engine's driver cost per 100,000 pairs.

    python benchmarks/ray_driver.py                # sizes 25k and 100k pairs, 2 repeats
    python benchmarks/ray_driver.py --sizes 100000 --repeats 3

Each measurement is a fresh process that starts a local Ray cluster (`ray.init`, 2
CPUs) and runs `--engine ray` on Parquet inputs made by benchmarks/corpus.py (files
of 25,000 pairs, 5,000-row shards), with the packaged GloVe only, so the workers'
cost per pair stays small and the driver's share shows. It reports:

- the driver's CPU seconds (all its threads: planning, Ray Data's executor, the
  commits) from just before the run to its end, per 100,000 input pairs, at each
  corpus size: it must not grow with the rows read (the driver reads none);
- the run's wall time.

The engine runs with its default placement on the 2 CPUs (`--ray-workers 1`: one model actor
on one CPU, one prepare actor on the other); `--model-actors` sets the model actors instead.
Sizes are interleaved, medians. Target: no more driver CPU per 100k pairs than the figure
recorded in BENCHMARKS.md for the engine before its stage pipeline (1.79 CPU-s at 100k pairs).

`--baseline DIR` measures an earlier batchembed too (a source tree, e.g. from
`git archive COMMIT | tar -x -C DIR`), with that tree's own benchmarks/ray_driver.py child and
`workers` as that tree meant it, interleaved with this one, run for run, on the same inputs:
on a shared machine the two figures are only comparable side by side.
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

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import common, corpus  # noqa: E402

FILE_PAIRS = 25_000
TREE = Path(__file__).resolve().parent.parent


def corpus_files(directory: Path, pairs: int) -> Path:
    """`pairs` pairs as Parquet files of FILE_PAIRS rows (row groups of 5,000)."""
    import pyarrow.parquet as pq

    target = directory / f"corpus-{pairs}"
    if target.is_dir():
        return target
    target.mkdir(parents=True)
    table = corpus.generate(pairs, seed=0)
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


def measure(inputs: Path, workers: int, scratch: Path, tree: Path = TREE) -> dict[str, float]:
    """One child run of the batchembed in `tree` (its own benchmarks/ray_driver.py)."""
    output = scratch / "out"
    shutil.rmtree(output, ignore_errors=True)
    shutil.rmtree(scratch / "out.batchembed", ignore_errors=True)
    script = tree / "benchmarks" / "ray_driver.py"
    command = [sys.executable, str(script), "--child", str(inputs), str(output), str(workers)]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    # cwd too: Ray puts the driver's working directory first on its workers' sys.path
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=env, cwd=tree)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"measurement failed ({done.returncode}):\n{done.stderr[-3000:]}")
    result: dict[str, float] = json.loads(lines[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[25_000, 100_000])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--model-actors", type=int, default=1, help="--ray-workers: model actors (default 1)")
    parser.add_argument("--baseline", type=Path, help="an earlier batchembed source tree, measured interleaved")
    parser.add_argument("--baseline-workers", type=int, default=1, help="the baseline's workers (default 1)")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], int(args.child[2]))
        return
    work = Path(tempfile.mkdtemp(prefix="batchembed-ray-bench-"))
    try:
        inputs = {size: corpus_files(work, size) for size in args.sizes}
        driver: dict[int, list[float]] = {size: [] for size in args.sizes}
        walls: dict[int, list[float]] = {size: [] for size in args.sizes}
        base: dict[int, list[float]] = {size: [] for size in args.sizes}
        base_walls: dict[int, list[float]] = {size: [] for size in args.sizes}
        for repeat in range(args.repeats):
            for size in args.sizes:  # interleaved: size after size, the baseline after each
                common.progress(f"repeat {repeat + 1}: {size} pairs, {args.model_actors} model actor(s)")
                result = measure(inputs[size], args.model_actors, work)
                assert result["pairs"] == size, result
                driver[size].append(result["driver_cpu"])
                walls[size].append(result["wall"])
                if args.baseline:
                    common.progress(f"repeat {repeat + 1}: {size} pairs, baseline {args.baseline}")
                    result = measure(inputs[size], args.baseline_workers, work, args.baseline.resolve())
                    assert result["pairs"] == size, result
                    base[size].append(result["driver_cpu"])
                    base_walls[size].append(result["wall"])
        print(common.command_line(__file__))
        print(common.machine_markdown(common.machine()))
        print(f"\nRay engine, GloVe only, shards of 5,000 rows, {args.model_actors} model actor(s), ", end="")
        print(f"{args.repeats} repeats, medians\n")
        print("| input pairs | tasks | driver CPU s (runs) | per 100k pairs | wall s |")
        print("|---:|---:|---:|---:|---:|")
        for size in args.sizes:
            cpu, runs, wall = (
                common.median(driver[size]),
                ", ".join(f"{x:.2f}" for x in driver[size]),
                common.median(walls[size]),
            )
            tasks = -(-size // 5_000)
            print(f"| {size:,} | {tasks} | {cpu:.2f} ({runs}) | {cpu / size * 100_000:.2f} | {wall:.1f} |")
        if args.baseline:
            print(f"\nBaseline {args.baseline}, workers {args.baseline_workers}, interleaved with the above\n")
            print("| input pairs | driver CPU s (runs) | per 100k pairs | wall s | this tree / baseline, CPU |")
            print("|---:|---:|---:|---:|---:|")
            for size in args.sizes:
                cpu, runs = common.median(base[size]), ", ".join(f"{x:.2f}" for x in base[size])
                ratio = common.median(driver[size]) / cpu
                per, wall = cpu / size * 100_000, common.median(base_walls[size])
                print(f"| {size:,} | {cpu:.2f} ({runs}) | {per:.2f} | {wall:.1f} | {ratio:.2f}x |")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    os._exit(0)


if __name__ == "__main__":
    main()
