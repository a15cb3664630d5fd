"""Noise: photon-like variance with a background pedestal, shaped by the instrument's throughput.

In counts, variance = source + background; after flux calibration (dividing by the throughput T)
the flux variance is k * (F + b * F_ref) / T, with F_ref the median flux in the S/N band and b the
background fraction. k is set per spectrum so that the median per-pixel S/N in the band equals the
requested S/N. T (relative, any scale) can be measured from real spectra of the instrument with
:func:`relative_throughput`; without it T = 1 (pure photon-like noise). A background learned from real
spectra (:class:`specclip_sim.empirical.BackgroundNoise`) replaces the pedestal: the variance is then
k * (F / T + F_ref * background), with its own T and a background of the shape of real skies.
"""

from __future__ import annotations

import warnings

import numpy as np


def variance(
    clean: np.ndarray, snr: np.ndarray, in_band: np.ndarray, background_fraction: float, throughput: np.ndarray, background: np.ndarray | None = None
) -> np.ndarray:
    """Per-pixel variance (N, L) of noiseless spectra ``clean`` (N, L) at median S/N ``snr`` (N,) in
    ``in_band``; ``background`` (N, L), relative to each spectrum's median flux in the band, replaces
    the pedestal ``background_fraction / throughput`` when given. A pixel with neither source light nor
    background (a learned background can be zero in places) gets variance 0, which the simulator
    writes as ivar 0 (unusable), and does not count towards the S/N."""
    reference = np.median(clean[:, in_band], axis=1, keepdims=True)
    shape = (clean + background_fraction * reference) / throughput if background is None else clean / throughput + reference * background
    band = shape[:, in_band]
    with np.errstate(divide="ignore", invalid="ignore"):
        per_pixel = np.where(band > 0, clean[:, in_band] / np.sqrt(band), np.nan)
    scale = np.nanmedian(per_pixel, axis=1) / snr
    return scale[:, None] ** 2 * shape


def relative_throughput(flux: np.ndarray, ivar: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Median over real spectra (N, L), all on one grid, of S/N^2 / F per pixel, scaled to a median
    of 1: the throughput T of the noise model, up to the background term. Pixels that no spectrum
    measures get the nearest measured value."""
    good = ~mask & (ivar > 0) & (flux > 0)
    per_pixel = np.where(good, flux * ivar, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows and columns stay NaN
        per_pixel /= np.nanmedian(per_pixel, axis=1, keepdims=True)
        profile = np.nanmedian(per_pixel, axis=0)
    measured = np.isfinite(profile)
    if not measured.any():
        raise ValueError("no pixel with positive flux and ivar in any spectrum")
    index = np.arange(len(profile))
    profile = np.interp(index, index[measured], profile[measured])
    return profile / np.median(profile)
