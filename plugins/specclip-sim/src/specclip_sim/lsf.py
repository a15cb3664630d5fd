"""Gaussian line-spread function of constant resolving power, applied to per-pixel coefficients.

At constant R = lambda / FWHM the kernel has a constant width in ``x = log10(lambda)``:
sigma_x = 1 / (R * 2 sqrt(2 ln 2) * ln 10). Coefficients given on the model's linear 0.1 A grid are
averaged into the bins of a uniform x grid (the exact integral of their linear interpolant over each
bin, so no flux is lost or made between the grids), convolved there with
``scipy.ndimage.gaussian_filter1d`` (a normalised kernel, so flux and equivalent widths are
conserved) and decimated onto the requested uniform x grid. Everything is
linear in the coefficients, so convolving each polynomial term's spectrum once is exact for any
labels.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.ndimage import gaussian_filter1d

FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
TRUNCATE = 5.0  # kernel half-width in sigma


def sigma_log10(resolving_power: float) -> float:
    """Gaussian sigma in log10(lambda) of an LSF with FWHM = lambda / R."""
    return 1.0 / (resolving_power * FWHM_PER_SIGMA * math.log(10.0))


def convolve_coefficients(
    wavelength: np.ndarray, theta: np.ndarray, resolving_power: float, x0: float, step: float, n: int
) -> np.ndarray:
    """Rows of ``theta`` (terms, pixels) given on ``wavelength`` (A), convolved to resolving power R
    and sampled at ``x = x0 + step * arange(n)``, x = log10(lambda); returns (terms, n) float64."""
    sigma = sigma_log10(resolving_power)
    x_model = np.log10(wavelength)
    lo, hi = x0 - TRUNCATE * sigma, x0 + (n - 1) * step + TRUNCATE * sigma
    if lo < x_model[0] or hi > x_model[-1]:
        raise ValueError(
            f"the model covers {wavelength[0]:.1f}-{wavelength[-1]:.1f} A, but {10**lo:.1f}-{10**hi:.1f} A is needed"
        )
    sub = math.ceil(step / (sigma / 4.0))
    fine_step = step / sub
    pad = math.ceil(TRUNCATE * sigma / fine_step)
    x = x0 + fine_step * np.arange(-pad, (n - 1) * sub + pad + 1)
    edges = np.clip(np.append(x - fine_step / 2, x[-1] + fine_step / 2), x_model[0], x_model[-1])
    window = slice(max(np.searchsorted(x_model, edges[0]) - 1, 0), np.searchsorted(x_model, edges[-1]) + 1)
    binned = bin_average(x_model[window], theta[:, window], edges)
    out = np.empty((theta.shape[0], n), dtype=np.float64)
    for term, row in enumerate(binned):
        fine = gaussian_filter1d(row, sigma / fine_step, mode="nearest", truncate=TRUNCATE)
        out[term] = fine[pad : pad + (n - 1) * sub + 1 : sub]
    return out


def bin_average(x: np.ndarray, values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Mean over each bin [edges[k], edges[k+1]] of the linear interpolant of ``values`` (rows,
    points) given at ``x``: exact integrals, so flux is conserved whatever the two samplings."""
    values = np.asarray(values, dtype=np.float64)
    dx = np.diff(x)
    cumulative = np.concatenate([np.zeros((len(values), 1)), np.cumsum(0.5 * (values[:, 1:] + values[:, :-1]) * dx, axis=1)], axis=1)
    j = np.clip(np.searchsorted(x, edges, side="right") - 1, 0, len(x) - 2)
    t = edges - x[j]
    slope = (values[:, j + 1] - values[:, j]) / dx[j]
    integral = cumulative[:, j] + values[:, j] * t + 0.5 * slope * t * t
    return np.diff(integral, axis=1) / np.diff(edges)
