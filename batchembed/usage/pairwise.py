"""Means of pairwise distances over all pairs of a word's uses, without N² memory or per-pair Python.

Cosine needs no pairwise work at all. With unit vectors x̂ (1 - cos = ||x̂ - ŷ||² / 2), the mean over
pairs is a function of each side's mean unit vector m and scatter S = Σ ||x̂ - m||²:

    within one side, over its N(N-1)/2 distinct pairs:  S / (N - 1)
    across two sides, over their N1·N2 pairs:           (S1/N1 + S2/N2 + ||m1 - m2||²) / 2

(the same identity as `mean(x̂)·mean(ŷ)`, written around the means, so that nearly identical uses do
not lose their small distances to the cancellation of 1 - dot). Both are O(N·D) in float64.

Euclidean needs every distance (the square root does not commute with the mean). It is computed in
blocks: ||u||² + ||v||² - 2 u·v, clipped at 0, square-rooted, summed. Three choices keep it exact to
about 1e-8 relative against a float64 pairwise reference:

- float64 blocks: the rounding of ||u||² + ||v||² - 2 u·v is relative to the norms, not to the
  distance; when many uses lie close together and one far away (which moves their centre), float32
  gives the close pairs errors of sqrt(6e-8)·norm, and the mean drifts by 1e-4 (a test shows it);
- the vectors are centred on their mean first, so the norms in the formula are the uses' spread
  around the word, not their distance from the origin;
- identical rows are merged and weighted by their count: a duplicated use contributes an exact 0
  where the formula would give sqrt(rounding) (about 1e-8 of the norm), and a model that gives every
  use of a word the same vector (GloVe) costs one row instead of N² products.

Blocks are square, bounded by `memory_budget` bytes (three float64 matrices of block x block), and
run on the given torch device, so the products use a GPU when the embeddings do.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

DEFAULT_MEMORY_BUDGET = 96 * 2**20  # bytes for one block's matrices: 2048 x 2048 float64, three times
_MATRICES_PER_BLOCK = 3  # the broadcast norms, the product, and the distances (sqrt in place)


def block_size(memory_budget: int) -> int:
    """Rows (and columns) of one block, so that its float64 matrices fit the budget."""
    return max(16, math.isqrt(max(memory_budget, 1) // (8 * _MATRICES_PER_BLOCK)))


def unique_rows(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of a float32 matrix (first-occurrence order) and how often each occurs."""
    rows = np.ascontiguousarray(vectors)
    if len(rows) < 2:
        return rows, np.ones(len(rows), dtype=np.int64)
    keys = rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).ravel()
    _, first, counts = np.unique(keys, return_index=True, return_counts=True)
    order = np.argsort(first, kind="stable")
    return rows[first[order]], counts[order]


def unit_stats(vectors: np.ndarray) -> tuple[np.ndarray, float]:
    """(mean unit vector, scatter Σ||x̂ - mean||²) of the rows, in float64: all cosine APD needs."""
    x = vectors.astype(np.float64)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    mean = x.mean(axis=0)
    x -= mean
    return mean, float(np.einsum("ij,ij->", x, x))


def cosine_apd_within(count: int, scatter: float) -> float:
    """Mean 1 - cos over the distinct pairs of one side (count >= 2)."""
    return scatter / (count - 1)


def cosine_apd_across(
    count_1: int, stats_1: tuple[np.ndarray, float], count_2: int, stats_2: tuple[np.ndarray, float]
) -> float:
    """Mean 1 - cos over all count_1 x count_2 pairs of two sides."""
    gap = stats_1[0] - stats_2[0]
    return (stats_1[1] / count_1 + stats_2[1] / count_2 + float(gap @ gap)) / 2


def _as_tensor(rows: np.ndarray, device: torch.device | str | None) -> torch.Tensor:
    import torch

    return torch.from_numpy(np.asarray(rows, dtype=np.float64)).to(device or "cpu")


def _block_distances(a: torch.Tensor, a_norms: torch.Tensor, b: torch.Tensor, b_norms: torch.Tensor) -> torch.Tensor:
    import torch

    squared = torch.addmm(a_norms[:, None] + b_norms[None, :], a, b.T, alpha=-2.0)
    return squared.clamp_(min=0.0).sqrt_()


def _weighted(
    rows: np.ndarray, weights: np.ndarray, centre: np.ndarray, device: torch.device | str | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The rows centred on `centre`, their squared norms, and their weights, as tensors on the device."""
    centred = _as_tensor(rows, device) - _as_tensor(centre, device)
    return centred, (centred * centred).sum(dim=1), _as_tensor(weights, device)


def euclidean_apd_within(
    vectors: np.ndarray, device: torch.device | str | None = None, memory_budget: int = DEFAULT_MEMORY_BUDGET
) -> float:
    """Mean euclidean distance over the N(N-1)/2 distinct pairs of the rows (N >= 2)."""
    count = len(vectors)
    rows, weights = unique_rows(vectors)
    if len(rows) == 1:
        return 0.0
    centre = (rows.astype(np.float64) * weights[:, None]).sum(axis=0) / count
    x, norms, w = _weighted(rows, weights, centre, device)
    step = block_size(memory_budget)
    total = 0.0
    for start in range(0, len(rows), step):
        stop = min(start + step, len(rows))
        # the diagonal block counts each unordered pair twice and each row with itself (set to 0)
        block = _block_distances(x[start:stop], norms[start:stop], x[start:stop], norms[start:stop])
        block.fill_diagonal_(0.0)
        total += float(w[start:stop] @ block @ w[start:stop]) / 2
        if stop < len(rows):
            for other in range(stop, len(rows), step):
                end = min(other + step, len(rows))
                block = _block_distances(x[start:stop], norms[start:stop], x[other:end], norms[other:end])
                total += float(w[start:stop] @ block @ w[other:end])
    return total / (count * (count - 1) / 2)


def euclidean_apd_across(
    vectors_1: np.ndarray,
    vectors_2: np.ndarray,
    device: torch.device | str | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
) -> float:
    """Mean euclidean distance over all len(vectors_1) x len(vectors_2) pairs (both non-empty)."""
    rows_1, weights_1 = unique_rows(vectors_1)
    rows_2, weights_2 = unique_rows(vectors_2)
    sums = (rows_1.astype(np.float64) * weights_1[:, None]).sum(axis=0)
    sums += (rows_2.astype(np.float64) * weights_2[:, None]).sum(axis=0)
    centre = sums / (len(vectors_1) + len(vectors_2))
    x, x_norms, x_w = _weighted(rows_1, weights_1, centre, device)
    y, y_norms, y_w = _weighted(rows_2, weights_2, centre, device)
    step = block_size(memory_budget)
    total = 0.0
    for start in range(0, len(rows_1), step):
        stop = min(start + step, len(rows_1))
        for other in range(0, len(rows_2), step):
            end = min(other + step, len(rows_2))
            block = _block_distances(x[start:stop], x_norms[start:stop], y[other:end], y_norms[other:end])
            total += float(x_w[start:stop] @ block @ y_w[other:end])
    return total / (len(vectors_1) * len(vectors_2))
