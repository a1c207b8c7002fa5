"""Means of pairwise distances over all pairs of a word's uses, without N² memory or per-pair Python.

Cosine needs no pairwise work at all. With unit vectors x̂ (1 - cos = ||x̂ - ŷ||² / 2), the mean over
pairs is a function of each side's mean unit vector m and scatter S = Σ ||x̂ - m||²:

    within one side, over its N(N-1)/2 distinct pairs:  S / (N - 1)
    across two sides, over their N1·N2 pairs:           (S1/N1 + S2/N2 + ||m1 - m2||²) / 2

(the same identity as `mean(x̂)·mean(ŷ)`, written around the means, so that nearly identical uses do
not lose their small distances to the cancellation of 1 - dot). Both are O(N·D) in float64.

Euclidean needs every distance (the square root does not commute with the mean). It is computed in
blocks: ||u||² + ||v||² - 2 u·v, clipped at 0, square-rooted, summed. Three choices keep it within
1e-5 relative of a float64 pairwise reference (tested on random and adversarial uses; usually far
closer):

- float64 blocks: the rounding of ||u||² + ||v||² - 2 u·v is relative to the norms, not to the
  distance; when many uses lie close together and one far away (which moves their centre), float32
  gives the close pairs errors of sqrt(6e-8)·norm, and the mean drifts by 1e-4 (a test shows it);
- the vectors are centred on their mean first, so the norms in the formula are the uses' spread
  around the word, not their distance from the origin;
- identical rows are merged and weighted by their count: a duplicated use contributes an exact 0
  where the formula would give sqrt(rounding) (about 1e-8 of the norm), and a model that gives every
  use of a word the same vector (GloVe) costs one row instead of N² products.

Blocks are square, bounded by `memory_budget` bytes (one float64 block x block product, budgeted
twice for headroom), and run on the given torch device, so the products use a GPU when the
embeddings do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

DEFAULT_MEMORY_BUDGET = 64 * 2**20  # bytes for one block's matrices: 2048 x 2048 float64, twice
_MATRICES_PER_BLOCK = 2  # the product (clipped and square-rooted in place), and headroom for the allocator


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


@dataclass(frozen=True)
class Distinct:
    """A side's distinct rows (float32, first-occurrence order) and how many uses each stands for."""

    rows: np.ndarray
    weights: np.ndarray

    @property
    def count(self) -> int:
        return int(self.weights.sum())

    def weighted_sum(self) -> np.ndarray:
        return (self.rows.astype(np.float64) * self.weights[:, None]).sum(axis=0)


def distinct(vectors: np.ndarray | Distinct) -> Distinct:
    """`vectors` with identical rows merged (computed once per side, reused by every measure)."""
    return vectors if isinstance(vectors, Distinct) else Distinct(*unique_rows(vectors))


class _Centred:
    """A side's rows centred on a point, as float64 tensors on the device, and the augmented blocks
    whose single product is the squared distance: [-2u, |u|², 1] · [v, 1, |v|²] = |u|² + |v|² - 2u·v
    (one matrix pass fewer than adding the norms to the product afterwards)."""

    def __init__(self, side: Distinct, centre: np.ndarray, device: torch.device | str | None) -> None:
        import torch

        target = torch.device(device or "cpu")
        rows = torch.from_numpy(side.rows).to(target, torch.float64)
        self.rows = rows - torch.from_numpy(centre).to(target)
        self.norms = (self.rows * self.rows).sum(dim=1, keepdim=True)
        self.weights = torch.from_numpy(side.weights.astype(np.float64)).to(target)
        self.size = len(side.rows)

    def left(self, start: int, stop: int) -> torch.Tensor:
        import torch

        norms = self.norms[start:stop]
        return torch.cat([self.rows[start:stop] * -2.0, norms, torch.ones_like(norms)], dim=1)

    def right(self, start: int, stop: int) -> torch.Tensor:
        import torch

        norms = self.norms[start:stop]
        return torch.cat([self.rows[start:stop], torch.ones_like(norms), norms], dim=1)


def _block_sum(
    first: _Centred, rows: tuple[int, int], second: _Centred, cols: tuple[int, int], diagonal: bool = False
) -> float:
    """Σ w_i w_j |u_i - v_j| over one block (the diagonal zeroed when it pairs rows with themselves)."""
    block = first.left(*rows) @ second.right(*cols).T
    block.clamp_(min=0.0).sqrt_()
    if diagonal:
        block.fill_diagonal_(0.0)
    return float(first.weights[rows[0] : rows[1]] @ block @ second.weights[cols[0] : cols[1]])


def _spans(size: int, step: int) -> list[tuple[int, int]]:
    return [(start, min(start + step, size)) for start in range(0, size, step)]


def euclidean_apd_within(
    vectors: np.ndarray | Distinct,
    device: torch.device | str | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
) -> float:
    """Mean euclidean distance over the N(N-1)/2 distinct pairs of the uses (N >= 2)."""
    side = distinct(vectors)
    count = side.count
    if len(side.rows) == 1:
        return 0.0
    x = _Centred(side, side.weighted_sum() / count, device)
    spans = _spans(x.size, block_size(memory_budget))
    total = 0.0
    for n, rows in enumerate(spans):
        # a diagonal block holds each unordered pair twice; the blocks right of it once
        total += _block_sum(x, rows, x, rows, diagonal=True) / 2
        total += sum(_block_sum(x, rows, x, cols) for cols in spans[n + 1 :])
    return total / (count * (count - 1) / 2)


def euclidean_apd_across(
    vectors_1: np.ndarray | Distinct,
    vectors_2: np.ndarray | Distinct,
    device: torch.device | str | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
) -> float:
    """Mean euclidean distance over all N1 x N2 pairs of two sides' uses (both non-empty)."""
    first, second = distinct(vectors_1), distinct(vectors_2)
    centre = (first.weighted_sum() + second.weighted_sum()) / (first.count + second.count)
    x, y = _Centred(first, centre, device), _Centred(second, centre, device)
    step = block_size(memory_budget)
    total = sum(_block_sum(x, rows, y, cols) for rows in _spans(x.size, step) for cols in _spans(y.size, step))
    return total / (first.count * second.count)
