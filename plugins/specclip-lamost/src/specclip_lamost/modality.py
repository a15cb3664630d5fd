"""The LAMOST low-resolution modalities: ``lamost_lrs``, continuum-normalised on the paper's 4000-5600 A,
and ``lamost_lrs_full``, the same normalisation on 3850-8900 A (both arms)."""

from __future__ import annotations

import numpy as np

from specclip_core.api import Modality, Spectra
from specclip_lamost.continuum import raw_continuum
from specclip_lamost.grid import FULL_WAVELENGTH, INSTRUMENT, MODEL_WAVELENGTH
from specclip_lamost.resample import Interpolation

FILL_VALUE = 1.0
"""Normalised flux given to masked pixels: the continuum level."""


def usable_pixels(spectra: Spectra) -> np.ndarray:
    """True where a pixel can be used: not masked, finite flux, finite positive inverse variance."""
    ivar = spectra.ivar
    return ~spectra.mask & np.isfinite(spectra.flux) & np.isfinite(ivar) & (ivar > 0)


def _reject_empty(modality: Modality, ids: np.ndarray, bad: np.ndarray, what: str) -> None:
    empty = bad.all(axis=1)
    if empty.any():
        names = ", ".join(ids[empty][:10])
        span = f"{modality.wavelength[0]:.0f}-{modality.wavelength[-1]:.0f} A"
        raise ValueError(f"{modality.name} spectrum {names}: no usable pixel in {span} ({what})")


class LamostLRS(Modality):
    """LAMOST LRS: continuum fit of the SpecCLIP paper (Appendix B) on the native grid, flux and
    inverse variance divided by it (``ivar * continuum**2``), interpolated onto 1462 pixels from
    4000 A every 1e-4 dex; stats are the mean and standard deviation of the normalised flux."""

    name = "lamost_lrs"
    aliases = ("lamost",)
    description = "LAMOST low-resolution spectra, continuum-normalised, 4000-5600 A, 1462 pixels"
    wavelength = MODEL_WAVELENGTH
    stats_names = ("mean", "std")
    default_tokenizer = {"name": "windows", "size": 20, "stride": 10}
    default_encoder = {"name": "masked_transformer", "size": "small"}
    instrument = INSTRUMENT

    def preprocess(self, spectra: Spectra) -> Spectra:
        wavelength = spectra.wavelength
        if wavelength.size < 2 or np.any(np.diff(wavelength) <= 0):
            raise ValueError(f"{self.name} spectra {', '.join(spectra.ids[:5])}: wavelength grid must increase")
        usable = usable_pixels(spectra)
        onto_model = Interpolation.between(wavelength, self.wavelength)
        _reject_empty(self, spectra.ids, onto_model.bad(~usable), "all masked or outside the spectrum")

        continuum = raw_continuum(wavelength, spectra.flux, usable)
        fitted = continuum > 0  # the paper sets a continuum <= 0 to 1; such pixels are also masked here
        continuum = np.where(fitted, continuum, 1.0)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            flux = spectra.flux / continuum
            ivar = spectra.ivar * continuum**2
        bad = ~(usable & fitted & np.isfinite(flux) & np.isfinite(ivar))

        model_bad = onto_model.bad(bad)
        model_flux = onto_model.values(np.where(bad, FILL_VALUE, flux))
        model_ivar = onto_model.ivar(ivar, bad)
        model_bad |= ~np.isfinite(model_flux) | ~np.isfinite(model_ivar) | (model_ivar <= 0)
        _reject_empty(self, spectra.ids, model_bad, "after continuum normalisation")

        model_flux = np.where(model_bad, FILL_VALUE, model_flux).astype(np.float32)
        model_ivar = np.where(model_bad, 0.0, model_ivar).astype(np.float32)
        good = ~model_bad
        counts = good.sum(axis=1)
        mean = np.where(good, model_flux, 0.0).sum(axis=1) / counts
        std = np.sqrt(np.where(good, (model_flux - mean[:, None]) ** 2, 0.0).sum(axis=1) / counts)
        return Spectra(
            wavelength=self.wavelength,
            flux=model_flux,
            ivar=model_ivar,
            mask=model_bad,
            ids=spectra.ids,
            meta=spectra.meta,
            stats=np.stack([mean, std], axis=1),
        )


class LamostLRSFull(LamostLRS):
    """LAMOST LRS on the whole range of both arms: the same continuum fit and normalisation as
    ``lamost_lrs``, interpolated onto 3640 pixels from 3850 A to 8899 A every 1e-4 dex (the
    ``lamost_lrs`` grid is its pixels 166-1627, so both give the same flux there). A second modality
    rather than a setting of ``lamost_lrs``: a store, an encoder and a head are tied to one modality's
    grid, so a model trained on the whole range can never be given 4000-5600 A spectra by mistake,
    and one store can hold both. The files are read by the ``lamost_lrs`` readers."""

    name = "lamost_lrs_full"
    aliases = ("lamost_full",)
    file_modality = "lamost_lrs"
    description = "LAMOST low-resolution spectra, continuum-normalised, 3850-8900 A (both arms), 3640 pixels"
    wavelength = FULL_WAVELENGTH
