"""What a run did, counted: printed as the final line and written as `<output>.batchembed/summary.json`.

Counts of pairs, rows and statuses describe the whole output directory (shards
written by this run and by earlier runs it resumed), so that `pairs_read` is
always the number of input rows accounted for in the output. `new_bad_rows`
counts bad rows written since the last run that finished: it decides exit code
6 and `--max-bad-rows`, so a resumed job still reports the bad rows of the run
that was killed, and a re-run with nothing to do exits 0.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from batchembed import status
from batchembed.errors import ExitCode

if TYPE_CHECKING:
    from batchembed.io.layout import OutputLayout


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


@dataclass
class FileCounts:
    """One input file: what of it is in the output."""

    path: str
    format: str
    state: str = "pending"  # done, partial (failed part-way), failed, kept (no longer an input), pending
    pairs: int = 0
    rows: int = 0
    shards: int = 0
    bad_rows: int = 0
    error: str | None = None


@dataclass
class RunSummary:
    """What a run did: `batchembed.run` returns it, `batchembed run` prints `line()` and writes
    `to_dict()` as `<output>.batchembed/summary.json`. `exit_code` is the command line's (0 finished,
    3 input files failed, 6 bad rows, ...), `outcome` says it in words, `errors` holds one message
    per input file that could not be read, `status_counts` the output rows by status."""

    pairs_read: int = 0  # input pairs accounted for in the output (this run and earlier ones)
    rows_written: int = 0  # output rows in the output directory
    shards_written: int = 0  # by this run
    shards_skipped: int = 0  # already done by an earlier run
    status_counts: Counter[str] = field(default_factory=Counter)
    subword_tokens: int = 0
    seconds: float = 0.0
    pairs_this_run: int = 0
    rows_this_run: int = 0
    new_bad_rows: int = 0  # since the last finished run: exit code 6 and --max-bad-rows
    exit_code: int | None = None  # None while running
    outcome: str = "running"
    run: int = 0
    output: str = ""
    incremental: bool = False
    inputs: list[str] = field(default_factory=list)  # the input arguments as given
    compute: dict[str, str] = field(default_factory=dict)  # CPU, its features, precision, backend (hardware.py)
    files: dict[str, FileCounts] = field(default_factory=dict)  # by file key
    errors: list[str] = field(default_factory=list)
    started: str = field(default_factory=now)
    finished: str | None = None
    _clock: float = field(default_factory=time.perf_counter, repr=False)

    @property
    def bad_rows(self) -> int:
        return status.bad_rows(self.status_counts)

    @property
    def tokens_per_second(self) -> float:
        return self.subword_tokens / self.seconds if self.seconds > 0 else 0.0

    @property
    def nothing_to_do(self) -> bool:
        return self.shards_written == 0 and not self.errors and self.exit_code == ExitCode.OK

    def finish(self, code: ExitCode, outcome: str) -> None:
        self.exit_code, self.outcome = int(code), outcome
        self.finished = now()
        self.seconds = time.perf_counter() - self._clock

    def line(self) -> str:
        by_status = ", ".join(f"{s} {n}" for s, n in sorted(self.status_counts.items(), key=lambda x: (-x[1], x[0])))
        totals = f"{self.pairs_read} pairs read, {self.rows_written} rows written"
        if self.nothing_to_do and not self.shards_skipped:
            return f"no data rows to process: the inputs hold no rows ({totals})"
        if self.nothing_to_do:
            return f"nothing to do: all {self.shards_skipped} shards were already done ({totals})"
        skipped = f" ({self.shards_skipped} shards were already done)" if self.shards_skipped else ""
        failed = f"; {len(self.errors)} input error(s)" if self.errors else ""
        return (
            f"{totals}{skipped}; by status: {by_status or 'none'}{failed}; {self.seconds:.1f}s, "
            f"{self.tokens_per_second:,.0f} subword tokens/s"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "exit_code": self.exit_code,
            "outcome": self.outcome,
            "run": self.run,
            "started": self.started,
            "finished": self.finished,
            "output": self.output,
            "incremental": self.incremental,
            "inputs": self.inputs,
            "pairs_read": self.pairs_read,
            "rows_written": self.rows_written,
            "shards_written": self.shards_written,
            "shards_skipped": self.shards_skipped,
            "pairs_this_run": self.pairs_this_run,
            "rows_this_run": self.rows_this_run,
            "bad_rows": self.bad_rows,
            "new_bad_rows": self.new_bad_rows,
            "status_counts": dict(sorted(self.status_counts.items())),
            "files": [asdict(counts) for _, counts in sorted(self.files.items(), key=lambda kv: kv[1].path)],
            "errors": self.errors,
            "subword_tokens": self.subword_tokens,
            "seconds": round(self.seconds, 3),
            "tokens_per_second": round(self.tokens_per_second, 1),
            "compute": self.compute,
        }

    def write(self, layout: OutputLayout) -> None:
        layout.summary.write_text(json.dumps(self.to_dict(), indent=2) + "\n", layout.temporary_dir())
