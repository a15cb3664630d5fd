"""The line-spread function: a narrow line keeps its equivalent width and gets FWHM = lambda / R;
the coefficient convolution agrees with a direct Gaussian-weighted sum on the 0.1 A grid."""

from __future__ import annotations

import numpy as np
import pytest

from specclip_sim.lsf import arm_weights, convolve_arms, convolve_coefficients, sigma_log10


def _line(synthetic, sigma=None, depth=0.5):
    wavelength = synthetic.wavelength
    sigma = synthetic.line_sigma if sigma is None else sigma
    return wavelength, 1.0 - depth * np.exp(-0.5 * ((wavelength - 5000.0) / sigma) ** 2)


def _on_grid(wavelength, flux, resolving_power, lo=4980.0, hi=5020.0, step=2e-6):
    x0 = np.log10(lo)
    n = int((np.log10(hi) - x0) / step) + 1
    return 10 ** (x0 + step * np.arange(n)), convolve_coefficients(wavelength, flux[None], resolving_power, x0, step, n)[0]


def _fwhm(wavelength, flux):
    depth = 1.0 - flux
    half = depth.max() / 2
    above = np.flatnonzero(depth >= half)
    i, j = above[0], above[-1]
    left = np.interp(half, [depth[i - 1], depth[i]], [wavelength[i - 1], wavelength[i]])
    right = np.interp(half, [depth[j + 1], depth[j]], [wavelength[j + 1], wavelength[j]])
    return right - left


@pytest.mark.parametrize("resolving_power", [500.0, 1800.0, 5000.0])
@pytest.mark.parametrize("line_sigma", [0.05, 0.3])
def test_equivalent_width_is_conserved_and_fwhm_is_lambda_over_r(synthetic, resolving_power, line_sigma):
    wavelength, flux = _line(synthetic, line_sigma)
    ew_native = np.trapezoid(1.0 - flux, wavelength)
    grid, convolved = _on_grid(wavelength, flux, resolving_power, lo=4900.0, hi=5100.0)
    assert np.trapezoid(1.0 - convolved, grid) == pytest.approx(ew_native, rel=1e-4)
    # the line as the model has it: sampled every 0.1 A and linearly interpolated (variance + 0.1**2 / 6)
    line_fwhm = 2 * np.sqrt(2 * np.log(2)) * np.sqrt(line_sigma**2 + 0.1**2 / 6)
    assert _fwhm(grid, convolved) == pytest.approx(np.hypot(5000.0 / resolving_power, line_fwhm), rel=2e-3)


def test_convolution_matches_a_direct_sum_on_the_native_grid(synthetic):
    wavelength, flux = _line(synthetic)
    flux = flux - 0.3 * synthetic.line_profile(wavelength) + 0.02 * np.sin(wavelength)  # blends and structure
    grid, convolved = _on_grid(wavelength, flux, 1800.0)
    sigma = sigma_log10(1800.0)
    x = np.log10(wavelength)
    for k in range(0, len(grid), 997):
        weight = np.exp(-0.5 * ((x - np.log10(grid[k])) / sigma) ** 2) / wavelength  # Gaussian in log(lambda), per dlambda
        assert convolved[k] == pytest.approx(np.sum(weight * flux) / np.sum(weight), abs=1e-4)


def test_convolving_coefficients_is_linear(synthetic):
    wavelength, flux = _line(synthetic)
    rows = np.stack([flux, 2.0 * flux - 1.0, np.ones_like(flux)])
    x0, step, n = np.log10(4990.0), 1e-5, 500
    out = convolve_coefficients(wavelength, rows, 1800.0, x0, step, n)
    np.testing.assert_allclose(out[1], 2.0 * out[0] - 1.0, atol=1e-12)
    np.testing.assert_allclose(out[2], 1.0, atol=1e-12)


def test_a_grid_beyond_the_model_is_refused(synthetic):
    wavelength, flux = _line(synthetic)
    with pytest.raises(ValueError, match="model covers"):
        convolve_coefficients(wavelength, flux[None], 1800.0, np.log10(4400.0), 1e-4, 10)


def test_arm_weights_sum_to_one_and_fall_linearly_across_an_overlap():
    x = np.linspace(0.0, 10.0, 101)
    weights = arm_weights(x, [(0.0, 6.0), (4.0, 10.0)])
    np.testing.assert_allclose(weights.sum(axis=0), 1.0)
    assert (weights[0][x <= 4.0] == 1.0).all() and (weights[1][x >= 6.0] == 1.0).all()
    assert weights[1][np.searchsorted(x, 5.0)] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="increasing"):
        arm_weights(x, [(0.0, 4.0), (5.0, 10.0)])  # a gap between the arms


def test_each_arm_is_convolved_at_its_own_resolving_power(synthetic):
    """Lines at 4950 A (first arm, R 1000) and 5050 A (second arm, R 4000) get FWHM = lambda / R of
    their own arm; the overlap (4990-5010 A) lies between the two single-R spectra."""
    wavelength, _ = _line(synthetic)
    flux = 1.0 - 0.5 * synthetic.line_profile(wavelength)
    x0, step = np.log10(4900.0), 2e-6
    n = int((np.log10(5100.0) - x0) / step) + 1
    grid = 10 ** (x0 + step * np.arange(n))
    arms = [(x0, np.log10(5010.0), 1000.0), (np.log10(4990.0), np.log10(5100.0), 4000.0)]
    both = convolve_arms(wavelength, flux[None], arms, x0, step, n)[0]
    line_fwhm = 2 * np.sqrt(2 * np.log(2)) * np.sqrt(synthetic.line_sigma**2 + 0.1**2 / 6)
    first, second = grid < 4975.0, grid > 5025.0
    assert _fwhm(grid[first], both[first]) == pytest.approx(np.hypot(4950.0 / 1000.0, line_fwhm), rel=5e-3)
    assert _fwhm(grid[second], both[second]) == pytest.approx(np.hypot(5050.0 / 4000.0, line_fwhm), rel=5e-3)
    low = convolve_coefficients(wavelength, flux[None], 1000.0, x0, step, n)[0]
    high = convolve_coefficients(wavelength, flux[None], 4000.0, x0, step, n)[0]
    overlap = (grid > 4990.0) & (grid < 5010.0)
    assert (both[overlap] >= np.minimum(low, high)[overlap] - 1e-12).all() and (both[overlap] <= np.maximum(low, high)[overlap] + 1e-12).all()
    np.testing.assert_allclose(both[first], low[first], atol=1e-12)
    np.testing.assert_allclose(both[second], high[second], atol=1e-12)
