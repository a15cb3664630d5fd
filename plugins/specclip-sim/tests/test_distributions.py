"""The random parts of an observation: rates and shapes match their documented settings."""

from __future__ import annotations

import numpy as np
import pytest

from specclip_sim.distributions import FluxCalibrationError, MaskRuns, RadialVelocityMixture, load_snr_values, runs_to_mask


def test_radial_velocity_mixture_moments():
    rv = RadialVelocityMixture().sample(np.random.default_rng(0), 200_000)
    assert rv.mean() == pytest.approx(0.28 * -10.0, abs=0.5)
    assert rv.std() == pytest.approx(np.sqrt(0.72 * 34**2 + 0.28 * 91**2 + 0.72 * 0.28 * 10**2), rel=0.01)
    with pytest.raises(ValueError):
        RadialVelocityMixture(weights=(0.5,), means=(0.0,), sigmas=(1.0,))


def test_flux_calibration_error_has_the_requested_rms():
    model = FluxCalibrationError(rms=0.05)
    basis = model.basis(np.geomspace(3700, 9100, 500))
    log_error = model.sample(np.random.default_rng(1), 20_000) @ basis.T
    assert np.sqrt(np.mean(log_error**2)) == pytest.approx(0.05, rel=0.02)


def test_mask_runs_rate_and_lengths():
    model = MaskRuns()
    star, start, length = model.sample(np.random.default_rng(2), 20_000, 3909)
    assert len(star) / 20_000 == pytest.approx(model.mean_runs, rel=0.05)
    assert length.min() == model.min_length and length.mean() == pytest.approx(model.mean_length, rel=0.02)
    mask = runs_to_mask(np.array([0, 0, 1]), np.array([2, 8, 9]), np.array([3, 5, 4]), 2, 12)
    np.testing.assert_array_equal(mask[0], [0, 0, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1])
    np.testing.assert_array_equal(mask[1], [0] * 9 + [1, 1, 1])


@pytest.mark.parametrize("pixels", [620, 3909, 7781])
def test_default_mask_runs_mask_the_same_fraction_on_any_grid(pixels):
    star, start, length = MaskRuns().sample(np.random.default_rng(5), 4000, pixels)
    masked = runs_to_mask(star, start, length, 4000, pixels).mean()
    assert masked == pytest.approx(0.017, abs=0.003)  # LAMOST DR10's 1.7%, not 10.6% of a 620-pixel grid


def test_snr_values_from_a_csv(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("obsid,snrg\n1,12.5\n2,\n3,-1\n4,80\n5,nan\n")
    np.testing.assert_array_equal(load_snr_values(path), [12.5, 80.0])
    with pytest.raises(ValueError, match="no column"):
        load_snr_values(path, column="snrr")
