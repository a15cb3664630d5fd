"""Parts drawn from real spectra (specclip_sim.empirical): correlated noise, sky-residual windows, flux
shapes; their parts file (checksum, clear errors); each switchable in the simulator, seeded, shaped."""

from __future__ import annotations

import warnings
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from specclip_core.api import Instrument, SpecCLIPError
from specclip_sim.calibration import Calibration, calibration_path, file_sha256, load_calibration, load_parts
from specclip_sim.empirical import (
    BackgroundNoise,
    CorrelatedNoise,
    FluxShapes,
    ResidualVariety,
    SkyResiduals,
    draw_by_bin,
    fit_background,
    kernel_from_autocorrelation,
)
from specclip_sim.simulate import InstrumentSimulator, SimulationSettings

WAVELENGTH = 10 ** (np.log10(4900.0) + 1e-4 * np.arange(170))
N = 300


def _labels(n=N):
    return {"teff": np.full(n, 5000.0), "logg": np.full(n, 3.0), "feh": np.full(n, -1.0), "a_k": np.zeros(n), "rv": np.zeros(n), "snr": np.full(n, 50.0)}


def _ids(n=N):
    return [f"star-{i}" for i in range(n)]


def _parts():
    rng = np.random.default_rng(0)
    scale = np.ones(len(WAVELENGTH))
    scale[:20] = 2.0
    noise = CorrelatedNoise(scale, kernel_from_autocorrelation(np.array([1.0, 0.3, 0.05])))
    sky = SkyResiduals(np.arange(100, 110), np.full((10, 10), 7.0) + rng.standard_normal((10, 10)) * 0.01, np.linspace(10, 100, 10))
    shapes = FluxShapes((4900.0, 5100.0), np.tile([0.0, 0.2, 0.0], (10, 1)), np.linspace(4000, 8000, 10))
    return noise, sky, shapes


def _simulator(emulator, **parts):
    settings = SimulationSettings(masks={"mean_runs": 0.0}, flux_calibration={"rms": 0.0})
    return InstrumentSimulator(Instrument(1800.0, WAVELENGTH), emulator, settings, **parts)


def test_the_kernel_reproduces_the_autocorrelation():
    rho = np.array([1.0, 0.3, 0.05])
    kernel = kernel_from_autocorrelation(rho)
    assert len(kernel) == 5 and np.sum(kernel**2) == pytest.approx(1.0)
    assert np.allclose(kernel, kernel[::-1])
    realised = [np.sum(kernel[k:] * kernel[: len(kernel) - k]) for k in range(3)]
    np.testing.assert_allclose(realised, rho, atol=0.01)


def test_draw_by_bin_keeps_to_the_bin():
    library = np.arange(100.0)
    picked = draw_by_bin(np.random.default_rng(0), library, np.array([1.0] * 50 + [95.0] * 50), 5)
    assert (library[picked[:50]] < 20).all() and (library[picked[50:]] >= 80).all()


def test_each_part_is_off_by_default_and_changes_its_own_pixels(synthetic_emulator):
    noise, sky, shapes = _parts()
    plain = _simulator(synthetic_emulator).simulate(_labels(), _ids(), [50.0], seed=3)
    noisy = _simulator(synthetic_emulator, noise=noise).simulate(_labels(), _ids(), [50.0], seed=3)
    clean = plain.flux.mean(axis=0)
    pulls = lambda s: (s.flux - clean) * np.sqrt(s.ivar)  # noqa: E731
    assert pulls(plain)[:, :20].std() == pytest.approx(1.0, abs=0.05)
    assert pulls(noisy)[:, :20].std() == pytest.approx(2.0, abs=0.1)
    assert pulls(noisy)[:, 40:].std() == pytest.approx(1.0, abs=0.05)
    lag1 = np.mean(pulls(noisy)[:, 41:] * pulls(noisy)[:, 40:-1])
    assert lag1 == pytest.approx(0.3, abs=0.03)
    with_sky = _simulator(synthetic_emulator, sky=sky).simulate(_labels(), _ids(), [50.0], seed=3)
    np.testing.assert_allclose(pulls(with_sky)[:, 100:110].mean(), 7.0, atol=0.1)
    np.testing.assert_array_equal(with_sky.flux[:, :100], plain.flux[:, :100])
    shaped = _simulator(synthetic_emulator, flux_shapes=shapes).simulate(_labels(), _ids(), [50.0], seed=3)
    ratio = shaped.flux.mean(axis=0) / clean
    u = shapes.basis(WAVELENGTH)[:, 1]
    assert ratio[-1] / ratio[0] == pytest.approx(np.exp(0.2 * (u[-1] - u[0])), rel=0.01)


def test_residual_variety_takes_the_scores_of_a_near_star(synthetic_emulator):
    labels = np.array([[5000.0, 3.0, -1.0]] * 10 + [[9000.0, 4.0, 0.0]] * 10)
    scores = np.concatenate([np.full((10, 1), 0.1), np.full((10, 1), -0.1)])
    variety = ResidualVariety(WAVELENGTH[0], 1e-4, np.ones((1, len(WAVELENGTH))), scores, labels)
    drawn = variety.draw(np.random.default_rng(0), np.array([[5100.0, 3.1, -1.0], [8800.0, 4.0, 0.1]]))
    np.testing.assert_allclose(drawn[:, 0], [0.1, -0.1])
    assert variety.on_grid(WAVELENGTH).shape == (1, len(WAVELENGTH))
    plain = _simulator(synthetic_emulator).simulate(_labels(), _ids(), [50.0], seed=3)
    varied = _simulator(synthetic_emulator, variety=variety).simulate(_labels(), _ids(), [50.0], seed=3)
    shift = varied.flux.mean(axis=0) / plain.flux.mean(axis=0)
    assert np.median(shift) == pytest.approx(1.0, abs=0.02) and not np.allclose(varied.flux, plain.flux)


LINE = slice(100, 106)


def _background(n_spectra=60):
    """A known background: flat source throughput, a broad background rising to the blue and a
    sky line at pixels 100-105; faint spectra have 30x the background amplitudes of bright ones."""
    profiles = np.stack([np.linspace(3.0, 1.0, len(WAVELENGTH)), np.zeros(len(WAVELENGTH))])
    profiles[1, LINE] = 40.0
    snr = np.repeat([10.0, 300.0], n_spectra // 2)
    amplitudes = np.where(snr[:, None] < 50, [[1.5, 0.3]], [[0.05, 0.01]])
    return BackgroundNoise(np.ones(len(WAVELENGTH)), profiles, amplitudes, snr, n_bins=2)


def _line_to_continuum_ivar(spectra, faint):
    ivar = spectra.ivar[faint]
    return float(np.median(ivar[:, LINE].mean(axis=1) / ivar[:, 140:160].mean(axis=1)))


def test_the_background_weighs_sky_lines_more_in_faint_spectra_than_in_bright_ones(synthetic_emulator):
    labels = _labels(40)
    labels["snr"] = np.repeat([10.0, 300.0], 20)
    faint = labels["snr"] < 50
    plain = _simulator(synthetic_emulator).simulate(labels, _ids(40), [50.0], seed=3)
    assert _line_to_continuum_ivar(plain, faint) == pytest.approx(_line_to_continuum_ivar(plain, ~faint), rel=0.05)
    with_background = _simulator(synthetic_emulator, background=_background()).simulate(labels, _ids(40), [50.0], seed=3)
    assert _line_to_continuum_ivar(with_background, faint) < 0.3 * _line_to_continuum_ivar(with_background, ~faint)  # 0.21 and 0.71 expected
    band = _simulator(synthetic_emulator).in_band
    achieved = np.median(with_background.flux[:, band] * np.sqrt(with_background.ivar[:, band]), axis=1)
    np.testing.assert_allclose(achieved, labels["snr"], rtol=0.05)  # the S/N asked is the S/N given (noisy flux: 10 +- 0.3)
    with pytest.raises(ValueError, match="background noise has 10 pixels"):
        _simulator(synthetic_emulator, background=BackgroundNoise(np.ones(10), np.ones((1, 10)), np.ones((5, 1)), np.arange(5.0)))


def test_fit_background_recovers_how_the_line_weighs_at_each_snr():
    truth = _background(200)
    rng = np.random.default_rng(1)
    flux = np.exp(rng.normal(0.0, 0.3, (200, 1))) * (1.0 + 0.1 * np.sin(np.arange(len(WAVELENGTH)) / 15.0))
    reference = np.median(flux, axis=1, keepdims=True)
    variance = 0.01 * (flux / truth.throughput + reference * (truth.amplitudes @ truth.profiles)) * rng.uniform(0.95, 1.05, flux.shape)
    ivar = 1.0 / variance
    ivar[:, 50] = 0.0  # unusable pixels are ignored
    line = (float(WAVELENGTH[LINE.start]), float(WAVELENGTH[LINE.stop - 1]))
    fitted, misfit = fit_background(flux, ivar, WAVELENGTH, truth.snr, (WAVELENGTH[0], WAVELENGTH[-1]), [line], n_components=1)
    assert np.median(misfit) < 0.06 and fitted.profiles.shape == (2, len(WAVELENGTH))
    assert (fitted.profiles[1, : LINE.start] == 0).all() and (fitted.profiles[1, LINE.stop :] == 0).all()
    shape = flux[0]

    def line_weight(model, faint):
        amplitudes = model.amplitudes[(model.snr < 50) == faint]
        variance = shape / model.throughput + np.median(shape) * (amplitudes @ model.profiles)
        return np.median(variance[:, 140:160].mean(axis=1) / variance[:, LINE].mean(axis=1))

    assert len(fitted.snr) >= 190  # spectra whose source term came out 0 are dropped
    for faint in (True, False):
        assert line_weight(fitted, faint) == pytest.approx(line_weight(truth, faint), rel=0.15)
    with pytest.raises(ValueError, match="at least 10 spectra"):
        fit_background(flux[:5], ivar[:5], WAVELENGTH, truth.snr[:5], (4900.0, 5000.0))


def test_parts_are_deterministic_with_a_seed_and_keep_shapes(synthetic_emulator):
    noise, sky, shapes = _parts()
    simulator = _simulator(synthetic_emulator, noise=noise, sky=sky, flux_shapes=shapes)
    first = simulator.simulate(_labels(40), _ids(40), [50.0], seed=9)
    second = simulator.simulate(_labels(40), _ids(40), [50.0], seed=9)
    np.testing.assert_array_equal(first.flux, second.flux)
    assert first.flux.shape == (40, len(WAVELENGTH))
    assert not np.array_equal(first.flux, simulator.simulate(_labels(40), _ids(40), [50.0], seed=10).flux)


def test_a_parts_file_loads_with_its_checksum_and_fails_clearly(tmp_path):
    noise, sky, shapes = _parts()
    path = tmp_path / "parts.npz"
    np.savez(path, noise_scale=noise.scale, noise_kernel=noise.kernel, sky_pixels=sky.pixels, sky_templates=sky.templates, sky_snr=sky.snr)
    parts = load_parts(path, file_sha256(path))
    assert parts.noise is not None and parts.sky is not None and parts.flux_shapes is None
    with pytest.raises(SpecCLIPError, match="SHA-256"):
        load_parts(path, "0" * 64)
    with pytest.raises(SpecCLIPError, match="does not exist"):
        load_parts(tmp_path / "missing.npz", None)
    np.savez(path, noise_scale=noise.scale)
    with pytest.raises(SpecCLIPError, match="part 'noise' needs"):
        load_parts(path, None)
    path.write_bytes(b"not a zip")
    with pytest.raises(SpecCLIPError, match="not a numpy .npz"):
        load_parts(path, None)
    with pytest.raises(ValueError, match="parts_sha256"):
        Calibration(modality="x", resolving_power=1.0, snr_band=(1.0, 2.0), snr_values=[1.0], wavelength_start=1.0, log_step=1e-4, parts_file="p.npz")


def test_the_lamost_calibration_and_its_parts_ship_with_the_lamost_plugin_not_here():
    path = calibration_path("lamost_lrs")
    assert path is not None and "specclip_lamost" in path.parts and path.is_file()
    here = Path(str(resources.files("specclip_sim")))
    assert not [p.name for p in here.rglob("*") if p.suffix in (".json", ".npz")], "specclip-sim knows no survey: it ships no calibration"
    calibration = load_calibration("lamost_lrs")
    assert calibration.parts_file is not None
    parts = calibration.parts()
    assert parts.noise is not None and parts.noise.scale.shape == (len(calibration.throughput),)
    assert parts.sky is not None and parts.sky.templates.shape[1] == len(parts.sky.pixels)
    assert parts.flux_shapes is not None


def test_a_pixel_without_light_or_background_is_unusable_not_a_nan():
    from specclip_sim.noise import variance

    clean = np.array([[1.0, 1.0, 0.0, 1.0, 1.0]])
    background = np.array([[0.5, 0.5, 0.0, 0.5, 0.5]])  # a learned background can be zero in places
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = variance(clean, np.array([10.0]), np.ones(5, bool), 0.1, np.ones(5), background)
    assert got[0, 2] == 0.0 and np.isfinite(got).all()
    np.testing.assert_allclose(np.median(clean[0, [0, 1, 3, 4]] / np.sqrt(got[0, [0, 1, 3, 4]])), 10.0)  # the S/N asked, on the pixels with light
