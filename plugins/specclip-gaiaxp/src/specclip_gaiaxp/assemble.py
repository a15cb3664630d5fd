"""Raw XP :class:`Spectra` from flux and error arrays, as every XP reader returns them."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from specclip_core.api import ReaderError, Spectra


def raw_spectra(
    path: Path, wavelength: np.ndarray, flux: np.ndarray, error: np.ndarray, ids: np.ndarray, meta: Mapping[str, np.ndarray]
) -> Spectra:
    """Spectra with ``ivar = 1 / error**2``; pixels with non-finite flux or no positive, finite error are masked.

    A source listed more than once is kept once when its rows are identical; rows of one source
    that disagree are an inconsistent file (ReaderError).
    """
    flux = np.asarray(flux, dtype=np.float64)
    error = np.asarray(error, dtype=np.float64)
    ids = np.asarray(ids).astype(str)
    meta = {key: np.asarray(values) for key, values in meta.items()}
    keep = _first_of_identical(path, ids, flux, error, meta)
    flux, error, ids = flux[keep], error[keep], ids[keep]
    meta = {key: values[keep] for key, values in meta.items()}
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ivar = (1.0 / error**2).astype(np.float32)
    mask = ~np.isfinite(flux) | ~np.isfinite(ivar) | ~(ivar > 0)
    return Spectra(wavelength, np.where(mask, np.nan, flux), np.where(mask, 0.0, ivar), mask, ids, meta)


def _first_of_identical(path: Path, ids: np.ndarray, flux: np.ndarray, error: np.ndarray, meta: Mapping[str, np.ndarray]) -> np.ndarray:
    unique, first, counts = np.unique(ids, return_index=True, return_counts=True)
    if (counts == 1).all():
        return np.arange(len(ids))
    for sid, row in zip(unique[counts > 1], first[counts > 1], strict=True):
        for other in np.flatnonzero(ids == sid):
            same = _equal(flux[other], flux[row]) and _equal(error[other], error[row])
            if not (same and all(_equal(values[other], values[row]) for values in meta.values())):
                raise ReaderError(path, f"source {sid} appears {int((ids == sid).sum())} times with different data")
    return np.sort(first)


def _equal(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype.kind == "f" or b.dtype.kind == "f":
        return bool(np.array_equal(a, b, equal_nan=True))
    return bool(np.array_equal(a, b))
