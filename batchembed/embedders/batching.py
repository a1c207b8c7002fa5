"""Cut length-sorted sentences into batches by a budget of padded positions."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np


def length_sorted_batches(lengths: np.ndarray, members: np.ndarray, budget: Callable[[], int]) -> Iterator[np.ndarray]:
    """Yield groups of `members` (indices into `lengths`), longest first, such that
    rows x longest length stays within `budget()` (read anew per batch, so a budget
    lowered after an out-of-memory error applies at once). A sentence longer than
    the budget still gets a batch of its own.
    """
    order = members[np.argsort(-lengths[members], kind="stable")]
    start = 0
    while start < len(order):
        width = int(lengths[order[start]])  # longest of this batch: sorted descending
        rows = max(1, budget() // max(width, 1))
        yield order[start : start + rows]
        start += rows
