"""DESI wavelength grids: the three arms, the merged native grid and the model's input grid.

Wavelengths are in Angstrom, vacuum (DESI delivers vacuum wavelengths).
"""

from __future__ import annotations

import numpy as np

STEP = 0.8
"""Pixel size of every DESI arm (A); the arms share the grid 3600 + 0.8 i."""

ARMS = {"B": (3600.0, 5800.0), "R": (5760.0, 7620.0), "Z": (7520.0, 9824.0)}
"""First and last wavelength of each arm (A); B/R overlap over 5760-5800 A, R/Z over 7520-7620 A."""

START, STOP = ARMS["B"][0], ARMS["Z"][1]
NATIVE_WAVELENGTH = START + STEP * np.arange(int(round((STOP - START) / STEP)) + 1)
"""The merged grid the readers return: 7781 pixels from 3600 to 9824 A."""

MODEL_START = 4000.0
MODEL_LOG_STEP = 1e-4
MODEL_PIXELS = 1462
MODEL_WAVELENGTH = 10.0 ** (np.log10(MODEL_START) + MODEL_LOG_STEP * np.arange(MODEL_PIXELS))
"""The model grid: 1462 pixels from 4000 A every 1e-4 dex to 5599.6 A (LAMOST's model grid, as in
the LoRA paper, so encoders pretrained on LAMOST read DESI spectra unchanged)."""


def arm_wavelength(arm: str) -> np.ndarray:
    """The native grid of one arm."""
    lo, hi = ARMS[arm]
    return lo + STEP * np.arange(int(round((hi - lo) / STEP)) + 1)


def arm_offset(arm: str) -> int:
    """Index of the arm's first pixel on the merged grid."""
    return int(round((ARMS[arm][0] - START) / STEP))
