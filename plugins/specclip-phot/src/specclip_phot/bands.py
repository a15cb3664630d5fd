"""The six bands of the photometry modality, in order of wavelength.

Wavelengths (Angstrom) place each band on the modality's grid: the Gaia DR3 passbands' pivot
wavelengths (BP 5110, G 6218, RP 7769; Riello et al. 2021) and the 2MASS isophotal wavelengths
(J 12350, H 16620, Ks 21590; Cohen, Wheaton & Megeath 2003).
"""

from __future__ import annotations

import numpy as np

BANDS = ("BP", "G", "RP", "J", "H", "Ks")
WAVELENGTH = np.array([5110.0, 6218.0, 7769.0, 12350.0, 16620.0, 21590.0])

ARCHIVE_COLUMNS = {"BP": "phot_bp_mean_mag", "G": "phot_g_mean_mag", "RP": "phot_rp_mean_mag", "J": "j_m", "H": "h_m", "Ks": "ks_m"}
"""Band -> magnitude column in the Gaia archive (gaiadr3.gaia_source joined with the 2MASS PSC)."""

ARCHIVE_ERRORS = {"J": "j_msigcom", "H": "h_msigcom", "Ks": "ks_msigcom"}
"""Band -> magnitude error column where the archive gives one (2MASS total errors)."""

LIBRARY_COLUMNS = {"BP": "phot_bp_mean_mag", "G": "phot_g_mean_mag", "RP": "phot_rp_mean_mag", "J": "j", "H": "h", "Ks": "k"}
"""Band -> label column of the apogee-xp store (the APOGEE x XP library's magnitudes)."""

DEFAULT_ERROR = 0.02
"""Magnitude error (mag) assumed for a band given without one: it sets only the inverse variance,
which the heads do not read and denoising pretraining scales its noise by."""
