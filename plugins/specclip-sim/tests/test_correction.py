"""The empirical correction: a per-pixel polynomial in the labels, recovered by the fit, applied by the simulator."""

from __future__ import annotations

import numpy as np
import pytest

from specclip_core.api import Instrument
from specclip_sim.correction import ResidualCorrection, exponents_up_to, fit_correction
from specclip_sim.simulate import InstrumentSimulator, SimulationSettings

WAVELENGTH = 10 ** (np.log10(4900.0) + 1e-4 * np.arange(170))


def test_exponents():
    assert exponents_up_to(1).tolist() == [[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]]
    assert len(exponents_up_to(3)) == 20


def _labels(n, rng):
    return np.column_stack([rng.uniform(4500, 9000, n), rng.uniform(1, 5, n), rng.uniform(-2, 0.5, n)])


def test_the_fit_recovers_a_label_dependent_difference():
    rng = np.random.default_rng(0)
    labels = _labels(400, rng)
    pixels = 60
    truth = 0.02 * np.sin(np.arange(pixels) / 5.0)[None, :] * (labels[:, 2:3] + 1.0) - 0.01 * (labels[:, 1:2] - 3.0) / 2
    simulated = rng.uniform(0.6, 1.0, (400, pixels))
    ivar = np.full((400, pixels), 1e4)
    real = simulated + truth + rng.normal(0, 0.002, (400, pixels))
    usable = rng.random((400, pixels)) > 0.05
    correction = fit_correction(real, ivar, simulated, ivar, usable, labels, 4900.0, 1e-4, degree=2, ridge=1e-6)
    fitted = correction.design(labels) @ np.asarray(correction.theta)
    assert np.abs(fitted - truth).max() < 0.005
    assert correction.label_min == labels.min(0).tolist()
    far = correction.design(np.array([[30000.0, 9.0, 3.0]]))  # clamped into the learned range
    assert np.allclose(far, correction.design(labels.max(0)[None, :]))


def test_on_grid_is_full_inside_and_tapered_to_zero_beyond():
    correction = ResidualCorrection(
        wavelength_start=float(WAVELENGTH[40]), log_step=1e-4, exponents=[[0, 0, 0]], fiducials=[3.7, 3.0, 0.0], scales=[1.0, 1.0, 1.0],
        label_min=[3000.0, 0.0, -3.0], label_max=[40000.0, 5.0, 1.0], theta=[[0.1] * 80], taper_pixels=10,
    )
    grid = correction.on_grid(WAVELENGTH)[0]
    np.testing.assert_allclose(grid[40:120], 0.1)
    assert grid[35] == pytest.approx(0.05) and grid[124] == pytest.approx(0.05)
    assert (grid[:31] == 0).all() and (grid[129:] == 0).all()


def test_the_simulator_adds_the_correction(synthetic_emulator):
    settings = SimulationSettings(masks={"mean_runs": 0.0}, flux_calibration={"rms": 0.0})
    correction = ResidualCorrection(
        wavelength_start=float(WAVELENGTH[0]), log_step=1e-4, exponents=[[0, 0, 0]], fiducials=[3.7, 3.0, 0.0], scales=[1.0, 1.0, 1.0],
        label_min=[3000.0, 0.0, -3.0], label_max=[40000.0, 5.0, 1.0], theta=[[-0.2] * 170], taper_pixels=0,
    )
    labels = {"teff": [5000.0], "logg": [3.0], "feh": [-1.0], "a_k": [0.0], "rv": [0.0]}
    plain = InstrumentSimulator(Instrument(1800.0, WAVELENGTH), synthetic_emulator, settings).simulate(labels, ["a"], [1e7], seed=0)
    corrected = InstrumentSimulator(Instrument(1800.0, WAVELENGTH), synthetic_emulator, settings, correction=correction).simulate(labels, ["a"], [1e7], seed=0)
    assert corrected.meta["corrected"].all() and not plain.meta["corrected"].any()
    # the synthetic continuum is flat in wavelength, so flux / its maximum is the normalised flux n:
    # the correction turns n into n - 0.2 (then the S/N-band scaling divides it by 0.8)
    n_plain, n_corrected = plain.flux[0] / plain.flux[0].max(), corrected.flux[0] / corrected.flux[0].max()
    np.testing.assert_allclose(n_corrected, (n_plain - 0.2) / 0.8, atol=1e-4)
    assert n_plain.min() < 0.99  # there are lines
