"""What a run did, counted: printed as the final line and written as JSON beside the output."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batchembed import status

SUMMARY_FILE = "_summary.json"


@dataclass
class RunSummary:
    pairs_read: int = 0
    rows_written: int = 0
    shards_written: int = 0
    shards_skipped: int = 0  # already done by an earlier run
    status_counts: Counter[str] = field(default_factory=Counter)
    subword_tokens: int = 0
    seconds: float = 0.0

    @property
    def bad_rows(self) -> int:
        return sum(n for s, n in self.status_counts.items() if status.is_bad_row(s))

    @property
    def tokens_per_second(self) -> float:
        return self.subword_tokens / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        by_status = ", ".join(f"{s} {n}" for s, n in sorted(self.status_counts.items(), key=lambda x: -x[1]))
        skipped = f" ({self.shards_skipped} shards already done)" if self.shards_skipped else ""
        return (
            f"{self.pairs_read} pairs read, {self.rows_written} rows written{skipped}; "
            f"by status: {by_status or 'none'}; {self.seconds:.1f}s, "
            f"{self.tokens_per_second:,.0f} subword tokens/s"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "pairs_read": self.pairs_read,
            "rows_written": self.rows_written,
            "shards_written": self.shards_written,
            "shards_skipped": self.shards_skipped,
            "bad_rows": self.bad_rows,
            "status_counts": dict(sorted(self.status_counts.items())),
            "subword_tokens": self.subword_tokens,
            "seconds": round(self.seconds, 3),
            "tokens_per_second": round(self.tokens_per_second, 1),
        }

    def write(self, output: Path) -> Path:
        path = output / SUMMARY_FILE
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return path
