"""Read labelled data into pipeline terms: sentences, a target mode, raw target cells, labels.

Format errors stop with an InputError naming file and line; target cells are passed through
unchecked, so a bad index or span becomes the pipeline's usual status row (a null distance).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from batchembed.config import Columns
from batchembed.errors import InputError, UsageError
from batchembed.io.reader import InputFile
from batchembed.targets import TargetMode
from batchembed.tokenize import TokenizerName

SUPERGLUE_FIELDS = ("sentence1", "sentence2", "start1", "end1", "start2", "end2", "label")


@dataclass
class LabelledSplit:
    """Binary same/different-sense pairs of one split."""

    path: Path
    gold: Path | None  # WiC's separate gold file; None when labels are inline (SuperGLUE)
    layout: str  # "wic" or "superglue"
    tokenizer: TokenizerName  # what makes the targets mean what the corpus means
    mode: TargetMode
    sentence1: list[str] = field(default_factory=list)
    sentence2: list[str] = field(default_factory=list)
    targets: list[tuple[Any, ...]] = field(default_factory=list)
    labels: list[bool] = field(default_factory=list)  # True: same sense (T)

    def __len__(self) -> int:
        return len(self.labels)


def _require_file(path: Path) -> None:
    if not path.is_file():
        raise InputError(f"{path}: no such file")


def gold_path_for(data: Path) -> Path:
    """WiC ships `<split>.data.txt` beside `<split>.gold.txt`."""
    if not data.name.endswith(".data.txt"):
        raise UsageError(
            f"{data}: cannot find its gold file by name (expected NAME.data.txt); give --dev-gold/--test-gold"
        )
    return data.with_name(data.name[: -len(".data.txt")] + ".gold.txt")


def _wic_pairs(data: Path, split: LabelledSplit) -> None:
    with data.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            fields = line.rstrip("\r\n").split("\t")
            if len(fields) != 5:
                raise InputError(
                    f"{data}:{number}: expected 5 tab-separated fields (target, N|V, i-j, sentence1, sentence2), "
                    f"got {len(fields)}"
                )
            indices = fields[2].split("-")
            if len(indices) != 2:
                raise InputError(f"{data}:{number}: field 3 must be token indices 'i-j', got {fields[2]!r}")
            split.sentence1.append(fields[3])
            split.sentence2.append(fields[4])
            split.targets.append((indices[0], indices[1]))


def _wic_labels(gold: Path) -> list[bool]:
    labels = []
    with gold.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            label = line.strip()
            if not label:
                continue
            if label not in ("T", "F"):
                raise InputError(f"{gold}:{number}: gold label must be T or F, got {label!r}")
            labels.append(label == "T")
    return labels


def read_wic(data: Path, gold: Path | None = None) -> LabelledSplit:
    """The original WiC layout: `target \\t N|V \\t i-j \\t sentence1 \\t sentence2`, T/F gold lines.

    Sentences are pre-tokenized and i, j are 0-based token indices: whitespace tokenizer, index mode.
    """
    gold = gold or gold_path_for(data)
    _require_file(data)
    _require_file(gold)
    split = LabelledSplit(data, gold, "wic", "whitespace", TargetMode.INDICES)
    _wic_pairs(data, split)
    split.labels = _wic_labels(gold)
    if len(split.labels) != len(split.sentence1):
        raise InputError(f"{gold}: {len(split.labels)} labels for {len(split.sentence1)} pairs in {data}")
    return split


def read_superglue(path: Path) -> LabelledSplit:
    """The SuperGLUE JSONL layout: character spans start1..end2, boolean label; flair tokenizer."""
    _require_file(path)
    split = LabelledSplit(path, None, "superglue", "flair", TargetMode.SPANS)
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{number}: not valid JSON: {exc.msg}") from exc
            if not isinstance(record, dict):
                raise InputError(f"{path}:{number}: not a JSON object")
            missing = [name for name in SUPERGLUE_FIELDS if name not in record]
            if missing:
                raise InputError(f"{path}:{number}: missing field {missing[0]!r} (unlabelled files cannot be scored)")
            if not isinstance(record["label"], bool):
                raise InputError(f"{path}:{number}: field 'label' must be true or false, got {record['label']!r}")
            split.sentence1.append(record["sentence1"])
            split.sentence2.append(record["sentence2"])
            split.targets.append(tuple(record[name] for name in ("start1", "end1", "start2", "end2")))
            split.labels.append(record["label"])
    return split


def read_binary(path: Path, gold: Path | None = None) -> LabelledSplit:
    """By file name: `.jsonl`/`.json` is SuperGLUE, anything else the WiC layout."""
    if path.suffix.lower() in (".jsonl", ".json"):
        if gold is not None:
            raise UsageError(f"{path}: SuperGLUE files hold their own labels; drop the gold-file option")
        split = read_superglue(path)
    else:
        split = read_wic(path, gold)
    if not len(split):
        raise InputError(f"{path}: no labelled pairs in the file")
    return split


def read_scores(file: InputFile, column: str, columns: Columns | None = None) -> np.ndarray:
    """The score column of one graded-similarity file, one float per data row.

    Read by the pipeline's own chunk readers (the score standing in as the id column), so the
    rows are exactly the rows `read_shards` numbers, malformed CSV records included.
    """
    from batchembed.io.sources import csv_chunks, parquet_chunks

    opener = csv_chunks if file.format == "csv" else parquet_chunks
    _, chunks = opener(file, replace(columns or Columns(), id=column))
    values: list[Any] = []
    for chunk in chunks:
        if column not in chunk:
            raise InputError(f"{file.path}: missing score column {column!r}; name it with --score-column")
        values.extend(chunk[column])
    scores = np.empty(len(values), dtype=np.float64)
    for row, value in enumerate(values, 1):
        try:
            scores[row - 1] = float(value)
        except (TypeError, ValueError):
            shown = "empty" if value is None else f"{value!r}, not a number"
            raise InputError(f"{file.path}: column {column!r}, data row {row}: the score is {shown}") from None
        if not math.isfinite(scores[row - 1]):
            raise InputError(f"{file.path}: column {column!r}, data row {row}: the score is {value!r}, not finite")
    return scores
