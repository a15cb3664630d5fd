"""The emulator's maths on synthetic models: polynomial evaluation, model choice and clipping,
training-grid coverage, and Doppler shifts (always run; no download)."""

from __future__ import annotations

import numpy as np
import pytest

from specclip_sim.cannon import LabelPolynomial
from specclip_sim.wavelength import doppler_factor, vacuum_to_air


def test_design_vector_is_the_product_of_scaled_label_powers():
    exponents = np.array([[0, 0, 0], [1, 0, 0], [0, 2, 0], [1, 1, 1], [0, 0, 3]])
    poly = LabelPolynomial(np.arange(2.0), np.ones((5, 2)), exponents, np.array([5000.0, 3.0, -1.0]), np.array([1000.0, 2.0, 0.5]))
    labels = np.array([[5500.0, 4.0, -0.5], [4000.0, 1.0, 0.0]])
    s = (labels - [5000.0, 3.0, -1.0]) / [1000.0, 2.0, 0.5]
    expected = np.stack([np.ones(2), s[:, 0], s[:, 1] ** 2, s[:, 0] * s[:, 1] * s[:, 2], s[:, 2] ** 3], axis=1)
    np.testing.assert_allclose(poly.design(labels), expected, rtol=1e-14)
    np.testing.assert_allclose(poly(labels), expected.sum(1)[:, None] * np.ones((1, 2)), rtol=1e-14)


def test_models_are_chosen_by_teff(synthetic_emulator):
    assert [m.name for m in synthetic_emulator.models] == ["cool", "hot"]
    a = synthetic_emulator.assign(np.array([[4500, 2.5, -1], [7999, 4, 0], [8000, 4, 0], [30000, 4.5, 0]]))
    np.testing.assert_array_equal(a.model, [0, 0, 1, 1])
    assert not a.clipped.any()


def test_labels_outside_every_model_are_clipped_to_the_nearest_by_teff_and_flagged(synthetic_emulator):
    labels = np.array([
        [20000, 1.5, 0.0],   # hot star with logg < 2.5: the hot corner
        [3000, 4.5, 0.0],    # cooler than any model
        [5000, 5.5, -3.0],   # logg and [Fe/H] beyond the cool model
        [50000, 4.0, 0.0],   # hotter than any model
        [5000, 3.0, -0.5],   # inside
    ])
    a = synthetic_emulator.assign(labels)
    np.testing.assert_array_equal(a.clipped, [True, True, True, True, False])
    np.testing.assert_array_equal(a.model, [1, 0, 0, 1, 0])
    np.testing.assert_allclose(a.labels, [[20000, 2.5, 0.0], [3500, 4.5, 0.0], [5000, 5.0, -2.5], [40000, 4.0, 0.0], [5000, 3.0, -0.5]])
    with pytest.raises(ValueError, match="outside the emulator's range"):
        synthetic_emulator.assign(labels, outside="raise")
    synthetic_emulator.assign(labels[4:], outside="raise")


def test_non_finite_labels_are_rejected(synthetic_emulator):
    with pytest.raises(ValueError, match="non-finite"):
        synthetic_emulator.assign(np.array([[5000, 3.0, np.nan]]))


def test_coverage_flags_cells_with_a_missing_training_corner(synthetic_emulator):
    a = synthetic_emulator.assign(np.array([[7000, 2.0, 0.0], [7000, 4.0, 0.0], [5000, 2.0, 0.0], [6000, 3.5, -1.0]]))
    np.testing.assert_array_equal(a.covered, [False, True, False, True])
    assert not a.clipped.any()


def test_native_flux_is_the_polynomial(synthetic_emulator, synthetic):
    model = synthetic_emulator.models[0]
    flux, _ = synthetic_emulator.flux(np.array([[5000, 3.0, model.flux.fiducials[2]]]))
    centre = np.argmin(np.abs(model.flux.wavelength - synthetic.lines[1]))
    assert flux[0, centre] == pytest.approx(0.5, abs=1e-6)


@pytest.mark.parametrize("rv", [0.0, 123.4, -567.8])
def test_lines_move_by_the_doppler_factor(synthetic_emulator, synthetic, rv):
    wavelength = np.geomspace(4900, 5100, 2000)
    convolved = synthetic_emulator.at_resolution(20000, wavelength, vacuum=False)
    flux = convolved(np.array([[5000, 3.0, 0.0]]), rv=[rv]).flux[0].astype(np.float64)
    expected = synthetic.lines[1] * doppler_factor(rv)
    near = np.abs(wavelength - expected) < 1.0
    centroid = np.sum(wavelength[near] * (1 - flux[near])) / np.sum(1 - flux[near])
    assert centroid == pytest.approx(expected, abs=2e-3)


def test_vacuum_grids_see_lines_at_their_vacuum_wavelength(synthetic_emulator, synthetic):
    wavelength = np.geomspace(4900, 5100, 2000)
    flux = synthetic_emulator.at_resolution(20000, wavelength, vacuum=True)(np.array([[5000, 3.0, 0.0]])).flux[0]
    near = np.abs(vacuum_to_air(wavelength) - synthetic.lines[1]) < 1.0
    vacuum_centre = np.sum(wavelength[near] * (1 - flux[near])) / np.sum(1 - flux[near])
    assert vacuum_centre - synthetic.lines[1] == pytest.approx(1.394, abs=0.01)  # air -> vacuum at 5000 A
