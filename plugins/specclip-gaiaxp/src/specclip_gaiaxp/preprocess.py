"""XP preprocessing (paper sec. 2.2 and footnote 4): flux divided by the flux at 550 nm.

For a normalised flux ``n = f / f550`` the error follows the standard propagation for a ratio of
independent quantities, ``sigma_n = |n| * sqrt((sigma / f)**2 + (sigma550 / f550)**2)``. It is
computed in the equivalent form ``sqrt((sigma / f550)**2 + (f * sigma550 / f550**2)**2)``, which is
also defined where ``f`` is zero (faint XP spectra cross zero at the blue end).
"""

from __future__ import annotations

import numpy as np

from specclip_core.api import Spectra
from specclip_gaiaxp.grid import REFERENCE_WAVELENGTH, WAVELENGTH, resample

MODALITY = "gaia_xp"
REFERENCE_INDEX = int(np.flatnonzero(WAVELENGTH == REFERENCE_WAVELENGTH)[0])
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def errors_of(spectra: Spectra) -> np.ndarray:
    """Flux errors ``1 / sqrt(ivar)``; NaN where a pixel is masked or has no positive inverse variance."""
    ivar = spectra.ivar.astype(np.float64)
    good = np.isfinite(ivar) & (ivar > 0) & ~spectra.mask
    return np.where(good, 1.0 / np.sqrt(np.where(good, ivar, 1.0)), np.nan)


def normalise_at_550(flux: np.ndarray, error: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Normalised flux, its error and the usable-pixel mask, for spectra on the XP grid.

    A pixel is usable where flux and error are finite, the error is positive and the normalised
    inverse variance fits in float32. Raises ``ValueError`` naming the first spectrum with no
    usable pixel or no usable, positive flux at 550 nm.
    """
    measured = np.isfinite(flux) & np.isfinite(error) & (error > 0)
    f550, s550 = flux[:, REFERENCE_INDEX], error[:, REFERENCE_INDEX]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        scale, relative = f550[:, None], (s550 / f550)[:, None]
        normalised = flux / scale
        sigma = np.hypot(error / scale, normalised * relative)
        usable = measured & np.isfinite(sigma) & (sigma > 0) & (sigma**-2.0 < _FLOAT32_MAX)
    empty = ~measured.any(axis=1)
    no_reference = ~((f550 > 0) & usable[:, REFERENCE_INDEX])
    bad = np.flatnonzero(empty | no_reference)
    if bad.size:
        row = bad[0]
        if empty[row]:
            raise ValueError(f"{MODALITY} spectrum {ids[row]}: no usable pixel (flux or error not finite, or error not positive)")
        raise ValueError(
            f"{MODALITY} spectrum {ids[row]}: no usable flux at 550 nm (flux {f550[row]:.4g}, error {s550[row]:.4g}; "
            "both must be finite and positive)"
        )
    return normalised, sigma, usable


def fill_masked(flux: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """Unusable pixels replaced by linear interpolation of their usable neighbours (edges: nearest)."""
    filled = np.where(usable, flux, 0.0)
    for row in np.flatnonzero(~usable.all(axis=1)):
        good = usable[row]
        filled[row] = np.interp(WAVELENGTH, WAVELENGTH[good], flux[row, good])
    return filled


def mean_and_std(flux: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """Per-spectrum mean and standard deviation of the usable normalised flux, ``[N, 2]``."""
    weight = usable.astype(np.float64)
    count = weight.sum(axis=1)
    mean = (flux * weight).sum(axis=1) / count
    std = np.sqrt((((flux - mean[:, None]) ** 2) * weight).sum(axis=1) / count)
    return np.stack([mean, std], axis=1)


def preprocess(spectra: Spectra) -> Spectra:
    """Spectra on the XP grid, normalised at 550 nm, with ivar, mask and (mean, std) stats."""
    raw_flux = np.where(spectra.mask, np.nan, spectra.flux.astype(np.float64))
    flux, error = resample(spectra.wavelength, raw_flux, errors_of(spectra))
    normalised, sigma, usable = normalise_at_550(flux, error, spectra.ids)
    ivar = np.where(usable, 1.0 / np.where(usable, sigma, 1.0) ** 2, 0.0)
    filled = fill_masked(normalised, usable)
    return Spectra(WAVELENGTH, filled, ivar, ~usable, spectra.ids, spectra.meta, mean_and_std(filled, usable))
