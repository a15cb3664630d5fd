"""Calibration of posterior samples (paper section 3.1.2): simulation-based calibration with
``sbi.diagnostics`` (``run_sbc`` ranks and the K-S test of their uniformity that ``check_sbc``
runs; its classifier tests, tens of seconds each, are left out), the empirical
coverage of central intervals, and quantile recalibration on validation stars.

Quantile recalibration (Kuleshov, Fenner & Ermon 2018, "Accurate uncertainties for deep learning
using calibrated regression"): a head's predictive distribution is calibrated when the probability
integral transform (PIT) of the truth, the fraction of the distribution below it, is uniform. On
validation stars the PIT values' empirical quantile at level tau is the nominal level below which a
fraction tau of the truths actually fell; reading each star's distribution at that level instead of
at tau calibrates it (on stars like the validation ones). The quantiles are Harrell-Davis estimates
(``scipy.stats.mstats.hdquantiles``): smooth in tau and of lower variance than the order statistics,
which matters on the few hundred validation stars of a small survey sample. The map is monotone, so a sample keeps its
rank and a joint posterior keeps its dependence between labels.

A posterior given by S samples is read as the distribution whose k-th smallest sample sits at level
(k - 0.5) / S, linear between samples, with Gaussian tails (the samples' mean and standard
deviation) beyond the outermost ones, so that a truth outside every sample still has a PIT below
0.5 / S (or above 1 - 0.5 / S) and an overconfident posterior can be widened past its samples.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.special import ndtr, ndtri

LEVELS = (0.68, 0.95)
LEVEL_CLIP = 1e-12
"""Levels are kept this far inside (0, 1) where a Gaussian tail is read."""
GRID = np.linspace(0.0, 1.0, 401)
"""Nominal levels at which a :class:`Recalibration` stores the validation PIT quantiles."""


class DrawnPosterior:
    """Samples already drawn ``[N, S]``, offered to ``sbi.diagnostics.run_sbc`` as a posterior."""

    def __init__(self, samples: np.ndarray):
        self.samples = torch.as_tensor(np.asarray(samples, dtype=np.float64).T[:, :, None])

    def sample_batched(self, sample_shape, x, show_progress_bars: bool = False) -> torch.Tensor:
        return self.samples[: sample_shape[0], : len(x)]


def sbc(truth: np.ndarray, samples: np.ndarray) -> tuple[float, np.ndarray]:
    """SBC of one label with ``sbi.diagnostics``: the K-S p-value that the ranks of ``truth`` ``[N]``
    among ``samples`` ``[N, S]`` are uniform, and the ranks."""
    from sbi.diagnostics import run_sbc
    from sbi.diagnostics.sbc import check_uniformity_frequentist

    n, n_samples = samples.shape
    thetas = torch.as_tensor(np.asarray(truth, dtype=np.float64)[:, None])
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(less than 100 samples|on the order of 100s).*")
        ranks, _ = run_sbc(thetas, torch.zeros(n, 1), DrawnPosterior(samples), num_posterior_samples=n_samples, show_progress_bar=False)
    return float(check_uniformity_frequentist(ranks, n_samples)[0]), ranks[:, 0].numpy().astype(np.int64)


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
    p, ranks = sbc(truth[chosen], samples[chosen]) if len(chosen) else (float("nan"), np.zeros(0, np.int64))
    result: dict[str, float | int] = {"sbc_stars": int(len(chosen)), "sbc_ks_p": p}
    for level in LEVELS:
        result[f"coverage_{round(level * 100)}"] = coverage(truth[known], samples[known], level)
    return result, ranks


def _tails(ordered: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per row of sorted samples: the Gaussian's mean and sd, and its CDF below the lowest sample
    and above the highest (the mass the tails rescale)."""
    mean, sd = ordered.mean(axis=1), np.maximum(ordered.std(axis=1), 1e-12)
    return mean, sd, ndtr((ordered[:, 0] - mean) / sd), ndtr((mean - ordered[:, -1]) / sd)


def pit(truth: np.ndarray, samples: np.ndarray) -> np.ndarray:
    """Probability integral transform of ``truth`` ``[N]`` under each row's ``samples`` ``[N, S]``
    read as the distribution of the module docstring (NaN where ``truth`` is)."""
    truth, ordered = np.asarray(truth, dtype=np.float64), np.sort(np.asarray(samples, dtype=np.float64), axis=1)
    n, s = ordered.shape
    rows = np.arange(n)
    rank = np.minimum((ordered < truth[:, None]).sum(axis=1), s)
    low, high = ordered[rows, np.clip(rank - 1, 0, s - 1)], ordered[rows, np.clip(rank, 0, s - 1)]
    between = np.clip((truth - low) / np.where(high > low, high - low, 1.0), 0, 1)
    out = (rank - 0.5 + between) / s
    mean, sd, below, above = _tails(ordered)
    edge = 0.5 / s
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(rank == 0, edge * ndtr((truth - mean) / sd) / np.maximum(below, 1e-300), out)
        out = np.where(rank == s, 1 - edge * ndtr((mean - truth) / sd) / np.maximum(above, 1e-300), out)
    return np.where(np.isfinite(truth), np.clip(out, 0, 1), np.nan)


def quantiles(samples: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Each row of ``samples`` ``[N, S]`` read at its own ``levels`` ``[N, L]`` (or every row at the
    same ``[L]``), as the distribution of the module docstring."""
    return _read_sorted(np.sort(np.asarray(samples, dtype=np.float64), axis=1), np.asarray(levels, dtype=np.float64))


def _read_sorted(ordered: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """:func:`quantiles` of samples already sorted along each row."""
    s = ordered.shape[1]
    clipped = np.clip(levels, LEVEL_CLIP, 1 - LEVEL_CLIP)
    position = clipped * s - 0.5
    below = np.clip(np.floor(position), 0, s - 1).astype(np.int64)
    above = np.minimum(below + 1, s - 1)
    weight = np.clip(position - below, 0, 1)
    if levels.ndim == 1:
        out = (1 - weight) * ordered[:, below] + weight * ordered[:, above]
    else:
        out = (1 - weight) * np.take_along_axis(ordered, below, axis=1) + weight * np.take_along_axis(ordered, above, axis=1)
    mean, sd, low_mass, high_mass = _tails(ordered)
    position, clipped = np.broadcast_to(position, out.shape), np.broadcast_to(clipped, out.shape)
    for tail, side, mass, level in ((position < 0, 1.0, low_mass, clipped), (position > s - 1, -1.0, high_mass, 1 - clipped)):
        rows = np.nonzero(tail)[0]  # the Gaussian tails, only where a level falls below or above every sample
        out[tail] = mean[rows] + side * sd[rows] * ndtri(np.clip(level[tail] * s / 0.5 * mass[rows], LEVEL_CLIP, 1 - LEVEL_CLIP))
    return out


def summarise(samples: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Label -> the samples' median, with ``_lo``/``_hi`` (16th/84th percentiles) and ``_err`` (half of hi - lo)."""
    out: dict[str, np.ndarray] = {}
    for label, drawn in samples.items():
        low, median, high = np.quantile(drawn, [0.16, 0.5, 0.84], axis=1) if len(drawn) else np.zeros((3, 0))
        out[label], out[f"{label}_err"], out[f"{label}_lo"], out[f"{label}_hi"] = median, (high - low) / 2, low, high
    return out


@dataclass
class Recalibration:
    """Per label, the validation PIT values' quantiles at :data:`GRID` (see the module docstring)."""

    levels: dict[str, list[float]] = field(default_factory=dict)

    @classmethod
    def fit(cls, truth: dict[str, np.ndarray], pits: dict[str, np.ndarray]) -> Recalibration:
        """From each label's validation truths and their PIT values (rows without a truth ignored)."""
        from scipy.stats.mstats import hdquantiles

        levels = {}
        for label, values in pits.items():
            known = np.isfinite(truth[label]) & np.isfinite(values)
            if known.sum() > 1:
                levels[label] = np.maximum.accumulate(np.clip(np.asarray(hdquantiles(values[known], prob=GRID)), 0, 1)).tolist()
        return cls(levels)

    def level(self, label: str, tau: np.ndarray) -> np.ndarray:
        """The nominal level to read a star's distribution at for calibrated level ``tau``."""
        return np.interp(tau, GRID, self.levels[label]) if label in self.levels else np.asarray(tau, dtype=np.float64)

    def apply(self, samples: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Recalibrated samples: each sample of rank r of S moves to its star's distribution read at
        ``level((r + 0.5) / S)``, so the order of the samples (and their joint dependence) is kept."""
        out = {}
        for label, drawn in samples.items():
            n, s = drawn.shape
            if label not in self.levels or not n:
                out[label] = drawn
                continue
            order = np.argsort(drawn, axis=1)
            moved = _read_sorted(np.take_along_axis(np.asarray(drawn, dtype=np.float64), order, axis=1), self.level(label, (np.arange(s) + 0.5) / s))
            out[label] = np.empty_like(moved)
            np.put_along_axis(out[label], order, moved, axis=1)
        return out
