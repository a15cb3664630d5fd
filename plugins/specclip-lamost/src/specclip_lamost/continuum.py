"""The continuum fit of the SpecCLIP paper (Appendix B), vectorised over spectra that share one grid.

Steps, on the full native range:

1. median filter of 7 pixels;
2. split into a blue segment (3850-5700 A) and a red segment (from 6100 A); Savitzky-Golay filter
   (window 3) on each;
3. blue: a 5th-order polynomial locates the flux peak; when it lies blue-ward of 4500 A (hot stars,
   whose Balmer lines are wide) the three Balmer windows 4030-4160, 4270-4410 and 4800-4940 A are
   bridged by a straight line between the local maxima at their edges; then 10 times: fit a
   5th-order polynomial and lift every point below the fit onto it;
4. red: up to 8 times, fit a 4th-order polynomial and replace points below the fit, or more than
   3 sigma above it, by the fit;
5. assemble: blue fit, red fit, a straight bridge across the 5700-6100 A gap between the
   spectrograph's two arms, the median-filtered flux outside the segments (below 3850 A); a
   continuum <= 0 becomes 1.

The paper's text lost several numbers; the values below are our choices (see the README).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numpy.polynomial import polynomial as P
from scipy.ndimage import median_filter, uniform_filter1d

MEDIAN_WIDTH = 7
"""Pixels of the median filter (paper)."""

SAVGOL_WINDOW = 3
SAVGOL_ORDER = 1
"""Savitzky-Golay window (paper) and order (ours: with window 3, order 2 would return the input).
A first-order fit over 3 pixels, evaluated at the middle one, is their mean: the filter is applied
as scipy.ndimage's 3-pixel moving average (equal to ``savgol_filter`` to 1e-14; importing
scipy.signal took 0.8-1.1 s in each reader process of ``specclip predict``)."""

BLUE_RANGE = (3850.0, 5700.0)
RED_START = 6100.0
"""Segment limits (ours). The LAMOST dichroic joins the blue and red arms near 5700-6100 A, where
the flux calibration is least reliable, so neither polynomial is fitted across it. Below 3850 A the
throughput is low and the Balmer jump and the crowded high Balmer lines of hot stars are no
continuum a 5th-order polynomial can follow; starting there lowered the median difference from the
pipeline's normalisation of A stars from 0.016 to 0.011."""

BLUE_DEGREE = 5
BLUE_ITERATIONS = 10
"""Order and iterations of the blue upper-envelope fit (paper)."""

PEAK_WAVELENGTH = 4500.0
"""The Balmer windows are bridged when the first blue fit peaks blue-ward of this (ours)."""

BALMER_WINDOWS = ((4030.0, 4160.0), (4270.0, 4410.0), (4800.0, 4940.0))
"""Continuum windows around H-delta, H-gamma and H-beta (paper)."""

WINDOW_EDGE = 10.0
"""Half-width (A) of the interval at each window edge where the local flux maximum is taken (ours)."""

RED_DEGREE = 4
RED_ITERATIONS = 8
RED_CLIP_SIGMA = 3.0
"""Order, maximum iterations and upper clipping threshold (ours; in standard deviations of the
residuals) of the red fit."""

MIN_SEGMENT_PIXELS = 100
"""A segment with fewer pixels on the grid is not fitted."""


def fill_unusable(wavelength: np.ndarray, flux: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """Flux with unusable pixels replaced by linear interpolation between usable neighbours.

    Rows without any usable pixel become zeros.
    """
    filled = np.where(usable, flux, 0.0).astype(np.float64)
    for row in np.flatnonzero(~usable.all(axis=1) & usable.any(axis=1)):
        good = usable[row]
        filled[row, ~good] = np.interp(wavelength[~good], wavelength[good], flux[row, good])
    return filled


class PolynomialFit:
    """Least-squares polynomials of one degree on one wavelength grid, for many spectra at once.

    The fit is linear in the flux, so the pseudo-inverse of the Vandermonde matrix is computed once
    and each fit of N spectra is two matrix products (the same result as ``polyfit`` row by row).
    Wavelengths are mapped onto [-1, 1] to keep the Vandermonde matrix well conditioned.
    """

    def __init__(self, wavelength: np.ndarray, degree: int):
        low, high = wavelength[0], wavelength[-1]
        vander = P.polyvander((2.0 * wavelength - (low + high)) / (high - low), degree)
        self.coefficients_of = np.linalg.pinv(vander).T  # (L, degree + 1)
        self.evaluate = vander.T  # (degree + 1, L)

    def __call__(self, flux: np.ndarray) -> np.ndarray:
        """The fitted polynomial of each row of ``flux`` (N, L), evaluated on the grid."""
        return (flux @ self.coefficients_of) @ self.evaluate


FITS_KEPT = 64
"""Segment grids whose :class:`PolynomialFit` is kept (files of one survey share a few grids)."""


def polynomial_fit(wavelength: np.ndarray, degree: int) -> PolynomialFit:
    """The :class:`PolynomialFit` of ``degree`` on ``wavelength``, made once per distinct grid (a
    survey's files share a few; the pseudo-inverse costs more than fitting one spectrum)."""
    return _kept_fit(np.asarray(wavelength, dtype=np.float64).tobytes(), degree)


@lru_cache(maxsize=FITS_KEPT)
def _kept_fit(grid: bytes, degree: int) -> PolynomialFit:
    return PolynomialFit(np.frombuffer(grid, dtype=np.float64), degree)


def _bridge_balmer_windows(wavelength: np.ndarray, flux: np.ndarray) -> np.ndarray:
    """Straight lines across the Balmer windows between the flux maxima found at their edges."""
    bridged = flux.copy()
    for low, high in BALMER_WINDOWS:
        inside = (wavelength >= low) & (wavelength <= high)
        near_low = np.abs(wavelength - low) <= WINDOW_EDGE
        near_high = np.abs(wavelength - high) <= WINDOW_EDGE
        if not (inside.any() and near_low.any() and near_high.any()):
            continue
        left = flux[:, near_low].max(axis=1, keepdims=True)
        right = flux[:, near_high].max(axis=1, keepdims=True)
        fraction = (wavelength[inside] - low) / (high - low)
        bridged[:, inside] = left + (right - left) * fraction
    return bridged


def blue_continuum(wavelength: np.ndarray, smoothed: np.ndarray) -> np.ndarray:
    """Step 3: the iterative 5th-order upper envelope of the smoothed blue segment."""
    polyfit = polynomial_fit(wavelength, BLUE_DEGREE)
    first = polyfit(smoothed)
    hot = wavelength[np.argmax(first, axis=1)] < PEAK_WAVELENGTH
    lifted = np.where(hot[:, None], _bridge_balmer_windows(wavelength, smoothed), smoothed)
    for _ in range(BLUE_ITERATIONS):
        lifted = np.maximum(lifted, polyfit(lifted))
    return polyfit(lifted)


def red_continuum(wavelength: np.ndarray, smoothed: np.ndarray) -> np.ndarray:
    """Step 4: the 4th-order fit with points below it, or far above it, replaced by the fit."""
    polyfit = polynomial_fit(wavelength, RED_DEGREE)
    clipped = smoothed.copy()
    fit = polyfit(clipped)
    for _ in range(RED_ITERATIONS):
        sigma = np.std(clipped - fit, axis=1, keepdims=True)
        outlier = (clipped < fit) | (clipped > fit + RED_CLIP_SIGMA * sigma)
        if not outlier.any():
            break
        clipped = np.where(outlier, fit, clipped)
        fit = polyfit(clipped)
    return fit


def raw_continuum(
    wavelength: np.ndarray, flux: np.ndarray, usable: np.ndarray | None = None, blue_range: tuple[float, float] = BLUE_RANGE
) -> np.ndarray:
    """Steps 1-5 without the final replacement: may be <= 0 where a fit fails (see :func:`fit_continuum`)."""
    wavelength = np.asarray(wavelength, dtype=np.float64)
    flux = np.atleast_2d(np.asarray(flux, dtype=np.float64))
    if usable is None:
        usable = np.isfinite(flux)
    flux = fill_unusable(wavelength, flux, np.atleast_2d(usable) & np.isfinite(flux))
    median = median_filter(flux, size=(1, MEDIAN_WIDTH), mode="constant")  # zeros beyond the ends, as scipy.signal.medfilt2d
    continuum = median.copy()
    blue = (wavelength >= blue_range[0]) & (wavelength <= blue_range[1])
    red = wavelength >= RED_START
    fitted = {}
    for name, segment, fit in (("blue", blue, blue_continuum), ("red", red, red_continuum)):
        if segment.sum() < MIN_SEGMENT_PIXELS:
            continue
        smoothed = uniform_filter1d(median[:, segment], SAVGOL_WINDOW, axis=1, mode="nearest")  # the Savitzky-Golay filter of order 1
        continuum[:, segment] = fit(wavelength[segment], smoothed)
        fitted[name] = np.flatnonzero(segment)
    if len(fitted) == 2:
        last_blue, first_red = fitted["blue"][-1], fitted["red"][0]
        gap = slice(last_blue + 1, first_red)
        fraction = (wavelength[gap] - wavelength[last_blue]) / (wavelength[first_red] - wavelength[last_blue])
        start, stop = continuum[:, last_blue, None], continuum[:, first_red, None]
        continuum[:, gap] = start + (stop - start) * fraction
    return continuum


def fit_continuum(
    wavelength: np.ndarray, flux: np.ndarray, usable: np.ndarray | None = None, blue_range: tuple[float, float] = BLUE_RANGE
) -> np.ndarray:
    """Continuum (N, L) of spectra ``flux`` (N, L) on one increasing ``wavelength`` grid (L,).

    ``usable`` (N, L), True for good pixels, lets masked pixels be bridged by interpolation before
    the fit instead of pulling it. ``blue_range`` sets the blue segment (A). A continuum <= 0 is
    replaced by 1, as in the paper.
    """
    continuum = raw_continuum(wavelength, flux, usable, blue_range)
    return np.where(continuum > 0, continuum, 1.0)
