"""Resolving power from DESI's resolution matrices.

A DESI ``<ARM>_RESOLUTION`` image holds, per fibre, the diagonals of a banded resolution matrix
(``ndiag`` x pixels, ``ndiag`` odd; row ``d`` is the diagonal of offset ``ndiag // 2 - d``, the
layout of ``desispec.resolution.Resolution``). Column ``j`` is, to first order, the line-spread
function at pixel ``j`` sampled at pixel offsets ``ndiag // 2 ... -ndiag // 2``. Its width is taken
from the second moment of its positive part (the matrices have small negative ringing wings);
FWHM = 2 sqrt(2 ln 2) sigma for a Gaussian, and R = lambda / FWHM.
"""

from __future__ import annotations

import numpy as np

FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))


def lsf_sigma_pixels(resolution: np.ndarray) -> np.ndarray:
    """Gaussian-equivalent sigma (pixels) of the LSF at each pixel: ``(..., ndiag, L)`` -> ``(..., L)``.

    NaN where the column has no positive weight (a fibre without data)."""
    ndiag = resolution.shape[-2]
    offsets = (ndiag // 2 - np.arange(ndiag, dtype=np.float64))[:, None]
    weight = np.clip(np.asarray(resolution, dtype=np.float64), 0.0, None)
    total = weight.sum(axis=-2)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (weight * offsets).sum(axis=-2) / total
        variance = (weight * offsets**2).sum(axis=-2) / total - mean**2
    return np.where(total > 0, np.sqrt(np.clip(variance, 0.0, None)), np.nan)


def resolving_power(wavelength: np.ndarray, resolution: np.ndarray, step: float) -> np.ndarray:
    """R = lambda / FWHM at each pixel, for resolution diagonals ``(..., ndiag, L)`` on a grid of
    pixel size ``step`` (A)."""
    sigma = lsf_sigma_pixels(resolution)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(wavelength, dtype=np.float64) / (FWHM_PER_SIGMA * sigma * step)


def gaussian_diagonals(wavelength: np.ndarray, power: float | np.ndarray, step: float, ndiag: int = 11) -> np.ndarray:
    """The diagonals ``(ndiag, L)`` of a Gaussian LSF of resolving power ``power`` (normalised per
    pixel): what a writer stores for spectra simulated at that R."""
    sigma = np.asarray(wavelength, dtype=np.float64) / (np.asarray(power, dtype=np.float64) * FWHM_PER_SIGMA * step)
    offsets = (ndiag // 2 - np.arange(ndiag, dtype=np.float64))[:, None]
    kernel = np.exp(-0.5 * (offsets / sigma[None, :]) ** 2)
    return (kernel / kernel.sum(axis=0, keepdims=True)).astype(np.float32)
