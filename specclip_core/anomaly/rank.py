"""Scores as percentiles of the training set, and one combined rank.

Each score is turned into a tail probability against the same score on a sample of the training
split: p = (1 + number of training values at or above it) / (1 + training size). A star's available
tail probabilities are combined by Fisher's method (scipy's ``combine_pvalues``); ``combined`` is
-log10 of the result, so larger is stranger. Tail probabilities stop at 1 / (1 + training size) beyond
the training set's largest value; ``excess`` (the largest of (score - training median) / (training
99th percentile - median) over the star's scores) orders such stars among themselves.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy.stats import combine_pvalues


class Reference:
    """Each score's finite values on the training sample, sorted."""

    def __init__(self, scores: Mapping[str, np.ndarray]):
        self.sorted = {name: np.sort(values[np.isfinite(values)]) for name, values in scores.items()}

    @property
    def names(self) -> list[str]:
        return [name for name, values in self.sorted.items() if values.size]

    def percentile(self, name: str, values: np.ndarray) -> np.ndarray:
        """Per cent of the training values below each value (NaN stays NaN)."""
        reference = self.sorted[name]
        out = 100.0 * np.searchsorted(reference, values, side="left") / max(reference.size, 1)
        return np.where(np.isfinite(values), out, np.nan)

    def tail(self, name: str, values: np.ndarray) -> np.ndarray:
        reference = self.sorted[name]
        above = reference.size - np.searchsorted(reference, values, side="left")
        return np.where(np.isfinite(values), (1.0 + above) / (1.0 + reference.size), np.nan)

    def excess(self, name: str, values: np.ndarray) -> np.ndarray:
        median, high = np.percentile(self.sorted[name], [50, 99])
        return (values - median) / max(high - median, 1e-12)


def combined_score(reference: Reference, scores: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(combined, excess, index of each star's most extreme score in ``reference.names``) for ``scores``."""
    names = reference.names
    n = len(next(iter(scores.values())))
    tails = np.stack([reference.tail(name, scores[name]) for name in names], axis=1) if names else np.ones((n, 0))
    combined = np.zeros(n)
    available = np.isfinite(tails)
    for pattern in np.unique(available, axis=0):
        rows = np.flatnonzero((available == pattern).all(axis=1))
        if pattern.any():
            combined[rows] = -np.log10(combine_pvalues(tails[np.ix_(rows, pattern)], method="fisher", axis=1).pvalue)
    excess = np.stack([reference.excess(name, scores[name]) for name in names], axis=1) if names else np.zeros((n, 0))
    excess = np.where(available, excess, -np.inf)
    most = np.argmin(np.where(available, tails, np.inf), axis=1) if names else np.zeros(n, int)
    return combined, excess.max(axis=1, initial=-np.inf), most
