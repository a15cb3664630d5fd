"""Synthetic Cannon models for the plugin's tests: no download, known answers.

Each model's normalised flux has three Gaussian absorption lines (sigma 0.05 A, far narrower than
any LSF used here) whose depth is linear in scaled [Fe/H]; its log10 continuum is linear in scaled
Teff. Training labels form a grid from which a corner can be dropped.
"""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import numpy as np
import pytest

from specclip_sim.cannon import CannonModel, LabelPolynomial
from specclip_sim.emulator import Emulator

LINES = (4950.0, 5000.0, 5050.0)
LINE_SIGMA = 0.05
WAVELENGTH = np.round(np.arange(4500.0, 5500.0 + 0.05, 0.1), 1)
EXPONENTS = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])


def line_profile(wavelength: np.ndarray) -> np.ndarray:
    return sum(np.exp(-0.5 * ((wavelength - c) / LINE_SIGMA) ** 2) for c in LINES)


def make_model(name: str, teff: list[float], logg: list[float], feh: list[float], drop=lambda t, g, z: False) -> CannonModel:
    training = np.array([p for p in itertools.product(teff, logg, feh) if not drop(*p)], dtype=np.float32)
    fiducials = np.percentile(training, 50, axis=0)
    scales = np.ptp(np.percentile(training, [2.5, 97.5], axis=0), axis=0)
    profile = line_profile(WAVELENGTH)
    theta = np.zeros((4, len(WAVELENGTH)), dtype=np.float32)
    theta[0] = 1.0 - 0.5 * profile  # depth 0.5 at the fiducial [Fe/H]
    theta[3] = -0.2 * profile  # deeper for higher [Fe/H]
    cont_wavelength = np.geomspace(4500.0, 5500.0, 200)
    cont_theta = np.zeros((4, len(cont_wavelength)))
    cont_theta[1] = 0.1
    return CannonModel(
        name=name,
        label_names=("TEFF", "LOGG", "FEH"),
        flux=LabelPolynomial(WAVELENGTH, theta, EXPONENTS, fiducials, scales),
        log_continuum=LabelPolynomial(cont_wavelength, cont_theta, EXPONENTS, fiducials, scales),
        training_labels=training,
        scatter=np.zeros(len(WAVELENGTH), dtype=np.float32),
    )


@pytest.fixture(scope="session")
def synthetic_emulator() -> Emulator:
    """A cool model (3500-8000 K, logg 0-5, no spectra at Teff >= 6000 K with logg < 3.5) and a hot
    one (8000-40000 K, logg 2.5-5), like thedoppler's pair, given in the 'wrong' order."""
    cool = make_model(
        "cool", [3500, 4500, 6000, 8000], [0, 2.5, 3.5, 5], [-2.5, -1, 0.5], drop=lambda t, g, z: t >= 6000 and g < 3.5
    )
    hot = make_model("hot", [8000, 20000, 40000], [2.5, 4, 5], [-2.5, -1, 0.5])
    return Emulator([hot, cool])


@pytest.fixture(scope="session")
def synthetic() -> SimpleNamespace:
    """The synthetic models' constants and helpers."""
    return SimpleNamespace(lines=LINES, line_sigma=LINE_SIGMA, wavelength=WAVELENGTH, line_profile=line_profile, make_model=make_model)
