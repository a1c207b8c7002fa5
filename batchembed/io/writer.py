"""What was written: a part's size and SHA-256, which go into the shard's done marker, so a
later run can prove the part is the one it marked (the writing itself: stages/write.py)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WrittenPart:
    bytes: int
    sha256: str
