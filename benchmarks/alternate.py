"""Two whole commands side by side: alternated runs (A B A B ...), pairwise ratios, medians.

    python benchmarks/alternate.py --runs 5 --warmup 1 \\
        'env PYTHONPATH=NEW python -m batchembed run corpus.parquet -o out/new-{run} --overwrite -q' \\
        'env PYTHONPATH=OLD python -m batchembed run corpus.parquet -o out/old-{run} --overwrite -q'

On a machine shared with other work, absolute seconds drift with the load; a ratio taken pair by
pair (A's run against the B run right after it) does not, so the median of the pairwise ratios
is the figure to quote. Each run is a process of its own, timed from outside: wall seconds, and
the user + system CPU seconds of it and the children it waited for (os.wait4). `{run}` in a
command becomes the run's own name (a1, b1, a2, ...), so each run writes a fresh output. The
warm-up pairs (page cache, compiled bytecode) are run first and not counted. A command that fails
stops the script with its output.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import common  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", help="command A, one string split as a shell splits words (no shell runs it)")
    parser.add_argument("b", help="command B, the baseline: ratios are A / B")
    parser.add_argument("--runs", type=int, default=5, help="counted pairs")
    parser.add_argument("--warmup", type=int, default=1, help="pairs run first and not counted")
    parser.add_argument("--logs", type=Path, default=None, help="each run's output (default: a temp dir)")
    args = parser.parse_args()
    logs = args.logs or Path(tempfile.mkdtemp(prefix="batchembed-alternate-"))

    load_start = common.load_average()
    pairs: list[tuple[common.ChildRun, common.ChildRun]] = []
    for k in range(args.warmup + args.runs):
        counted = k >= args.warmup
        name = str(k - args.warmup + 1) if counted else f"warmup{k + 1}"
        runs = []
        for side, command in (("a", args.a), ("b", args.b)):
            tag = f"{side}{name}"
            cmd = shlex.split(command.replace("{run}", tag))
            common.progress(f"{tag}: {shlex.join(cmd)}")
            runs.append(common.check(common.run_child(cmd, logs / f"{tag}.log"), f"command {side.upper()} ({tag})"))
        if counted:
            pairs.append((runs[0], runs[1]))
        a, b = runs
        common.progress(f"pair {name}: A/B wall {a.wall_s / b.wall_s:.3f}, A/B CPU {a.cpu_s / b.cpu_s:.3f}")
    load_end = common.load_average()

    wall = [a.wall_s / b.wall_s for a, b in pairs]
    cpu = [a.cpu_s / b.cpu_s for a, b in pairs]
    print(common.command_line(__file__))
    print(f"- A: `{args.a}`\n- B: `{args.b}`")
    print(f"- {args.runs} alternated pairs after {args.warmup} warm-up pair(s); load average {load_start} at the")
    print(f"  start, {load_end} at the end\n")
    print("| pair | A wall s | B wall s | A/B wall | A CPU s | B CPU s | A/B CPU |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for k, ((a, b), w, c) in enumerate(zip(pairs, wall, cpu), 1):
        print(f"| {k} | {a.wall_s:.2f} | {b.wall_s:.2f} | {w:.3f} | {a.cpu_s:.2f} | {b.cpu_s:.2f} | {c:.3f} |")
    med = common.median
    print(
        f"| median | {med([a.wall_s for a, _ in pairs]):.2f} | {med([b.wall_s for _, b in pairs]):.2f} "
        f"| **{med(wall):.3f}** | {med([a.cpu_s for a, _ in pairs]):.2f} | {med([b.cpu_s for _, b in pairs]):.2f} "
        f"| **{med(cpu):.3f}** |"
    )


if __name__ == "__main__":
    main()
