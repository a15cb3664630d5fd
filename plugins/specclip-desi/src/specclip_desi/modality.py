"""The ``desi`` modality: DESI spectra continuum-normalised on LAMOST's model grid, 4000-5600 A."""

from __future__ import annotations

import numpy as np

from specclip_core.api import Modality, Spectra
from specclip_desi.continuum import fit_continuum
from specclip_desi.grid import MODEL_WAVELENGTH
from specclip_desi.instrument import INSTRUMENT

FILL_VALUE = 1.0
"""Normalised flux of masked pixels: the continuum level."""


def interpolation(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(left index, weight of the right neighbour, outside) of linear interpolation from ``source`` onto ``target``."""
    position = np.interp(target, source, np.arange(source.size, dtype=np.float64))
    left = np.clip(np.floor(position).astype(np.int64), 0, source.size - 2)
    return left, position - left, (target < source[0]) | (target > source[-1])


def _reject_empty(ids: np.ndarray, bad: np.ndarray, why: str) -> None:
    empty = bad.all(axis=1)
    if empty.any():
        raise ValueError(f"desi spectrum {', '.join(ids[empty][:10])}: no usable pixel in 4000-5600 A ({why})")


class Desi(Modality):
    """DESI: upper-envelope continuum of the blue arm (:mod:`specclip_desi.continuum`), flux and ivar
    divided by it (``ivar * continuum**2``), interpolated onto 1462 pixels from 4000 A every 1e-4 dex
    (a model pixel is masked when a native pixel it draws on is; the variance is interpolated); stats
    are the mean and standard deviation of the normalised flux over unmasked pixels."""

    name = "desi"
    description = "DESI spectra, continuum-normalised, 4000-5600 A, 1462 pixels (LAMOST's model grid)"
    wavelength = MODEL_WAVELENGTH
    stats_names = ("mean", "std")
    default_tokenizer = {"name": "windows", "size": 20, "stride": 10}
    default_encoder = {"name": "masked_transformer", "size": "small"}
    encoder_tokenizers = {"mlp_autoencoder": {"name": "vector"}}
    instrument = INSTRUMENT

    def preprocess(self, spectra: Spectra) -> Spectra:
        native = spectra.wavelength
        if native.size < 2 or np.any(np.diff(native) <= 0):
            raise ValueError(f"desi spectra {', '.join(spectra.ids[:5])}: wavelength grid must increase")
        with np.errstate(invalid="ignore"):
            usable = ~spectra.mask & np.isfinite(spectra.flux) & np.isfinite(spectra.ivar) & (spectra.ivar > 0)
        left, weight, outside = interpolation(native, self.wavelength)

        def model_bad(bad: np.ndarray) -> np.ndarray:
            return (bad[:, left] & (weight < 1.0)) | (bad[:, left + 1] & (weight > 0.0)) | outside

        def onto_model(values: np.ndarray) -> np.ndarray:
            return (1.0 - weight) * values[:, left] + weight * values[:, left + 1]

        _reject_empty(spectra.ids, model_bad(~usable), "all masked or outside the spectrum")
        continuum = fit_continuum(native, spectra.flux, usable)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            fitted = np.isfinite(continuum) & (continuum > 0)
            bad = ~(usable & fitted)
            flux = np.where(bad, FILL_VALUE, spectra.flux / np.where(fitted, continuum, 1.0))
            variance = np.where(bad, 0.0, 1.0 / np.where(bad, 1.0, spectra.ivar * np.where(fitted, continuum, 1.0) ** 2))
            masked = model_bad(bad)
            model_flux = onto_model(flux)
            model_variance = onto_model(variance)
            model_ivar = np.where(masked, 0.0, 1.0 / np.where(masked, 1.0, model_variance))
        masked |= ~np.isfinite(model_flux) | ~np.isfinite(model_ivar) | (model_ivar <= 0)
        _reject_empty(spectra.ids, masked, "after continuum normalisation")
        model_flux = np.where(masked, FILL_VALUE, model_flux).astype(np.float32)
        model_ivar = np.where(masked, 0.0, model_ivar).astype(np.float32)
        good = ~masked
        counts = good.sum(axis=1)
        mean = np.where(good, model_flux, 0.0).sum(axis=1) / counts
        std = np.sqrt(np.where(good, (model_flux - mean[:, None]) ** 2, 0.0).sum(axis=1) / counts)
        return Spectra(self.wavelength, model_flux, model_ivar, masked, spectra.ids, spectra.meta, np.stack([mean, std], axis=1))
