"""What word usage analytics costs: `batchembed uses` against `batchembed run` on the same sentences.

    python benchmarks/uses_cost.py --uses 2000 --repeats 3
    python benchmarks/uses_cost.py --uses 2000 --repeats 3 --all-pairs 300

From one generated corpus (benchmarks/corpus.py) take N distinct sentences, each with one target
(its first word of four letters or more, as a character span), split into two groupings. Then,
alternated (A B A B ...), each contender a whole process with the default models:

  uses      `batchembed uses uses.csv -o OUT`: every use's target embedded once per model, then
            each word's APD, PRT and spread;
  run       `batchembed run pairs.csv -o OUT` over the same N sentences, each in exactly one pair
            (N/2 pairs, targets as spans): the same sentences embedded once, no aggregation.

The target: uses costs at most 1.3x run. With --all-pairs M, also the analysis the way users do
it without the uses job: M uses of one word in two groupings, every cross pair (M/2 x M/2) as a
row of `run`, against `uses` on the M uses. Prints markdown for BENCHMARKS.md: the machine, the
commands, wall seconds per run (median, min, max), the job's own seconds without model loading,
and the ratio of each alternated pair.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common, corpus  # noqa: E402

WORD = re.compile(r"[A-Za-z]{4,}")


def sentences(count: int, seed: int) -> list[tuple[str, int, int]]:
    """`count` distinct sentences of the corpus, each with its target's span."""
    table = corpus.generate(count, seed)
    found: list[tuple[str, int, int]] = []
    seen: set[str] = set()
    for text in table.column("sentence1").to_pylist() + table.column("sentence2").to_pylist():
        match = WORD.search(text)
        if match and text not in seen:
            seen.add(text)
            found.append((text, match.start(), match.end()))
        if len(found) == count:
            return found
    raise SystemExit(f"the corpus gave only {len(found)} distinct sentences")


def write_uses(path: Path, rows: list[tuple[str, int, int]], lemma: str | None = None) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(["id", "sentence", "start", "end", "lemma", "grouping"])
        for k, (text, start, end) in enumerate(rows):
            out.writerow([f"u{k}", text, start, end, lemma or text[start:end].lower(), "a" if k % 2 else "b"])


def write_pairs(path: Path, pairs: list[tuple[tuple[str, int, int], tuple[str, int, int]]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(["id", "sentence1", "sentence2", "start1", "end1", "start2", "end2"])
        for k, ((s1, a1, b1), (s2, a2, b2)) in enumerate(pairs):
            out.writerow([f"p{k}", s1, s2, a1, b1, a2, b2])


def timed(command: list[str], state: Path, summary_name: str) -> tuple[float, float]:
    """Wall seconds of the whole process, and the job's own seconds from its summary."""
    begin = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode not in (0, 6):  # 6: rows or uses with a status (counted in the summary), still a full run
        raise SystemExit(f"{' '.join(command)} exited {done.returncode}: {done.stderr.strip()[-500:]}")
    wall = time.perf_counter() - begin
    summary = json.loads((state / summary_name).read_text())
    job = summary.get("embedding", summary).get("seconds", float("nan"))
    return wall, job


def alternate(contenders: dict[str, tuple[list[str], Path, str]], repeats: int) -> dict[str, list[tuple[float, float]]]:
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, (command, state, summary_name) in contenders.items():
            results[name].append(timed(command, state, summary_name))
    return results


def table(title: str, results: dict[str, list[tuple[float, float]]], commands: dict[str, str]) -> str:
    names = list(results)
    lines = [
        f"### {title}",
        "",
        "| contender | wall s (median, min-max) | job s without model loading (median) |",
        "|---|---|---|",
    ]
    for name in names:
        walls = [w for w, _ in results[name]]
        jobs = [j for _, j in results[name]]
        lines.append(
            f"| {name} | {common.median(walls):.1f} ({min(walls):.1f}-{max(walls):.1f}) | {common.median(jobs):.1f} |"
        )
    first, second = names
    ratios = [a[0] / b[0] for a, b in zip(results[first], results[second])]
    job_ratios = [a[1] / b[1] for a, b in zip(results[first], results[second])]
    lines += [
        "",
        f"{first} / {second}, per alternated pair: wall {', '.join(f'{r:.2f}' for r in ratios)} "
        f"(median {common.median(ratios):.2f}); job seconds {', '.join(f'{r:.2f}' for r in job_ratios)} "
        f"(median {common.median(job_ratios):.2f})",
        "",
        *(f"- {name}: `{command}`" for name, command in commands.items()),
        "",
    ]
    return "\n".join(lines)


def uses_against_run(
    exe: list[str], flags: list[str], uses: Path, pairs: Path, run_label: str, note: str = ""
) -> tuple[dict[str, tuple[list[str], Path, str]], dict[str, str]]:
    """The two contenders over the same sentences, `uses` on `uses` and `run` on `pairs` (outputs
    beside them), and the command each is shown as."""
    out_uses, out_run = uses.with_name(f"{uses.stem}-uses"), pairs.with_name(f"{pairs.stem}-run")
    contenders = {
        "uses": ([*exe, "uses", str(uses), "-o", str(out_uses), *flags], Path(f"{out_uses}.batchembed"), "uses.json"),
        run_label: (
            [*exe, "run", str(pairs), "-o", str(out_run), *flags],
            Path(f"{out_run}.batchembed"),
            "summary.json",
        ),
    }
    shown = {
        "uses": f"batchembed uses {uses.name} -o OUT {' '.join(flags)}",
        run_label: f"batchembed run {pairs.name} -o OUT {' '.join(flags)}{note}",
    }
    return contenders, shown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--uses", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--all-pairs", type=int, default=0, help="uses of one word for the all-pairs comparison")
    parser.add_argument("--options", default="", help="extra options for both contenders, e.g. '--no-glove'")
    args = parser.parse_args()
    extra = args.options.split()
    exe = [sys.executable, "-m", "batchembed"]
    with tempfile.TemporaryDirectory(prefix="uses-cost-") as scratch:
        work = Path(scratch)
        rows = sentences(args.uses, args.seed)
        write_uses(work / "uses.csv", rows)
        write_pairs(work / "pairs.csv", list(zip(rows[0::2], rows[1::2])))
        flags = ["--overwrite", "-q", *extra]
        contenders, shown = uses_against_run(exe, flags, work / "uses.csv", work / "pairs.csv", "run")
        print(common.machine_markdown(common.machine()))
        print(f"Command: `python benchmarks/uses_cost.py {' '.join(sys.argv[1:])}`\n")
        print(
            table(
                f"{args.uses} uses against the same sentences as {args.uses // 2} pairs",
                alternate(contenders, args.repeats),
                shown,
            )
        )
        if args.all_pairs:
            word = sentences(args.all_pairs, args.seed + 1)
            write_uses(work / "word.csv", word, lemma="target")
            early, late = word[0::2], word[1::2]
            write_pairs(work / "cross.csv", [(a, b) for a in early for b in late])
            label, note = "run, all cross pairs", f"  ({len(early) * len(late)} pairs)"
            contenders, shown = uses_against_run(exe, flags, work / "word.csv", work / "cross.csv", label, note)
            print(
                table(
                    f"One word, {args.all_pairs} uses in two groupings: uses against every cross pair through run",
                    alternate(contenders, args.repeats),
                    shown,
                )
            )
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
