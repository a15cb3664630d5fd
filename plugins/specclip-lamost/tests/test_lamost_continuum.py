"""The model grid, the Appendix-B continuum and preprocessing, at low and high S/N."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from scipy.signal import medfilt, medfilt2d, savgol_filter

from specclip_core.api import Spectra, create_component, get_modality
from specclip_lamost import continuum
from specclip_lamost.continuum import SAVGOL_ORDER, SAVGOL_WINDOW, PolynomialFit, fit_continuum, polynomial_fit
from specclip_lamost.grid import NATIVE_WAVELENGTH
from specclip_lamost.readers import read_lamost
from specclip_lamost.resample import Interpolation

MODEL = get_modality("lamost_lrs")


def synthetic_star(snr: float, n: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A smooth continuum times Balmer, metal and many weak lines, with Gaussian noise at ``snr``."""
    rng = np.random.default_rng(seed)
    w = NATIVE_WAVELENGTH
    x = (w - 6000) / 3000
    continuum = 1000 * (1.2 - 0.3 * x - 0.5 * x**2 + 0.2 * x**3) * (1 - 0.35 * np.exp(-(((w - 3800) / 250) ** 2)))
    lines = np.ones_like(w)
    for centre, depth, width in [(4102, 0.5, 12), (4341, 0.55, 12), (4861, 0.5, 10), (6563, 0.5, 8), (5175, 0.3, 4), (4227, 0.3, 2.5), (5890, 0.35, 3)]:
        lines *= 1 - depth * np.exp(-0.5 * ((w - centre) / width) ** 2)
    for centre in rng.uniform(3900, 9000, 300):
        lines *= 1 - rng.uniform(0.02, 0.15) * np.exp(-0.5 * ((w - centre) / 1.5) ** 2)
    flux = continuum * lines + rng.normal(0.0, 1.0, (n, w.size)) * continuum / snr
    return continuum, flux


def test_model_grid_and_instrument():
    w = MODEL.wavelength
    assert w.size == 1462 and w[0] == pytest.approx(4000.0) and w[-1] == pytest.approx(5599.64, abs=0.01)
    assert np.allclose(np.diff(np.log10(w)), 1e-4)
    assert MODEL.instrument.resolving_power == 1800
    native = MODEL.instrument.native_wavelength
    assert native[0] == pytest.approx(3700, abs=0.1) and native[-1] == pytest.approx(9099, abs=1)
    assert MODEL.stats_names == ("mean", "std") and MODEL.default_encoder["name"] == "masked_transformer"


def test_default_tokenizer_gives_146_windows_and_a_stats_token():
    tokenizer = create_component("tokenizer", MODEL.default_tokenizer, n_pixels=MODEL.n_pixels, stats_names=MODEL.stats_names)
    assert tokenizer.n_tokens == 147 and tokenizer.stats_tokens() == 1 and tokenizer.token_dim == 20


@pytest.mark.parametrize(("snr", "bias"), [(500, 0.005), (50, 0.015), (10, 0.06)])
def test_continuum_of_a_synthetic_star(snr, bias):
    continuum, flux = synthetic_star(snr)
    fitted = fit_continuum(NATIVE_WAVELENGTH, flux)
    band = (NATIVE_WAVELENGTH >= 4000) & (NATIVE_WAVELENGTH <= 5600)
    ratio = fitted[:, band] / continuum[band]
    # an upper-envelope fit sits slightly above the true continuum, more so when noise lifts the envelope
    assert -0.01 < np.median(ratio) - 1 < bias
    assert np.percentile(np.abs(ratio - 1), 95) < bias + 0.03


def test_the_filters_are_scipy_signals_and_a_kept_fit_is_a_fresh_one(monkeypatch):
    _, flux = synthetic_star(50, n=3)
    medians, smoothed, median, smooth = [], [], continuum.median_filter, continuum.uniform_filter1d
    monkeypatch.setattr(continuum, "median_filter", lambda x, **kw: medians.append(median(x, **kw)) or medians[-1])
    monkeypatch.setattr(continuum, "uniform_filter1d", lambda x, *a, **kw: smoothed.append((x, smooth(x, *a, **kw))) or smoothed[-1][1])
    fit_continuum(NATIVE_WAVELENGTH, flux)
    assert len(medians) == 1 and np.array_equal(medians[0], medfilt2d(flux, (1, continuum.MEDIAN_WIDTH)))
    assert len(smoothed) == 2  # blue and red segments
    for segment, done in smoothed:
        assert np.allclose(done, savgol_filter(segment, SAVGOL_WINDOW, SAVGOL_ORDER, axis=1, mode="nearest"), rtol=1e-12, atol=0)
    for wavelength in (NATIVE_WAVELENGTH[:2000], NATIVE_WAVELENGTH[:2000] * 1.0001):  # a second grid gets its own fit
        assert np.array_equal(polynomial_fit(wavelength, 5)(flux[:, :2000]), PolynomialFit(wavelength, 5)(flux[:, :2000]))
    assert polynomial_fit(NATIVE_WAVELENGTH[:2000], 5) is polynomial_fit(NATIVE_WAVELENGTH[:2000].copy(), 5)
    assert polynomial_fit(NATIVE_WAVELENGTH[:2000], 4) is not polynomial_fit(NATIVE_WAVELENGTH[:2000], 5)


def test_masked_pixels_do_not_pull_the_continuum():
    continuum, flux = synthetic_star(500, n=1)
    broken = flux.copy()
    broken[0, 1200:1260] = 0.0  # a dead stretch (zeros, as bad LAMOST pixels often are)
    usable = np.ones_like(broken, dtype=bool)
    usable[0, 1200:1260] = False
    clean = fit_continuum(NATIVE_WAVELENGTH, flux)
    assert np.allclose(fit_continuum(NATIVE_WAVELENGTH, broken, usable), clean, rtol=0.01)
    assert not np.allclose(fit_continuum(NATIVE_WAVELENGTH, broken), clean, rtol=0.01)


@pytest.mark.parametrize("obsid", ["1010003232", "107209", "966704132", "976308215"])
def test_normalised_flux_reaches_one_in_the_continuum(spectra_by_id, obsid):
    """The upper envelope of the normalised flux (90th percentile after a 15-pixel median, which
    removes noise) sits at 1 over 4000-5600 A: at S/N 10 (G9), 40 (F0), 75 (A1) and 542 (F6)."""
    spectra = spectra_by_id[obsid]
    normalised = spectra.flux[0] / fit_continuum(spectra.wavelength, spectra.flux, ~spectra.mask)[0]
    band = (spectra.wavelength >= 4000) & (spectra.wavelength <= 5600)
    smooth = medfilt(np.where(spectra.mask[0], 1.0, normalised), 15)[band]
    assert np.percentile(smooth, 90) == pytest.approx(1.0, abs=0.03)
    assert 0.85 < np.median(smooth) < 1.0


@pytest.mark.parametrize("obsid", ["1010003232", "976308215", "966704132"])
def test_normalised_flux_is_close_to_the_pipelines(coadd_files, spectra_by_id, obsid):
    """Loosely: the file's own NORMALIZATION (the pipeline's normalised flux) is within a few per
    cent (bench/lamost_continuum.py measures this on all 2,224 DR10 spectra)."""
    spectra = spectra_by_id[obsid]
    pipeline = fits.getdata(coadd_files[obsid], "COADD")["NORMALIZATION"][0].astype(np.float64)
    ours = spectra.flux[0] / fit_continuum(spectra.wavelength, spectra.flux, ~spectra.mask)[0]
    band = (spectra.wavelength >= 4000) & (spectra.wavelength <= 5600) & ~spectra.mask[0]
    assert np.median(np.abs(ours - pipeline)[band]) < 0.08


def test_preprocess_normalises_flux_and_ivar(spectra_by_id):
    raw = spectra_by_id["976308215"]
    out = MODEL.preprocess(raw)
    continuum = fit_continuum(raw.wavelength, raw.flux, ~raw.mask)
    onto = Interpolation.between(raw.wavelength, MODEL.wavelength)
    expected = onto.values(raw.flux / continuum)[0]
    good = ~out.mask[0]
    assert np.allclose(out.flux[0][good], expected[good], rtol=1e-5)
    expected_ivar = onto.values(raw.ivar * continuum**2)[0]
    assert np.allclose(out.ivar[0][good], expected_ivar[good], rtol=0.05)  # variance, not ivar, is interpolated
    assert out.stats[0, 0] == pytest.approx(out.flux[0][good].mean(), rel=1e-5)
    assert out.stats[0, 1] == pytest.approx(out.flux[0][good].std(), rel=1e-4)
    assert 0.85 < out.stats[0, 0] < 1.0 and 0.02 < out.stats[0, 1] < 0.2


def test_a_masked_native_pixel_masks_the_model_pixels_it_touches(spectra_by_id):
    raw = spectra_by_id["976308215"]
    onto = Interpolation.between(raw.wavelength, MODEL.wavelength)
    target = int(np.searchsorted(raw.wavelength, 4800.0))
    assert not raw.mask[0, target - 2 : target + 3].any()
    mask = raw.mask.copy()
    mask[0, target] = True
    out = MODEL.preprocess(Spectra(raw.wavelength, raw.flux, np.where(mask, 0, raw.ivar), mask, raw.ids, raw.meta))
    touching = ((onto.left == target) & (onto.weight < 1)) | ((onto.left + 1 == target) & (onto.weight > 0))
    assert touching.sum() == 2
    newly = out.mask[0] & ~MODEL.preprocess(raw).mask[0]
    assert np.array_equal(newly, touching)
    assert np.all(out.flux[0][newly] == 1.0) and np.all(out.ivar[0][newly] == 0.0)


def test_batch_and_single_preprocessing_agree(spectra_by_id):
    parts = [spectra_by_id[i] for i in ("263414102", "976308215", "1010003232")]
    batch = MODEL.preprocess(Spectra.concatenate(parts))
    for row, part in enumerate(parts):
        single = MODEL.preprocess(part)
        assert np.array_equal(single.mask[0], batch.mask[row])
        assert np.allclose(single.flux[0], batch.flux[row]) and np.allclose(single.stats[0], batch.stats[row])


def test_low_and_high_snr_are_both_usable(spectra_by_id):
    low, high = MODEL.preprocess(spectra_by_id["1010003232"]), MODEL.preprocess(spectra_by_id["976308215"])
    for out in (low, high):
        assert out.mask.mean() < 0.05 and np.all(np.isfinite(out.flux))
        assert 0.8 < out.stats[0, 0] < 1.05
    noise = lambda out: np.median(1 / np.sqrt(out.ivar[~out.mask]))  # noqa: E731
    assert noise(low) > 10 * noise(high)


def test_a_spectrum_with_nothing_in_4000_5600_is_rejected_by_id(spectra_by_id):
    raw = spectra_by_id["976308215"]
    mask = raw.mask | ((raw.wavelength >= 3990) & (raw.wavelength <= 5610))
    blind = Spectra(raw.wavelength, raw.flux, np.where(mask, 0, raw.ivar), mask, ["blind-1"], raw.meta)
    with pytest.raises(ValueError, match="blind-1"):
        MODEL.preprocess(blind)


def test_read_lamost_rejects_what_it_cannot_read(tmp_path):
    from specclip_core.api import ReaderError

    with pytest.raises(ReaderError, match="no such file"):
        read_lamost(tmp_path / "spec-0-none_sp01-001.fits.gz")
