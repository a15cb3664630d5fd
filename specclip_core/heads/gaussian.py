"""Per-star Gaussians of a head that gives a mean and a variance per label (the ``mlp`` head with
``uncertainty: gaussian``, a finetune stage with ``uncertainty: gaussian``): the mixture of an
ensemble's members, its reading at levels after a quantile recalibration
(:class:`~specclip_core.heads.calibration.Recalibration`), and the catalogue's interval columns.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from scipy.special import ndtri

from specclip_core.heads.calibration import Recalibration

PIT_CLIP = 1e-9
"""Levels are kept this far inside (0, 1) before a Gaussian's quantile function reads them."""
INTERVAL_LEVELS = np.array([0.16, 0.5, 0.84])
"""The levels of ``_lo``, the value (the median) and ``_hi``."""


def mixture(means: list[torch.Tensor], variances: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance of the equal mixture of the members' Gaussians (one member: itself)."""
    mean = torch.stack(means).mean(0)
    variance = (torch.stack(variances) + torch.stack(means).pow(2)).mean(0) - mean.pow(2)
    return mean, variance.clamp_min(0)


def sample_levels(n: int) -> np.ndarray:
    """``n`` evenly spaced levels, (i + 0.5) / n: a Gaussian read at them stands for ``n`` samples."""
    return (np.arange(n) + 0.5) / n


def gaussian_quantiles(
    gaussians: dict[str, tuple[np.ndarray, np.ndarray]],
    levels: np.ndarray,
    recalibration: Recalibration | None,
    given: Callable[[str, np.ndarray], np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Label -> each star's Gaussian (mean, sigma) read at ``levels`` ``[L]``, at the recalibrated
    levels where ``recalibration`` is given: ``[N, L]``, mapped to the label's units by ``given``
    (label, values) where the Gaussian is in other units (a log10 label)."""
    out = {}
    for label, (mean, sigma) in gaussians.items():
        read = recalibration.level(label, levels) if recalibration else levels
        values = mean[:, None] + sigma[:, None] * ndtri(np.clip(read, PIT_CLIP, 1 - PIT_CLIP))[None, :]
        out[label] = given(label, values) if given else values
    return out


def interval_columns(read: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Catalogue columns from Gaussians read at :data:`INTERVAL_LEVELS` (``[N, 3]`` per label): the
    median as the value, ``_lo``/``_hi`` and ``_err`` (half of hi - lo)."""
    out: dict[str, np.ndarray] = {}
    for label, values in read.items():
        low, median, high = values.T
        out[label], out[f"{label}_err"], out[f"{label}_lo"], out[f"{label}_hi"] = median, (high - low) / 2, low, high
    return out
