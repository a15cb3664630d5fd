"""LAMOST low-resolution spectra for specclip.

Provides the modality ``lamost_lrs`` (alias ``lamost``): the SpecCLIP paper's continuum
normalisation (Appendix B) on 4000-5600 A, 1462 pixels at 1e-4 dex, and ``lamost_lrs_full`` (alias
``lamost_full``), the same on 3850-8900 A (both arms, 3640 pixels); readers for LAMOST LRS
``spec-*.fits(.gz)`` files in the DR8+ COADD-table layout and the older 5 x N image layout; and a
writer of DR8+-style files (used to put simulated spectra through the readers).

The names below are imported on first use, so that loading the plugin (``specclip --help`` does) stays cheap.
"""

import importlib

__all__ = ["INSTRUMENT", "MODEL_WAVELENGTH", "LamostCoaddReader", "LamostCoaddWriter", "LamostImageReader", "LamostLRS", "fit_continuum", "read_lamost"]
_MODULE_OF = {
    "fit_continuum": "continuum",
    "INSTRUMENT": "grid",
    "MODEL_WAVELENGTH": "grid",
    "LamostLRS": "modality",
    "LamostCoaddReader": "readers",
    "LamostImageReader": "readers",
    "read_lamost": "readers",
    "LamostCoaddWriter": "writer",
}


def __getattr__(name):
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_MODULE_OF[name]}"), name)
