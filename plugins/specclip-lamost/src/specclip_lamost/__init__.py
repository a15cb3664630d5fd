"""LAMOST low-resolution spectra for specclip.

Provides the modality ``lamost_lrs`` (alias ``lamost``): the SpecCLIP paper's continuum
normalisation (Appendix B) on 4000-5600 A, 1462 pixels at 1e-4 dex; readers for LAMOST LRS
``spec-*.fits(.gz)`` files in the DR8+ COADD-table layout and the older 5 x N image layout; and a
writer of DR8+-style files (used to put simulated spectra through the readers).
"""

from specclip_lamost.continuum import fit_continuum
from specclip_lamost.grid import INSTRUMENT, MODEL_WAVELENGTH
from specclip_lamost.modality import LamostLRS
from specclip_lamost.readers import LamostCoaddReader, LamostImageReader, read_lamost
from specclip_lamost.writer import LamostCoaddWriter

__all__ = ["INSTRUMENT", "MODEL_WAVELENGTH", "LamostCoaddReader", "LamostCoaddWriter", "LamostImageReader", "LamostLRS", "fit_continuum", "read_lamost"]
