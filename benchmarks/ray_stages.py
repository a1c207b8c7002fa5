"""The Ray engine's stage pipeline: how fast its prepare stage feeds a model actor, and what its
actors' memory does with the shard size.

    python benchmarks/ray_stages.py                                  # 20k pairs x 2, memory at 100k pairs
    python benchmarks/ray_stages.py --pairs 20000 --repeats 3 --memory-pairs 100000

Every Ray measurement is a fresh process that starts a local Ray cluster (`ray.init`, 2 CPUs)
and calls `batchembed.engines.ray.run(config, workers=1)` with the default placement: one model
actor on one CPU, prepare actors on the CPUs it leaves (one on 2 CPUs). The corpus is
benchmarks/corpus.py's (one Parquet file, row groups of 8,192), GloVe off, the transformer the
near-zero-cost model of benchmarks/feed_ceiling.py (a random 1-layer, 32-wide BertConfig with
the default model's tokenizer), so the run measures everything but the model.

1. Feed: `--pairs` pairs, `--shard-rows 5000`, against the bare tokenizers (feed_ceiling.py's:
   flair's segtok word tokenizer and the fast subword tokenizer, pre-split words) over the same
   distinct sentences in as many processes as the prepare stage has CPUs (1 on 2 CPUs), spawned
   and warmed before the clock. Interleaved, `--repeats` times, medians. The Ray figures: the
   wall time of `run()` (actors started and the model loaded inside it), and the steady rate:
   the pairs of every shard after the first over the time from the first shard's done marker
   to the last's (the markers' modification times, written by the prepare actor as each shard
   ends; the driver's own commit times come in clumps, as Ray Data hands results over), so
   actor start-up and the first shard are left out. Target: Ray / bare tokenizers >= 0.8 (speed).
2. Memory: `--memory-pairs` pairs at `--shard-rows 100000` and at `--shard-rows 5000`,
   interleaved. While the run goes, /proc is polled every 0.2 s for the run's own Ray worker
   processes (descendants of the measuring process) whose title names PrepareActor
   (`ray::MapWorker(MapBatches(PrepareActor))`) or ModelActor (`ray::ModelActor`), and the
   largest VmHWM (peak RSS) each reached is kept. Target: each kind's peak at 100,000-row shards
   <= 1.25x its peak at 5,000-row shards.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import common, corpus, workload  # noqa: E402

KINDS = {"PrepareActor": "prepare actor", "ModelActor": "model actor"}
POLL_SECONDS = 0.2

# -- the run's Ray actors, seen from /proc ---------------------------------------------------------


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[1])


def _descends_from(pid: int, ancestor: int) -> bool:
    while pid > 1:
        if pid == ancestor:
            return True
        pid = _parent(pid)
    return False


def _peak_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def _poll_actors(done: threading.Event, peaks: dict[int, tuple[str, int]]) -> None:
    """Largest VmHWM of each of this process's Ray actor processes, by pid, until `done`."""
    me = os.getpid()
    while not done.is_set():
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            pid = int(entry)
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                    title = cmdline.read().split(b"\0", 1)[0].decode(errors="replace")
                kind = next((k for name, k in KINDS.items() if title.startswith("ray::") and name in title), None)
                if kind is None or not _descends_from(pid, me):
                    continue
                peak = _peak_kib(pid)
            except (OSError, ValueError, IndexError):  # the process ended while being read
                continue
            peaks[pid] = (kind, max(peak, peaks.get(pid, (kind, 0))[1]))
        done.wait(POLL_SECONDS)


def ray_child(inputs: str, output: str, model: str, shard_rows: int, result: Path) -> None:
    """One Ray run in this process: wall, steady rate and the actors' peak memory, as JSON."""
    import ray

    from batchembed.config import RunConfig, TransformerSpec
    from batchembed.engines.ray import run

    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    peaks: dict[int, tuple[str, int]] = {}
    done = threading.Event()
    poller = threading.Thread(target=_poll_actors, args=(done, peaks), daemon=True)
    poller.start()
    config = RunConfig((inputs,), output, glove=None, transformer=TransformerSpec(model), shard_rows=shard_rows)
    started_at = time.time()
    started = time.perf_counter()
    summary = run(config, workers=1)
    wall = time.perf_counter() - started
    markers = sorted(Path(output + ".batchembed", "done").glob("*.json"), key=lambda m: m.stat().st_mtime)
    commits = [(m.stat().st_mtime, int(json.loads(m.read_text())["pairs"])) for m in markers]
    done.set()
    poller.join()
    ray.shutdown()
    by_kind: dict[str, list[int]] = defaultdict(list)
    for kind, peak in peaks.values():
        by_kind[kind].append(peak)
    steady = None
    first = commits[0][0] - started_at if commits else None
    if len(commits) > 1:
        steady = sum(p for _, p in commits[1:]) / (commits[-1][0] - commits[0][0])
    result.write_text(
        json.dumps(
            {
                "wall": wall,
                "steady": steady,
                "pairs": summary.pairs_read,
                "code": summary.exit_code,
                "shards": len(commits),
                "first_marker": first,
                "peaks_kib": by_kind,
            }
        )
    )


# -- the parent ------------------------------------------------------------------------------------


def measure_ray(script: str, path: Path, model: str, shard_rows: int, work: Path, name: str) -> dict[str, Any]:
    output = work / "out" / name
    shutil.rmtree(output, ignore_errors=True)
    shutil.rmtree(output.with_name(f"{name}.batchembed"), ignore_errors=True)  # its markers: a fresh run
    result = work / f"{name}.json"
    result.unlink(missing_ok=True)
    cmd = [sys.executable, script, "--ray-child", str(path), str(output), model, str(shard_rows), str(result)]
    common.check(
        common.run_child(cmd, work / "logs" / f"{name}.log", {**os.environ, "TOKENIZERS_PARALLELISM": "false"}), name
    )
    measured: dict[str, Any] = json.loads(result.read_text())
    return measured


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=20000, help="pairs for the feed comparison")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--memory-pairs", type=int, default=100000, help="pairs for the memory comparison (0: skip)")
    parser.add_argument("--memory-repeats", type=int, default=1)
    parser.add_argument(
        "--bare-processes", type=int, default=1, help="bare tokenizer processes: the prepare CPUs (1 on 2)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "batchembed-bench-ray-stages")
    parser.add_argument("--ray-child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ray_child:
        inputs, output, model, shard_rows, result = args.ray_child
        ray_child(inputs, output, model, int(shard_rows), Path(result))
        os._exit(0)  # Ray's threads can hold a normal exit

    work: Path = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    script = str(Path(__file__).resolve())
    info = common.machine()
    loads = [f"start: {uptime()}"]
    common.progress("corpus and tiny model")
    model = str(workload.tiny_model(work / "tiny-bert"))
    path = corpus.ensure(args.pairs, args.seed, work)
    sentences = work / f"sentences-{args.pairs}-{args.seed}.json"
    sentences.write_text(json.dumps(workload.distinct_sentences(path)))

    ray_wall: list[float] = []
    ray_steady: list[float] = []
    first_marker: list[float] = []
    bare_s: list[float] = []
    for repeat in range(args.repeats):
        common.progress(f"repeat {repeat + 1}/{args.repeats}: Ray engine, {args.pairs} pairs")
        measured = measure_ray(script, path, model, 5000, work, f"feed-{repeat}")
        assert measured["pairs"] == args.pairs and measured["code"] == 0, measured
        ray_wall.append(measured["wall"])
        first_marker.append(measured["first_marker"])
        if measured["steady"]:
            ray_steady.append(measured["steady"])
        common.progress(f"repeat {repeat + 1}/{args.repeats}: bare tokenizers, {args.bare_processes} process(es)")
        bare_s.append(workload.measure_bare(sentences, model, args.bare_processes, work)["seconds"])
    loads.append(f"after the feed runs: {uptime()}")

    memory: dict[int, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    memory_wall: dict[int, list[float]] = defaultdict(list)
    if args.memory_pairs:
        big = corpus.ensure(args.memory_pairs, args.seed, work)
        for repeat in range(args.memory_repeats):
            for shard_rows in (100_000, 5_000):
                common.progress(
                    f"memory {repeat + 1}/{args.memory_repeats}: {args.memory_pairs} pairs, shards {shard_rows}"
                )
                measured = measure_ray(script, big, model, shard_rows, work, f"memory-{shard_rows}-{repeat}")
                assert measured["pairs"] == args.memory_pairs and measured["code"] == 0, measured
                memory_wall[shard_rows].append(measured["wall"])
                for kind, peaks in measured["peaks_kib"].items():
                    memory[shard_rows][kind].append(max(peaks))
        loads.append(f"after the memory runs: {uptime()}")

    print(common.command_line(__file__))
    print(common.machine_markdown(info) + "\n")
    print("Load (`uptime`): " + "; ".join(loads) + "\n")
    pairs = args.pairs
    print(f"Feed: {pairs:,} pairs, shards of 5,000 rows, {args.repeats} interleaved repeats, medians.\n")
    print("| contender | s (runs) | pairs/s |\n|---|---:|---:|")
    wall, bare = common.median(ray_wall), common.median(bare_s)
    print(f"| Ray engine, run() wall | {wall:.2f} ({', '.join(f'{x:.2f}' for x in ray_wall)}) | {pairs / wall:,.0f} |")
    firsts = ", ".join(f"{x:.2f}" for x in first_marker)
    print(f"| Ray engine, run() start to the first shard's marker | {common.median(first_marker):.2f} ({firsts}) | |")
    if ray_steady:
        steady = common.median(ray_steady)
        runs = ", ".join(f"{x:,.0f}" for x in ray_steady)
        print(f"| Ray engine, steady: shards after the first (pairs/s runs {runs}) | | {steady:,.0f} |")
    runs = ", ".join(f"{x:.2f}" for x in bare_s)
    print(f"| bare tokenizers, {args.bare_processes} process(es) | {bare:.2f} ({runs}) | {pairs / bare:,.0f} |")
    print("\n| figure | value | target |\n|---|---:|---:|")
    print(f"| Ray / bare tokenizers, speed, run() wall | {bare / wall:.2f} | >= 0.8 |")
    if ray_steady:
        print(f"| Ray / bare tokenizers, speed, steady | {common.median(ray_steady) / (pairs / bare):.2f} | >= 0.8 |")
    if memory:
        print(f"\nMemory: {args.memory_pairs:,} pairs, peak RSS (VmHWM) of each actor process, MiB\n")
        print("| actor | shards of 100,000 rows | shards of 5,000 rows | ratio | target |\n|---|---:|---:|---:|---:|")
        for kind in KINDS.values():
            high, low = memory[100_000].get(kind), memory[5_000].get(kind)
            if not high or not low:
                print(f"| {kind} | {high} | {low} | not seen | <= 1.25x |")
                continue
            h, lo = common.median([float(x) for x in high]) / 1024, common.median([float(x) for x in low]) / 1024
            print(f"| {kind} | {h:,.0f} | {lo:,.0f} | {h / lo:.2f}x | <= 1.25x |")
        walls = {k: f"{common.median(v):.1f}" for k, v in memory_wall.items()}
        print(f"\nWall s of the memory runs: {walls}")


if __name__ == "__main__":
    main()
