"""The line-spread function: a narrow line keeps its equivalent width and gets FWHM = lambda / R;
the coefficient convolution agrees with a direct Gaussian-weighted sum on the 0.1 A grid."""

from __future__ import annotations

import numpy as np
import pytest

from specclip_sim.lsf import convolve_coefficients, sigma_log10


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
