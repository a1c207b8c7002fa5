"""The WiC paper's threshold classifier, accuracy, and Spearman's rho (pure numpy/scipy)."""

from __future__ import annotations

import math

import numpy as np


def tune_threshold(distances: np.ndarray, labels: np.ndarray) -> float:
    """The t maximising the accuracy of "distance <= t means same sense" on the non-null rows.

    Candidates: one below every distance (all different), the midpoints between consecutive
    distinct distances, and the largest distance (all same); ties go to the smallest t. NaN when
    no row has a distance. Null rows score the same whatever t is, so they do not move it.
    """
    known = ~np.isnan(distances)
    d, y = distances[known], labels[known].astype(bool)
    if not len(d):
        return math.nan
    order = np.argsort(d, kind="stable")
    d, y = d[order], y[order]
    same_below = np.concatenate([[0], np.cumsum(y)])  # true T among the k smallest, predicted T
    diff_below = np.arange(len(d) + 1) - same_below
    correct = same_below + (len(d) - int(y.sum()) - diff_below)  # + true F above the cut
    cuttable = np.concatenate([[True], d[:-1] < d[1:], [True]])  # never cut between equal values
    best = int(np.flatnonzero(cuttable)[np.argmax(correct[cuttable])])
    if best == 0:
        return float(d[0]) - 1.0
    if best == len(d):
        return float(d[-1])
    return float((d[best - 1] + d[best]) / 2)


def classify(distances: np.ndarray, threshold: float, fallback: bool) -> np.ndarray:
    """True (same sense) where distance <= threshold; null (NaN) distances get `fallback`."""
    with np.errstate(invalid="ignore"):
        return np.where(np.isnan(distances), fallback, distances <= threshold)


def majority_label(labels: np.ndarray) -> bool:
    """The more frequent label; a tie (WiC is balanced) gives False, "different sense"."""
    return bool(int(np.sum(labels)) * 2 > len(labels))


def accuracy(predicted: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(predicted == labels)) if len(labels) else math.nan


def spearman(distances: np.ndarray, scores: np.ndarray) -> tuple[float | None, float | None]:
    """Spearman's rho and p-value between similarity (-distance) and score, over non-null rows.

    None where undefined: fewer than two rows, or a constant side (e.g. GloVe on one repeated word).
    """
    from scipy.stats import spearmanr

    known = ~np.isnan(distances)
    if known.sum() < 2 or np.ptp(distances[known]) == 0 or np.ptp(scores[known]) == 0:
        return None, None
    rho, p = spearmanr(-distances[known], scores[known])
    return float(rho), float(p)
