"""Per-word usage measures: how far apart a word's uses are, within a grouping and across two.

One call handles one word (`word_rows`): its use vectors per model, each use's grouping, and every
grouping the corpus has. It returns the word's rows of the uses output, whose schema is defined once
here (`usage_schema`). The distances are the run's: euclidean, and cosine = 1 - cosine similarity.

Rows. With two or more groupings in the corpus, a word has one row per unordered pair of groupings
(grouping_1 < grouping_2 in sorted order), including pairs where it has no use on one side, so that
every word x pair is accounted for. With no grouping, or a single one, a word has one row with
grouping_2 null ("single-side row").

Columns (measures are float32, counts int32; null means "undefined", never 0):

- `lemma`: the word key.
- `grouping_1`: the first grouping of the pair; on a single-side row the corpus's one grouping, or
  null when the corpus has none.
- `grouping_2`: the second grouping; null on a single-side row.
- `uses_1`, `uses_2`: the word's uses in each grouping (`uses_2` null on a single-side row).
- `<model>_<metric>_apd`: APD across, the mean distance over all uses_1 x uses_2 cross pairs; on a
  single-side row, the APD within the one side (equal to `_apd_1`), so that one column ranks words in
  either layout.
- `<model>_<metric>_apd_1`, `_apd_2`: each side's own APD, the mean distance over its uses'
  N(N-1)/2 distinct unordered pairs; null with fewer than two uses.
- `<model>_<metric>_prt`: PRT, the distance between the two sides' mean use vectors (the raw means,
  as LSCDBenchmark's `cos` model does); null on a single-side row.
- `<model>_<metric>_spread`: single-side rows only, the mean distance of the uses to their mean
  vector (for cosine, 1 - cos to the mean's direction): how dispersed the uses are, 0 when all uses
  coincide, larger when they spread over several senses; null on pair rows and with fewer than two
  uses.
- `status`: `ok`, or why some measures are null (below); several reasons are joined with `;`.

Statuses (counted by `status_counts`):
- `one_use_1`, `one_use_2`: that side has one use, so its own APD is null (cross measures exist);
- `no_uses_1`, `no_uses_2`: the word has no use in that grouping: its own APD and every cross measure
  (APD across, PRT) are null;
- `one_use`, `no_uses`: the same for a single-side row (APD and spread null);
- `<model>_zero_mean`: a side's mean vector is zero, so its cosine PRT (or spread) has no direction.

Cost: cosine APD and PRT are O(N·D); euclidean APD is blocked matrix products in float64 (see
`pairwise`), on the torch `device` given (CPU by default), within `memory_budget` bytes per block.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from itertools import combinations
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from batchembed.usage import pairwise
from batchembed.usage.pairwise import DEFAULT_MEMORY_BUDGET

if TYPE_CHECKING:
    import torch

METRICS = ("euclidean", "cosine")  # the run's metrics, in the run's column order
MEASURES = ("apd", "apd_1", "apd_2", "prt", "spread")

OK = "ok"
ONE_USE = "one_use"
NO_USES = "no_uses"
ZERO_MEAN = "zero_mean"  # prefixed with the model's name

BASE_FIELDS: tuple[pa.Field, ...] = (
    pa.field("lemma", pa.string(), nullable=False),
    pa.field("grouping_1", pa.string()),
    pa.field("grouping_2", pa.string()),
    pa.field("uses_1", pa.int32(), nullable=False),
    pa.field("uses_2", pa.int32()),
)


def measure_columns(model_names: Sequence[str], metrics: Sequence[str] = METRICS) -> list[str]:
    """`<model>_<metric>_<measure>` for every model, metric and measure, in output order."""
    return [f"{model}_{metric}_{measure}" for model in model_names for metric in metrics for measure in MEASURES]


def usage_schema(model_names: Sequence[str], metrics: Sequence[str] = METRICS) -> pa.Schema:
    """The uses output's per-word schema: the one definition every writer and reader uses."""
    return pa.schema(
        [
            *BASE_FIELDS,
            *(pa.field(column, pa.float32()) for column in measure_columns(model_names, metrics)),
            pa.field("status", pa.string(), nullable=False),
        ]
    )


def usage_table(
    rows: Iterable[Mapping[str, Any]], model_names: Sequence[str], metrics: Sequence[str] = METRICS
) -> pa.Table:
    """Rows from `word_rows` (any number of words) as a table of `usage_schema`."""
    return pa.Table.from_pylist(list(rows), schema=usage_schema(model_names, metrics))


def status_counts(statuses: Iterable[str]) -> dict[str, int]:
    """How many rows carry each reason (a row with `one_use_1;no_uses_2` counts once for each)."""
    counts: dict[str, int] = {}
    for status in statuses:
        for reason in status.split(";"):
            counts[reason] = counts.get(reason, 0) + 1
    return dict(sorted(counts.items()))


def _check(lemma: str, vectors: Mapping[str, np.ndarray], uses: int, metrics: Sequence[str]) -> None:
    """The job's contract: one finite row per use for every model, non-zero where cosine is asked."""
    unknown = [metric for metric in metrics if metric not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; expected some of {list(METRICS)}")
    for model, rows in vectors.items():
        if rows.ndim != 2 or len(rows) != uses:
            raise ValueError(f"{lemma!r}: {model} vectors have shape {rows.shape}, expected ({uses}, D)")
        if not np.isfinite(rows).all():
            raise ValueError(f"{lemma!r}: {model} vectors hold NaN or infinite values; give such uses a status")
        if "cosine" in metrics and uses and not np.any(rows, axis=1).all():
            raise ValueError(f"{lemma!r}: {model} has a zero vector, which has no cosine; give such uses a status")


def _members(lemma: str, groups: Sequence[str | None], groupings: Sequence[str]) -> dict[str | None, np.ndarray]:
    """Row indices of the uses in each grouping (key None when the corpus has no grouping)."""
    labels = np.asarray(list(groups), dtype=object)
    if not groupings:
        if any(label is not None for label in labels):
            raise ValueError(f"{lemma!r}: uses carry groupings but the corpus has none")
        return {None: np.arange(len(labels))}
    known = set(groupings)
    strays = sorted({str(label) for label in labels if label not in known})
    if strays:
        raise ValueError(f"{lemma!r}: groupings {strays} are not among the corpus's {sorted(known)}")
    return {grouping: np.flatnonzero(labels == grouping) for grouping in sorted(known)}


def _float(value: float | None) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


def _mean_distance(metric: str, mean_1: np.ndarray, mean_2: np.ndarray) -> float:
    """Distance between two float64 vectors (1 - cos as ||â - b̂||² / 2: no cancellation when close)."""
    if metric == "euclidean":
        return float(np.linalg.norm(mean_1 - mean_2))
    with np.errstate(invalid="ignore", divide="ignore"):
        gap = mean_1 / np.linalg.norm(mean_1) - mean_2 / np.linalg.norm(mean_2)
    return float(gap @ gap) / 2


class _Word:
    """One word's vectors for one model, with each grouping's statistics computed once."""

    def __init__(
        self,
        vectors: np.ndarray,
        members: dict[str | None, np.ndarray],
        device: torch.device | str | None,
        memory_budget: int,
    ) -> None:
        self.vectors = vectors
        self.members = members
        self.device = device
        self.memory_budget = memory_budget
        self._own: dict[tuple[str, str | None], float | None] = {}
        self._unit: dict[str | None, tuple[np.ndarray, float]] = {}
        self._distinct: dict[str | None, pairwise.Distinct] = {}

    def side(self, grouping: str | None) -> np.ndarray:
        return self.vectors[self.members[grouping]]

    def count(self, grouping: str | None) -> int:
        return len(self.members[grouping])

    def mean(self, grouping: str | None) -> np.ndarray:
        return self.side(grouping).astype(np.float64).mean(axis=0)

    def distinct(self, grouping: str | None) -> pairwise.Distinct:
        if grouping not in self._distinct:
            self._distinct[grouping] = pairwise.distinct(self.side(grouping))
        return self._distinct[grouping]

    def unit(self, grouping: str | None) -> tuple[np.ndarray, float]:
        if grouping not in self._unit:
            self._unit[grouping] = pairwise.unit_stats(self.side(grouping))
        return self._unit[grouping]

    def own_apd(self, metric: str, grouping: str | None) -> float | None:
        key = (metric, grouping)
        if key not in self._own:
            count = self.count(grouping)
            if count < 2:
                self._own[key] = None
            elif metric == "cosine":
                self._own[key] = pairwise.cosine_apd_within(count, self.unit(grouping)[1])
            else:
                self._own[key] = pairwise.euclidean_apd_within(self.distinct(grouping), self.device, self.memory_budget)
        return self._own[key]

    def cross_apd(self, metric: str, first: str | None, second: str | None) -> float:
        if metric == "cosine":
            return pairwise.cosine_apd_across(
                self.count(first), self.unit(first), self.count(second), self.unit(second)
            )
        return pairwise.euclidean_apd_across(
            self.distinct(first), self.distinct(second), self.device, self.memory_budget
        )

    def prt(self, metric: str, first: str | None, second: str | None) -> float:
        return _mean_distance(metric, self.mean(first), self.mean(second))

    def spread(self, metric: str, grouping: str | None) -> float:
        side = self.side(grouping).astype(np.float64)
        mean = side.mean(axis=0)
        if metric == "euclidean":
            return float(np.linalg.norm(side - mean, axis=1).mean())
        with np.errstate(invalid="ignore", divide="ignore"):
            gaps = side / np.linalg.norm(side, axis=1, keepdims=True) - mean / np.linalg.norm(mean)
        return float(np.einsum("ij,ij->i", gaps, gaps).mean()) / 2


def _side_status(count: int, suffix: str) -> list[str]:
    if count == 0:
        return [NO_USES + suffix]
    if count == 1:
        return [ONE_USE + suffix]
    return []


def _pair_row(
    lemma: str, words: Mapping[str, _Word], metrics: Sequence[str], first: str, second: str
) -> dict[str, Any]:
    some = next(iter(words.values()))
    count_1, count_2 = some.count(first), some.count(second)
    row: dict[str, Any] = {"lemma": lemma, "grouping_1": first, "grouping_2": second}
    row.update(uses_1=count_1, uses_2=count_2)
    reasons = _side_status(count_1, "_1") + _side_status(count_2, "_2")
    both = count_1 > 0 and count_2 > 0
    for model, word in words.items():
        zero_mean = False
        for metric in metrics:
            prefix = f"{model}_{metric}_"
            prt = _float(word.prt(metric, first, second)) if both else None
            zero_mean |= both and prt is None
            row[prefix + "apd"] = _float(word.cross_apd(metric, first, second)) if both else None
            row[prefix + "apd_1"] = _float(word.own_apd(metric, first))
            row[prefix + "apd_2"] = _float(word.own_apd(metric, second))
            row[prefix + "prt"] = prt
            row[prefix + "spread"] = None
        if zero_mean:
            reasons.append(f"{model}_{ZERO_MEAN}")
    row["status"] = ";".join(reasons) or OK
    return row


def _single_row(lemma: str, words: Mapping[str, _Word], metrics: Sequence[str], grouping: str | None) -> dict[str, Any]:
    count = next(iter(words.values())).count(grouping)
    row: dict[str, Any] = {"lemma": lemma, "grouping_1": grouping, "grouping_2": None, "uses_1": count, "uses_2": None}
    reasons = _side_status(count, "")
    for model, word in words.items():
        zero_mean = False
        for metric in metrics:
            prefix = f"{model}_{metric}_"
            apd = _float(word.own_apd(metric, grouping))
            spread = _float(word.spread(metric, grouping)) if count >= 2 else None
            zero_mean |= count >= 2 and spread is None
            row.update({prefix + "apd": apd, prefix + "apd_1": apd, prefix + "apd_2": None, prefix + "prt": None})
            row[prefix + "spread"] = spread
        if zero_mean:
            reasons.append(f"{model}_{ZERO_MEAN}")
    row["status"] = ";".join(reasons) or OK
    return row


def word_rows(
    lemma: str,
    vectors: Mapping[str, np.ndarray],
    groups: Sequence[str | None],
    groupings: Sequence[str],
    metrics: Sequence[str] = METRICS,
    device: torch.device | str | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
) -> list[dict[str, Any]]:
    """The uses output's rows for one word (see the module docstring for rows, columns, statuses).

    vectors: model name -> N x D float32, one row per valid use, the same uses in the same order for
    every model; groups: each use's grouping (None when the corpus has none); groupings: every
    grouping of the corpus, so that a word without a use in one still gets its rows.
    Raises ValueError when the inputs break this contract (a shape, a NaN, a zero vector for cosine,
    a grouping the corpus does not list): the job gives such uses a status before calling.
    """
    if not vectors:
        raise ValueError(f"{lemma!r}: no model's vectors given")
    _check(lemma, vectors, len(groups), metrics)
    members = _members(lemma, groups, groupings)
    words = {model: _Word(rows, members, device, memory_budget) for model, rows in vectors.items()}
    sides = list(members)
    if len(sides) == 1:
        return [_single_row(lemma, words, metrics, sides[0])]
    return [_pair_row(lemma, words, metrics, first, second) for first, second in combinations(sides, 2)]  # type: ignore[arg-type]
