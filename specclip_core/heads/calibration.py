"""Calibration of posterior samples (paper section 3.1.2): simulation-based calibration ranks with a
Kolmogorov-Smirnov test of their uniformity, and the empirical coverage of central intervals.

The rank of a true value is the number of its posterior samples below it, as in
``sbi.diagnostics.run_sbc`` with ``reduce_fns="marginals"``; the K-S test compares the ranks with a
uniform distribution on [0, n_samples], as ``sbi.diagnostics.check_sbc`` does.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import kstest, uniform

LEVELS = (0.68, 0.95)


def sbc_ranks(truth: np.ndarray, samples: np.ndarray) -> np.ndarray:
    """Ranks ``[N]`` of ``truth`` ``[N]`` among ``samples`` ``[N, S]``."""
    return (np.asarray(samples) < np.asarray(truth)[:, None]).sum(axis=1)


def ks_pvalue(ranks: np.ndarray, n_samples: int) -> float:
    """p-value of the K-S test that ``ranks`` are uniform on [0, n_samples]."""
    return float(kstest(ranks, uniform(loc=0, scale=n_samples).cdf).pvalue)


def coverage(truth: np.ndarray, samples: np.ndarray, level: float) -> float:
    """Fraction of ``truth`` inside the central ``level`` interval of each row's ``samples``."""
    low, high = np.quantile(samples, [(1 - level) / 2, (1 + level) / 2], axis=1)
    return float(np.mean((truth >= low) & (truth <= high))) if len(truth) else float("nan")


def calibration(truth: np.ndarray, samples: np.ndarray, n_sbc: int, seed: int = 0) -> tuple[dict[str, float | int], np.ndarray]:
    """SBC on ``n_sbc`` rows with a finite ``truth`` drawn at random (K-S p-value) and coverage of the
    68% and 95% central intervals on every such row; ``samples`` is ``[N, S]``. Returns the figures
    and the SBC ranks."""
    known = np.flatnonzero(np.isfinite(truth))
    chosen = np.sort(np.random.default_rng(seed).permutation(known)[:n_sbc])
    ranks = sbc_ranks(truth[chosen], samples[chosen])
    result: dict[str, float | int] = {"sbc_stars": int(len(chosen)), "sbc_ks_p": ks_pvalue(ranks, samples.shape[1]) if len(chosen) else float("nan")}
    for level in LEVELS:
        result[f"coverage_{round(level * 100)}"] = coverage(truth[known], samples[known], level)
    return result, ranks
