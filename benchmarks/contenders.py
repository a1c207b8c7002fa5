"""The contenders' harness of benchmarks/throughput.py and its precision table
(benchmarks/precision_table.py): repeated samples of each contender, run interleaved, each in a
process of its own, and the comparisons of their outputs.

A helper module, not a script: the scripts import it, it imports no script (so no circle).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import common, workload

OUTPUT_COLUMNS = ("glove_euclidean", "glove_cosine", "bert_euclidean", "bert_cosine")


@dataclass
class Samples:
    """Repeated measurements of one contender."""

    label: str
    job_s: list[float] = field(default_factory=list)  # the timed work, model loading excluded
    wall_s: list[float] = field(default_factory=list)  # the whole process
    rss_mib: list[float] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)  # user + system of the whole process
    extra: dict[str, list[Any]] = field(default_factory=lambda: defaultdict(list))

    def add(self, run: common.ChildRun, job_s: float, **extra: Any) -> None:
        self.job_s.append(job_s)
        self.wall_s.append(run.wall_s)
        self.rss_mib.append(run.peak_rss_mib)
        self.cpu_s.append(run.cpu_s)
        for key, value in extra.items():
            self.extra[key].append(value)


class Bench:
    """The contenders of one corpus: flair and the bare forward as `script --worker`, and `batchembed run`."""

    def __init__(self, args: argparse.Namespace, corpus_path: Path, tokens: int, script: Path) -> None:
        self.args = args
        self.corpus = corpus_path
        self.tokens = tokens
        self.work = args.workdir
        self.script = script  # runs one contender with `--worker flair|bare` (benchmarks/throughput.py)

    def _worker(
        self, kind: str, budget: int = workload.CPU_BUDGET, precision: str = "fp32"
    ) -> tuple[common.ChildRun, dict[str, Any]]:
        result = self.work / f"{kind}.json"
        cmd = [
            sys.executable,
            str(self.script),
            "--worker",
            kind,
            "--corpus",
            str(self.corpus),
            "--result",
            str(result),
            "--flair-out",
            str(self.work / "flair.parquet"),
            "--device",
            self.args.device,
            "--chunk",
            str(self.args.chunk),
            "--bare-budget",
            str(budget),
            "--bare-precision",
            precision,
        ]
        if self.args.threads is not None:
            cmd += ["--threads", str(self.args.threads)]
        run = common.check(
            common.run_child(cmd, self.work / "logs" / f"{kind}-{budget}-{precision}.log"), f"worker {kind}"
        )
        return run, json.loads(result.read_text())

    def flair(self, samples: Samples) -> None:
        run, result = self._worker("flair")
        samples.add(run, result["job_s"], load_s=result["load_s"], attn=result["attn"], threads=result["threads"])

    def bare(self, samples: Samples, budget: int, precision: str = "fp32") -> None:
        run, result = self._worker("bare", budget, precision)
        if result["tokens"] != self.tokens:
            sys.exit(f"bare forward saw {result['tokens']} tokens, expected {self.tokens}")
        samples.add(
            run,
            result["job_s"],
            load_s=result["load_s"],
            tokenize_s=result["tokenize_s"],
            attn=result["attn"],
            threads=result["threads"],
        )

    def device_options(self) -> list[str]:
        return [] if self.args.device_auto else ["--device", self.args.device]

    def batchembed(self, samples: Samples, name: str, options: list[str]) -> Path:
        output = self.work / "out" / name
        options = [*self.device_options(), *options]
        log = self.work / "logs" / f"{name}.log"
        run = common.run_batchembed(self.corpus, output, options, log, threads=self.args.threads)
        summary = common.read_summary(output)
        if summary["subword_tokens"] != self.tokens:  # would mean it did less (or more) work
            sys.exit(f"batchembed embedded {summary['subword_tokens']} tokens, expected {self.tokens}")
        samples.add(run, summary["seconds"])
        return output


def interleave(repeats: int, contenders: list[tuple[Samples, Any]]) -> None:
    """A B C A B C ...: every contender sees the same drift of the machine's load."""
    for r in range(repeats):
        for samples, go in contenders:
            common.progress(f"repeat {r + 1}/{repeats}: {samples.label}")
            go(samples)
            common.progress(
                f"  job {samples.job_s[-1]:.1f}s, wall {samples.wall_s[-1]:.1f}s, "
                f"peak RSS {samples.rss_mib[-1]:.0f} MiB"
            )


def rate(tokens: int, seconds: float) -> str:
    return f"{tokens / seconds:,.0f}" if seconds > 0 else "n/a"


def runs(values: list[float]) -> str:
    return ", ".join(f"{v:.1f}" for v in values)


# -- output comparisons --------------------------------------------------------------------------


def load_output(path: Path) -> Any:
    import pyarrow.parquet as pq

    return pq.read_table(path)


def within(a: Any, b: Any, column: str, tolerance: float) -> bool:
    """|a - b| <= tolerance x max(1, |a|): absolute for distances up to 1 (cosine), relative
    beyond (euclidean distances of ~5-10, where fp32 rounding alone reaches 1e-5 absolute)."""
    import numpy as np

    x = a.column(column).to_numpy(zero_copy_only=False).astype(np.float64)
    y = b.column(column).to_numpy(zero_copy_only=False).astype(np.float64)
    both = np.isfinite(x) & np.isfinite(y)
    return bool((np.abs(x[both] - y[both]) <= tolerance * np.maximum(1.0, np.abs(x[both]))).all())


def column_diff(a: Any, b: Any, column: str) -> tuple[float, float, bool]:
    """(max, median) |a - b| over rows where both are present, and whether nulls agree."""
    import numpy as np

    x = a.column(column).to_numpy(zero_copy_only=False).astype(np.float64)
    y = b.column(column).to_numpy(zero_copy_only=False).astype(np.float64)
    both = np.isfinite(x) & np.isfinite(y)
    diff = np.abs(x[both] - y[both])
    same_nulls = bool((np.isfinite(x) == np.isfinite(y)).all())
    if not len(diff):
        return 0.0, 0.0, same_nulls
    return float(diff.max()), float(np.median(diff)), same_nulls


def same_rows(a: Any, b: Any) -> bool:
    """Everything but the distances identical (which rows, words, positions, statuses)."""
    keep = [c for c in a.column_names if c not in OUTPUT_COLUMNS]
    return a.num_rows == b.num_rows and a.select(keep).equals(b.select(keep))
