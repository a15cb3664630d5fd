"""LAMOST LRS wavelength grids: the native log-linear grid, the model's 4000-5600 A input grid (the
paper's) and the whole-range grid 3850-8900 A of both arms.

All wavelengths are in Angstrom, in vacuum (LAMOST spectra are delivered in vacuum wavelengths).
"""

from __future__ import annotations

from importlib.resources import files

import numpy as np

from specclip_core.api import Instrument

LOG_STEP = 1e-4
"""Pixel size of every LAMOST LRS grid, in log10(wavelength)."""

NATIVE_LOG_START = 3.5682
NATIVE_PIXELS = 3909
"""The usual DR8+ grid: 10**(3.5682 + 1e-4 i), 3700-9099 A (files may hold a few pixels fewer)."""

MODEL_START = 4000.0
MODEL_PIXELS = 1462
"""The model grid: 1462 pixels from 4000 A every 1e-4 dex, up to 5599.6 A (the paper's 400-560 nm)."""

FULL_PIXELS_BLUE_OF_MODEL = 166
FULL_PIXELS = 3640
"""The whole-range grid: the model grid extended by 166 pixels blue-ward (to 3850.0 A) and to 3640
pixels in all (up to 8899.4 A), so that the model grid is exactly its pixels 166 to 1627. 3850 A is
where the continuum fit starts (bluer, the continuum is the median-filtered flux itself and the
normalised flux is ~1); 8899 A is inside every real file (the shortest DR10 grids end at 8915 A)."""

RESOLVING_POWER = 1800.0


def log_linear_grid(start: float, n_pixels: int, log_step: float = LOG_STEP) -> np.ndarray:
    """``n_pixels`` wavelengths from ``start`` (A) spaced by ``log_step`` in log10."""
    return 10.0 ** (np.log10(start) + log_step * np.arange(n_pixels))


MODEL_WAVELENGTH = log_linear_grid(MODEL_START, MODEL_PIXELS)
FULL_WAVELENGTH = 10.0 ** (np.log10(MODEL_START) + LOG_STEP * (np.arange(FULL_PIXELS) - FULL_PIXELS_BLUE_OF_MODEL))
NATIVE_WAVELENGTH = 10.0 ** (NATIVE_LOG_START + LOG_STEP * np.arange(NATIVE_PIXELS))

INSTRUMENT = Instrument(
    resolving_power=RESOLVING_POWER,
    native_wavelength=NATIVE_WAVELENGTH,
    description="LAMOST low-resolution spectrographs: R ~ 1800, 3700-9100 A log-linear at 1e-4 dex (vacuum), "
    "blue and red arms joined near 5900 A",
    calibration=str(files("specclip_lamost") / "calibrations" / "lamost_lrs.json"),
)
"""``calibration``: what specclip-sim takes from the 2,224 real DR10 spectra (bench/sim_calibrate_lamost.py,
sim_fit_lamost_parts.py, sim_fit_correction.py, sim_fit_residual_variety.py; provenance in its ``measured``):
the effective R, S/N values, throughput, mask runs, the emulator's empirical correction, and the parts
drawn from real spectra in ``lamost_lrs_parts.npz`` (named with its SHA-256)."""
