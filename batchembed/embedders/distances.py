"""Distances between paired vectors, computed for a whole batch at once on its device."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

METRICS = ("euclidean", "cosine")


def euclidean(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """[N, D] x [N, D] -> [N]: ||a - b||, exactly 0 for identical vectors."""
    return (a - b).norm(dim=-1)


def cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """[N, D] x [N, D] -> [N]: 1 - cos(a, b), NaN where either vector is zero.

    Computed as ||a/|a| - b/|b|||^2 / 2, which equals 1 - cos but is exactly 0 for
    identical vectors and keeps precision for small distances, where 1 - dot
    loses it to cancellation.
    """
    a_norm = a.norm(dim=-1, keepdim=True)
    b_norm = b.norm(dim=-1, keepdim=True)
    diff = a / a_norm - b / b_norm  # zero norms give NaN: no direction, no distance
    return (0.5 * (diff * diff).sum(dim=-1)).clamp(max=2.0)


def degenerate(a: torch.Tensor, b: torch.Tensor, results: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per pair: (either vector is all zeros, either vector or any distance is NaN or infinite)."""
    zero = ((a == 0).all(dim=-1) | (b == 0).all(dim=-1)).cpu().numpy()
    non_finite = (~a.isfinite().all(dim=-1) | ~b.isfinite().all(dim=-1)).cpu().numpy()
    for values in results.values():
        non_finite = non_finite | ~np.isfinite(values)
    return zero, non_finite


DISTANCES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "euclidean": euclidean,
    "cosine": cosine,
}
