"""Default threads and workers on a CPU: batchembed's choice against one thread and against torch's default.

    python benchmarks/threads.py --pairs 3000 --repeats 3 --busy 0,1

On the generated corpus (benchmarks/corpus.py), default models, `--device cpu`, each run its
own process, interleaved (A B C A B C ...) and repeated, medians of the job's own seconds
(_summary.json, model loading excluded):

  default        `batchembed run`: torch threads = the cores no other process is busy on at
                 start-up, less one worker per 8 cores (none below 8: batchembed/hardware.py);
  one thread     the same with OMP_NUM_THREADS=1 in the environment (batchembed then leaves
                 torch's threads alone: one);
  torch default  `--threads <usable cores> --tokenize-workers 0`: every core to torch whatever
                 else runs, the CPU stage in a thread of the model's process (the layout before
                 the hardware chose it).

Each scenario of --busy runs that many busy-loop processes beside the contenders (a machine
shared with other work); 0 is a quiet machine. Every contender embeds the same subword tokens (checked).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import common, corpus  # noqa: E402


def contenders(cores: int) -> dict[str, tuple[list[str], dict[str, str]]]:
    """name -> (extra options, extra environment)."""
    return {
        "default": ([], {}),
        "one thread (OMP_NUM_THREADS=1)": ([], {"OMP_NUM_THREADS": "1"}),
        f"torch default (--threads {cores} --tokenize-workers 0)": (
            ["--threads", str(cores), "--tokenize-workers", "0"],
            {},
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--busy", default="0,1", help="comma-separated numbers of busy-loop processes beside the runs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "batchembed-bench-threads")
    args = parser.parse_args()

    work: Path = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    info = common.machine()
    path = corpus.ensure(args.pairs, args.seed, work)
    cores = len(os.sched_getaffinity(0))
    runs = contenders(cores)
    seconds: dict[tuple[int, str], list[float]] = defaultdict(list)
    tokens: set[int] = set()
    for busy in [int(b) for b in args.busy.split(",")]:
        with common.busy(busy):
            for repeat in range(args.repeats):
                for k, (name, (options, extra_env)) in enumerate(runs.items()):
                    common.progress(f"{busy} busy: repeat {repeat + 1}/{args.repeats}: {name}")
                    output = work / "out" / f"busy{busy}-{k}"
                    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
                    log = work / "logs" / f"busy{busy}-{k}.log"
                    common.run_batchembed(path, output, ["--device", "cpu", *options], log, {**env, **extra_env})
                    summary = common.read_summary(output)
                    seconds[(busy, name)].append(summary["seconds"])
                    tokens.add(summary["subword_tokens"])
    if len(tokens) != 1:
        sys.exit(f"contenders embedded different token counts: {sorted(tokens)}")
    (count,) = tokens

    print(common.command_line(__file__))
    print(common.machine_markdown(info) + "\n")
    print(
        f"{args.pairs:,} pairs, {count:,} subword tokens, {cores} usable cores; {args.repeats} interleaved repeats.\n"
    )
    print("| busy-loop processes | contender | job s (median) | runs | subword tokens/s | default's speed vs this |")
    print("|---:|---|---:|---|---:|---:|")
    for (busy, name), values in seconds.items():
        s = common.median(values)
        default = common.median(seconds[(busy, "default")])
        runs_text = ", ".join(f"{v:.1f}" for v in values)
        print(f"| {busy} | {name} | {s:.2f} | {runs_text} | {count / s:,.0f} | {s / default:.2f}x |")


if __name__ == "__main__":
    main()
