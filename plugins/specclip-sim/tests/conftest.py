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

from specclip_core.api import ModalityLayout, SpectralStore
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


XP_WAVELENGTH = np.arange(3360.0, 10201.0, 20.0)
STUB_LINES = (3934.0, 3969.0, 4102.0, 4341.0, 4384.0, 4861.0, 5173.0, 5270.0, 6563.0, 8542.0)


def _stub_model(name: str, teff: tuple[float, float], logg: tuple[float, float]) -> CannonModel:
    """Cannon-shaped stub: ten absorption lines deepening with [Fe/H], a continuum tilting with Teff."""
    wavelength = np.arange(3500.0, 10500.0, 1.0)  # wide enough for DESI (to 9824 A) too
    profile = sum(np.exp(-0.5 * ((wavelength - c) / 1.5) ** 2) for c in STUB_LINES)
    exponents = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    training = np.array([[t, g, z] for t in teff for g in logg for z in (-2.5, 0.5)], dtype=np.float32)
    fiducials, scales = training.mean(0).astype(np.float64), np.ptp(training, 0).astype(np.float64)
    theta = np.zeros((4, len(wavelength)), np.float32)
    theta[0], theta[3] = 1.0 - 0.4 * profile, -0.1 * profile
    cont_wavelength = np.geomspace(3500.0, 10500.0, 300)
    cont_theta = np.zeros((4, len(cont_wavelength)))
    cont_theta[1] = -0.3 * np.log10(cont_wavelength / 5000.0)
    return CannonModel(
        name, ("TEFF", "LOGG", "FEH"), LabelPolynomial(wavelength, theta, exponents, fiducials, scales),
        LabelPolynomial(cont_wavelength, cont_theta, exponents, fiducials, scales), training, np.zeros(len(wavelength), np.float32),
    )


@pytest.fixture(scope="session")
def stub_emulator() -> Emulator:
    return Emulator([_stub_model("stub-cool", (3500.0, 8000.0), (0.0, 5.0)), _stub_model("stub-hot", (8000.0, 40000.0), (2.5, 5.0))], {"source": "test stub"})


def _fake_xp_store(path, n: int = 14) -> SpectralStore:
    """A tiny store of random XP-like spectra with apogee-xp's label columns (hot stars without [Fe/H], A_K missing and a sentinel)."""
    rng = np.random.default_rng(3)
    teff = rng.uniform(3800, 6500, n)
    teff[:3] = (9000.0, 15000.0, 7600.0)  # hot stars: APOGEE gives them no [Fe/H]
    fe_h = rng.uniform(-1.5, 0.3, n)
    fe_h[:3] = np.nan
    ak = rng.uniform(0.0, 0.4, n)
    ak[3], ak[4] = np.nan, -83.2  # missing and sentinel
    labels = {
        "teff": teff, "logg": rng.uniform(1.0, 4.6, n), "fe_h": fe_h, "alpha_m": rng.uniform(0, 0.3, n), "ak_targ": ak,
        "phot_g_mean_mag": rng.uniform(10, 14, n), "phot_bp_mean_mag": rng.uniform(10.5, 15, n), "phot_rp_mean_mag": rng.uniform(9, 13, n),
        "j": rng.uniform(8, 12, n), "h": rng.uniform(7.5, 11.5, n), "k": rng.uniform(7.4, 11.4, n),
        "source_id": np.array([str(3314245809274264832 + 7919 * i) for i in range(n)]), "apogee_id": np.array([f"2M{i:08d}" for i in range(n)]),
    }
    kinds = {k: ("str" if v.dtype.kind == "U" else "float") for k, v in labels.items()}
    flux = rng.uniform(0.5, 1.5, (n, len(XP_WAVELENGTH))).astype(np.float32)
    block = {"flux": flux, "ivar": np.full_like(flux, 100.0), "mask": np.zeros(flux.shape, bool), "stats": rng.normal(size=(n, 2)).astype(np.float32)}
    with SpectralStore.build(path, {"gaia_xp": ModalityLayout(XP_WAVELENGTH)}, kinds, {"dataset": "fake-xp", "licence": "test"}) as store:
        store.append(labels["source_id"], {"gaia_xp": block}, labels)
    return SpectralStore.open(path)


@pytest.fixture(scope="session")
def fake_xp_store():
    """Writes a tiny fake XP store at a path (see _fake_xp_store)."""
    return _fake_xp_store
