"""The XP sampling grid, the flux unit of raw XP spectra, and resampling onto the grid.

Gaia DR3 samples XP spectra at 336-1020 nm every 2 nm (343 points): the archive's sampled
spectra, ``gaiaxpy``'s default sampling and the APOGEE x XP library all use it. specclip grids
are in Angstrom, so the model grid is 3360, 3380, ..., 10200 A.
"""

from __future__ import annotations

import numpy as np

SAMPLING_NM = np.arange(336.0, 1021.0, 2.0)
WAVELENGTH = SAMPLING_NM * 10.0
REFERENCE_WAVELENGTH = 5500.0
FLUX_UNIT = 1e-17  # W m-2 nm-1


def to_flux_unit(values: np.ndarray) -> np.ndarray:
    """Fluxes in W m-2 nm-1 (``gaiaxpy``'s unit) expressed in :data:`FLUX_UNIT`.

    The rescaling keeps inverse variances of faint sources inside float32 range.
    """
    return np.asarray(values, dtype=np.float64) / FLUX_UNIT


def resample(wavelength: np.ndarray, flux: np.ndarray, error: np.ndarray, target: np.ndarray = WAVELENGTH) -> tuple[np.ndarray, np.ndarray]:
    """Linear interpolation of flux rows ``[N, L]`` and their errors onto ``target``.

    Errors are interpolated linearly too, as for fully correlated neighbours: XP samples are
    strongly correlated (55 basis functions per band), so the independent-error formula would
    understate them. Target points outside ``wavelength``, or between two samples one of which is
    not finite, get NaN.
    """
    wavelength = np.asarray(wavelength, dtype=np.float64)
    flux = np.atleast_2d(np.asarray(flux, dtype=np.float64))
    error = np.atleast_2d(np.asarray(error, dtype=np.float64))
    if wavelength.shape == target.shape and np.array_equal(wavelength, target):
        return flux, error
    order = np.argsort(wavelength)
    wavelength, flux, error = wavelength[order], flux[:, order], error[:, order]
    right = np.clip(np.searchsorted(wavelength, target), 1, wavelength.size - 1)
    left = right - 1
    span = wavelength[right] - wavelength[left]
    weight = np.where(span > 0, (target - wavelength[left]) / np.where(span > 0, span, 1.0), 0.0)
    inside = (target >= wavelength[0]) & (target <= wavelength[-1])

    def interpolate(values: np.ndarray) -> np.ndarray:
        lo, hi = values[:, left], values[:, right]
        out = np.where(weight == 0, lo, np.where(weight == 1, hi, lo * (1.0 - weight) + hi * weight))
        return np.where(inside, out, np.nan)

    return interpolate(flux), interpolate(error)
