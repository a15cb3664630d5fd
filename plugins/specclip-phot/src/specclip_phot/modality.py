"""The ``photometry`` modality: six magnitudes preprocessed into colours and a brightness.

Preprocessing keeps the bands' shape and brightness apart: the flux of each band becomes its
magnitude minus the mean magnitude of the star's usable bands (five independent colours of the six
bands), and the one statistic is that mean magnitude. A band without a finite magnitude is masked
(flux 0, inverse variance 0), and the mean is taken over the others. Inverse variances are those of
the magnitudes (1 / mag error^2).
"""

from __future__ import annotations

import numpy as np

from specclip_core.api import Modality, Spectra
from specclip_phot.bands import BANDS, WAVELENGTH


class PhotometryModality(Modality):
    name = "photometry"
    wavelength = WAVELENGTH
    stats_names = ("mean_mag",)
    default_encoder = {"name": "mlp_autoencoder", "size": "small"}
    aliases = ("phot",)
    description = f"broad-band magnitudes {', '.join(BANDS)} as colours (magnitude - the star's mean magnitude) and the mean magnitude"

    def preprocess(self, spectra: Spectra) -> Spectra:
        if spectra.flux.shape[1] != WAVELENGTH.size or not np.allclose(spectra.wavelength, WAVELENGTH):
            raise ValueError(f"photometry: expected the {WAVELENGTH.size} bands {BANDS} at {WAVELENGTH.tolist()} A, got {spectra.wavelength.size} points")
        magnitude = spectra.flux.astype(np.float64)
        mask = spectra.mask | ~np.isfinite(magnitude) | ~np.isfinite(spectra.ivar) | (spectra.ivar <= 0)
        dead = mask.all(axis=1)
        if dead.any():
            raise ValueError(f"photometry: no usable magnitude for {', '.join(spectra.ids[dead][:5])}")
        usable = np.where(mask, 0.0, magnitude)
        mean = usable.sum(axis=1) / (~mask).sum(axis=1)
        colours = np.where(mask, 0.0, magnitude - mean[:, None])
        ivar = np.where(mask, 0.0, spectra.ivar)
        return Spectra(WAVELENGTH, colours.astype(np.float32), ivar.astype(np.float32), mask, spectra.ids, spectra.meta, mean[:, None].astype(np.float32))
