"""Instrument simulation on a synthetic emulator: reproducibility, meta, noise, masks, extinction."""

from __future__ import annotations

import numpy as np
import pytest

from specclip_core.api import Instrument
from specclip_sim.noise import relative_throughput
from specclip_sim.simulate import InstrumentSimulator, SimulationSettings

WAVELENGTH = 10 ** (np.log10(4900.0) + 1e-4 * np.arange(170))


@pytest.fixture(scope="module")
def simulator(synthetic_emulator):
    return InstrumentSimulator(Instrument(1800.0, WAVELENGTH, "test"), synthetic_emulator, SimulationSettings(batch_size=7))


def _labels(n, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "teff": rng.uniform(3000, 45000, n),
        "logg": rng.uniform(0, 5.5, n),
        "feh": rng.uniform(-3, 0.6, n),
        "a_k": rng.uniform(-0.05, 0.3, n),
        "alpha_m": rng.uniform(0, 0.3, n),
    }


def _ids(n):
    return [f"star-{i}" for i in range(n)]


def test_a_fixed_seed_is_reproducible_bit_for_bit(simulator):
    labels, snr = _labels(40), [20.0, 50.0, 100.0]
    first = simulator.simulate(labels, _ids(40), snr, seed=11)
    second = simulator.simulate(labels, _ids(40), snr, seed=11)
    for name in ("flux", "ivar", "mask"):
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name))
    for key in first.meta:
        np.testing.assert_array_equal(first.meta[key], second.meta[key])
    other = simulator.simulate(labels, _ids(40), snr, seed=12)
    assert not np.array_equal(first.flux, other.flux)


def test_meta_keeps_every_label_and_says_simulated(simulator):
    labels = _labels(10)
    spectra = simulator.simulate(labels, _ids(10), [30.0], seed=0)
    for key in (*labels, "rv", "snr", "clipped", "covered", "emulator_model", "teff_emulated", "a_k_applied", "capped_fraction"):
        assert key in spectra.meta, key
    np.testing.assert_array_equal(spectra.meta["alpha_m"], labels["alpha_m"])
    assert spectra.meta["simulated"].all()
    assert set(spectra.meta["emulator_model"]) <= {"cool", "hot"}
    assert (spectra.meta["snr"] == 30.0).all()
    np.testing.assert_array_equal(spectra.meta["a_k_applied"], np.maximum(labels["a_k"], 0))
    np.testing.assert_array_equal(spectra.wavelength, WAVELENGTH)


def test_masked_pixels_have_zero_ivar_and_the_rest_are_finite(simulator):
    spectra = simulator.simulate(_labels(60), _ids(60), [40.0], seed=3)
    assert spectra.mask.any()
    assert (spectra.ivar[spectra.mask] == 0).all()
    assert (spectra.ivar[~spectra.mask] > 0).all()
    assert np.isfinite(spectra.flux).all()


def test_noise_matches_ivar_and_the_drawn_snr(synthetic_emulator):
    settings = SimulationSettings(masks={"mean_runs": 0.0}, flux_calibration={"rms": 0.0})
    simulator = InstrumentSimulator(Instrument(1800.0, WAVELENGTH), synthetic_emulator, settings)
    n = 400
    labels = {"teff": np.full(n, 5000.0), "logg": np.full(n, 3.0), "feh": np.full(n, -1.0), "a_k": np.zeros(n), "rv": np.zeros(n)}
    spectra = simulator.simulate(labels, _ids(n), [50.0], seed=5)
    clean = spectra.flux.mean(axis=0)
    pulls = (spectra.flux - clean) * np.sqrt(spectra.ivar)
    assert pulls.std() == pytest.approx(1.0, abs=0.02)
    per_pixel_snr = np.median(clean * np.sqrt(spectra.ivar[0]))
    assert per_pixel_snr == pytest.approx(50.0, rel=0.01)


def test_given_radial_velocities_and_snr_are_used(simulator):
    labels = _labels(5)
    labels["rv"] = np.array([0.0, 10.0, -20.0, 300.0, -400.0])
    labels["snr"] = np.array([10.0, 20.0, 30.0, 40.0, 50.0])
    spectra = simulator.simulate(labels, _ids(5), [], seed=0)
    np.testing.assert_array_equal(spectra.meta["rv"], labels["rv"])
    np.testing.assert_array_equal(spectra.meta["snr"], labels["snr"])
    with pytest.raises(ValueError, match="snr"):
        simulator.simulate({**labels, "snr": [10.0, 0.0, 1.0, 1.0, 1.0]}, _ids(5), [], seed=0)
    for bad in (2000.0, np.nan):
        with pytest.raises(ValueError, match="at most"):
            simulator.simulate({**labels, "rv": np.full(5, bad)}, _ids(5), [30.0], seed=0)


def test_extinction_reddens(synthetic_emulator):
    settings = SimulationSettings(masks={"mean_runs": 0.0}, flux_calibration={"rms": 0.0})
    wavelength = np.geomspace(4600.0, 5400.0, 300)
    simulator = InstrumentSimulator(Instrument(1800.0, wavelength), synthetic_emulator, settings)
    labels = {"teff": [5000.0] * 2, "logg": [3.0] * 2, "feh": [-1.0] * 2, "a_k": [0.0, 0.5], "rv": [0.0] * 2}
    spectra = simulator.simulate(labels, _ids(2), [1e6], seed=0)
    ratio = spectra.flux[1] / spectra.flux[0]
    assert ratio[0] < ratio[-1]  # bluer light is dimmed more (both are scaled to the same continuum mean)


def test_stars_beyond_the_emulator_can_be_refused(synthetic_emulator):
    simulator = InstrumentSimulator(Instrument(1800.0, WAVELENGTH), synthetic_emulator, SimulationSettings(outside="raise"))
    labels = {"teff": [5000.0, 20000.0], "logg": [3.0, 1.0], "feh": [0.0, 0.0], "a_k": [0.0, 0.0]}
    with pytest.raises(ValueError, match="outside the emulator's range"):
        simulator.simulate(labels, _ids(2), [30.0], seed=0)


def test_bad_inputs_are_refused(simulator):
    labels = _labels(3)
    with pytest.raises(ValueError, match="lack"):
        simulator.simulate({k: v for k, v in labels.items() if k != "a_k"}, _ids(3), [30.0], seed=0)
    for a_k in ([0.1, np.nan, 0.0], [0.1, -9999.0, 0.0]):
        with pytest.raises(ValueError, match="sentinel a_k"):
            simulator.simulate({**labels, "a_k": a_k}, _ids(3), [30.0], seed=0)
    with pytest.raises(ValueError, match="non-finite"):
        simulator.simulate({**labels, "feh": [0.1, np.nan, 0.0]}, _ids(3), [30.0], seed=0)
    with pytest.raises(ValueError, match="snr_values"):
        simulator.simulate(labels, _ids(3), [], seed=0)


def test_throughput_shapes_the_noise_and_can_be_measured_back(synthetic_emulator):
    throughput = np.linspace(0.2, 3.0, len(WAVELENGTH))
    settings = SimulationSettings(masks={"mean_runs": 0.0}, background_fraction=1e-9, snr_band=(4950.0, 5050.0))
    simulator = InstrumentSimulator(Instrument(1800.0, WAVELENGTH), synthetic_emulator, settings, throughput=throughput)
    spectra = simulator.simulate(_labels(50), _ids(50), [80.0], seed=4)
    band = (WAVELENGTH >= 4950.0) & (WAVELENGTH <= 5050.0)
    clean_snr = np.array([np.median((spectra.flux[i] * np.sqrt(spectra.ivar[i]))[band]) for i in range(50)])
    assert np.median(clean_snr) == pytest.approx(80.0, rel=0.02)
    measured = relative_throughput(spectra.flux, spectra.ivar, spectra.mask)
    np.testing.assert_allclose(measured, throughput / np.median(throughput), rtol=0.05)
    with pytest.raises(ValueError, match="throughput"):
        InstrumentSimulator(Instrument(1800.0, WAVELENGTH), synthetic_emulator, settings, throughput=throughput[:-1])


def test_masks_can_be_drawn_from_a_library_of_real_patterns(synthetic_emulator):
    patterns = [np.array([[10, 5], [100, 3]]), np.zeros((0, 2), int), np.array([[165, 20]])]
    simulator = InstrumentSimulator(Instrument(1800.0, WAVELENGTH), synthetic_emulator, SimulationSettings(batch_size=9), mask_runs=patterns)
    spectra = simulator.simulate(_labels(60), _ids(60), [40.0], seed=2)
    expected = []
    for pattern in patterns:
        row = np.zeros(len(WAVELENGTH), bool)
        for start, length in pattern:
            row[start : start + length] = True
        expected.append(row)
    seen = set()
    for row in spectra.mask:
        match = [k for k, e in enumerate(expected) if np.array_equal(row, e)]
        assert len(match) == 1
        seen.add(match[0])
    assert seen == {0, 1, 2}
    assert (spectra.ivar[spectra.mask] == 0).all()
    with pytest.raises(ValueError, match="mask_runs"):
        InstrumentSimulator(Instrument(1800.0, WAVELENGTH), synthetic_emulator, mask_runs=[np.array([[500, 2]])])
