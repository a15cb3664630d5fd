"""Continuum normalisation of DESI spectra on the blue arm, in the manner of the SpecCLIP paper's
Appendix B (so that DESI spectra look like the LAMOST spectra a pretrained encoder has seen):

1. unusable pixels are bridged by linear interpolation between usable neighbours;
2. median filter of 7 pixels;
3. on 3850-5700 A (inside the B arm, 3600-5800 A), 10 times: fit a 5th-order polynomial and lift
   every point below it onto it; the continuum is the last fit (an upper envelope).

Only the fit range has a continuum; elsewhere it is NaN (the model grid, 4000-5600 A, lies inside).
"""

from __future__ import annotations

import numpy as np
from numpy.polynomial import legendre
from scipy.ndimage import median_filter

FIT_RANGE = (3850.0, 5700.0)
"""Where the envelope is fitted: the B arm without its low-throughput blue end and the arm overlap."""
MEDIAN_WIDTH = 7
DEGREE = 5
ITERATIONS = 10


def bridge(wavelength: np.ndarray, flux: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """Flux with unusable pixels interpolated from usable neighbours (rows with none: zeros)."""
    out = np.where(usable, flux, 0.0)
    for row in np.flatnonzero(~usable.all(axis=1) & usable.any(axis=1)):
        good = usable[row]
        out[row, ~good] = np.interp(wavelength[~good], wavelength[good], flux[row, good])
    return out


def fit_continuum(wavelength: np.ndarray, flux: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """Continuum (N, L) of ``flux`` (N, L) on the increasing grid ``wavelength`` (L); NaN outside
    :data:`FIT_RANGE`. One pseudo-inverse per grid: each iteration is two matrix products."""
    wavelength = np.asarray(wavelength, dtype=np.float64)
    flux = np.atleast_2d(np.asarray(flux, dtype=np.float64))
    inside = (wavelength >= FIT_RANGE[0]) & (wavelength <= FIT_RANGE[1])
    continuum = np.full(flux.shape, np.nan)
    if inside.sum() <= DEGREE + 1:
        return continuum
    x = wavelength[inside]
    vander = legendre.legvander((2.0 * x - (x[0] + x[-1])) / (x[-1] - x[0]), DEGREE)
    solve = np.linalg.pinv(vander).T

    def fit(values: np.ndarray) -> np.ndarray:
        return (values @ solve) @ vander.T

    smoothed = median_filter(bridge(wavelength, flux, np.atleast_2d(usable)), size=(1, MEDIAN_WIDTH), mode="nearest")[:, inside]
    for _ in range(ITERATIONS):
        smoothed = np.maximum(smoothed, fit(smoothed))
    continuum[:, inside] = fit(smoothed)
    return continuum
