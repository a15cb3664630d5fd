"""Gaussian line-spread function of constant resolving power, applied to per-pixel coefficients.

At constant R = lambda / FWHM the kernel has a constant width in ``x = log10(lambda)``:
sigma_x = 1 / (R * 2 sqrt(2 ln 2) * ln 10). Coefficients given on the model's linear 0.1 A grid are
averaged into the bins of a uniform x grid (the exact integral of their linear interpolant over each
bin, so no flux is lost or made between the grids), convolved there with
``scipy.ndimage.gaussian_filter1d`` (a normalised kernel, so flux and equivalent widths are
conserved) and decimated onto the requested uniform x grid. Everything is
linear in the coefficients, so convolving each polynomial term's spectrum once is exact for any
labels.

An instrument with several arms (:class:`ArmResolution`) has one resolving power per arm: each arm's
stretch of the grid is convolved at its own R, and where two arms overlap the two results are
blended with weights falling linearly from 1 to 0 across the overlap (a weighted mean of two
spectra is the spectrum seen through the same mean of their two kernels, which is what merging the
arms' pixels does), so the simulated spectrum is continuous at every arm boundary.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy.ndimage import gaussian_filter1d

FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
TRUNCATE = 5.0  # kernel half-width in sigma


def sigma_log10(resolving_power: float) -> float:
    """Gaussian sigma in log10(lambda) of an LSF with FWHM = lambda / R."""
    return 1.0 / (resolving_power * FWHM_PER_SIGMA * math.log(10.0))


class ArmResolution(BaseModel):
    """One arm of a spectrograph: its wavelength range (A, the instrument's own wavelengths) and
    resolving power."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    start: float = Field(gt=0)
    stop: float = Field(gt=0)
    resolving_power: float = Field(gt=0)


def arm_weights(x: np.ndarray, bounds: Sequence[tuple[float, float]]) -> np.ndarray:
    """(arms, points) weights of each arm at ``x``: 1 inside its own stretch, falling linearly to 0
    across an overlap with the next arm, the first and last arms extended beyond the ends; columns
    sum to 1. ``bounds``: (start, stop) per arm in the units of ``x``, in increasing order, each arm
    starting inside or at the end of the one before."""
    starts, stops = np.array([b[0] for b in bounds]), np.array([b[1] for b in bounds])
    if np.any(stops <= starts) or np.any(np.diff(starts) <= 0) or np.any(starts[1:] > stops[:-1]) or np.any(np.diff(stops) <= 0):
        raise ValueError(f"arms must be increasing and each must start inside or at the end of the one before, got {list(map(tuple, bounds))}")
    weights = np.ones((len(bounds), len(x)))
    for i in range(len(bounds)):
        if i > 0:  # rising across the overlap with the arm before, 0 before it
            width = stops[i - 1] - starts[i]
            weights[i] *= np.clip((x - starts[i]) / width, 0.0, 1.0) if width > 0 else (x >= starts[i])
        if i < len(bounds) - 1:  # falling across the overlap with the arm after, 0 past it
            width = stops[i] - starts[i + 1]
            weights[i] *= np.clip((stops[i] - x) / width, 0.0, 1.0) if width > 0 else (x < starts[i + 1])
    return weights


def convolve_arms(
    wavelength: np.ndarray, theta: np.ndarray, arms: Sequence[tuple[float, float, float]], x0: float, step: float, n: int
) -> np.ndarray:
    """Like :func:`convolve_coefficients`, with one resolving power per arm: ``arms`` holds (x start,
    x stop, R) per arm, x = log10(lambda) on the same axis as the output grid; see the module docstring."""
    x = x0 + step * np.arange(n)
    weights = arm_weights(x, [(a, b) for a, b, _ in arms])
    out = np.zeros((theta.shape[0], n), dtype=np.float64)
    for weight, (_, _, resolving_power) in zip(weights, arms, strict=True):
        used = np.flatnonzero(weight > 0)
        if len(used) == 0:
            continue
        lo, hi = used[0], used[-1] + 1
        out[:, lo:hi] += weight[lo:hi] * convolve_coefficients(wavelength, theta, resolving_power, x[lo], step, hi - lo)
    return out


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
