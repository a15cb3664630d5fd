"""gaia_xp preprocessing: normalisation at 550 nm, the paper's error propagation, masking, tokens."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from specclip_core.api import ModalityEncoder, Spectra, create_component, get_modality
from specclip_gaiaxp.grid import WAVELENGTH, resample
from specclip_gaiaxp.library import ApogeeXPLibraryReader
from specclip_gaiaxp.modality import MT_TOKENIZER
from specclip_gaiaxp.preprocess import REFERENCE_INDEX

LIBRARY_SLICE = Path(__file__).parent / "data" / "apogee_library_spectra-40rows.fits.gz"


@pytest.fixture(scope="module")
def library():
    return ApogeeXPLibraryReader().read(LIBRARY_SLICE)


@pytest.fixture(scope="module")
def good(library):
    return library.subset(np.flatnonzero(library.flux[:, REFERENCE_INDEX] > 0))


def make(flux, error, ids=("star-1",), wavelength=WAVELENGTH) -> Spectra:
    flux, error = np.atleast_2d(flux), np.atleast_2d(error)
    return Spectra(wavelength, flux, 1.0 / error**2, np.zeros(flux.shape, dtype=bool), list(ids))


def test_the_grid():
    spec = get_modality("gaia_xp")
    assert spec.n_pixels == 343 and WAVELENGTH[REFERENCE_INDEX] == 5500.0
    assert np.array_equal(spec.wavelength, np.arange(3360.0, 10201.0, 20.0))
    assert spec.stats_names == ("mean", "std")
    assert spec.instrument.resolving_power == 50.0 and np.array_equal(spec.instrument.native_wavelength, WAVELENGTH)


def test_flux_at_550nm_is_exactly_one(good):
    out = get_modality("gaia_xp").preprocess(good)
    assert np.all(out.flux[:, REFERENCE_INDEX] == 1.0)
    assert not out.mask.any()


def test_normalisation_matches_the_file_and_ignores_the_flux_scale(good):
    """Restoring medflux changes nothing after dividing by the flux at 550 nm."""
    from astropy.io import fits

    out = get_modality("gaia_xp").preprocess(good)
    with fits.open(LIBRARY_SLICE) as hdul:
        table = hdul[1].data
    rows = [int(np.flatnonzero(table["gaiaedr3_source_id"] == int(sid))[0]) for sid in good.ids]
    ratio = table["flux"][rows].astype(np.float64) / table["flux"][rows, REFERENCE_INDEX, None]
    np.testing.assert_allclose(out.flux, ratio, rtol=2e-6, atol=1e-7)
    scaled = Spectra(good.wavelength, good.flux * 1000.0, good.ivar / 1e6, good.mask, good.ids, good.meta)
    np.testing.assert_allclose(get_modality("gaia_xp").preprocess(scaled).flux, out.flux, rtol=1e-6)


def test_error_propagation_by_hand():
    rng = np.random.default_rng(3)
    flux = 50.0 + 10.0 * np.sin(WAVELENGTH / 700.0) + rng.normal(0, 0.5, WAVELENGTH.size)
    error = rng.uniform(0.2, 2.0, WAVELENGTH.size)
    flux[10] = 0.0  # defined in the equivalent form even where the flux is zero
    out = get_modality("gaia_xp").preprocess(make(flux, error))
    f550, s550 = flux[REFERENCE_INDEX], error[REFERENCE_INDEX]
    for pixel in (0, 57, 200, 342):
        f, s = flux[pixel], error[pixel]
        sigma = abs(f / f550) * np.sqrt((s / f) ** 2 + (s550 / f550) ** 2)  # paper, footnote 4
        assert out.flux[0, pixel] == pytest.approx(f / f550, rel=1e-6)
        assert out.ivar[0, pixel] == pytest.approx(1.0 / sigma**2, rel=1e-5)
    assert out.ivar[0, 10] == pytest.approx((f550 / error[10]) ** 2, rel=1e-5)
    assert out.ivar[0, REFERENCE_INDEX] == pytest.approx(0.5 * (f550 / s550) ** 2, rel=1e-5)


def test_stats_are_mean_and_std_of_the_usable_normalised_flux(good):
    out = get_modality("gaia_xp").preprocess(good)
    np.testing.assert_allclose(out.stats[:, 0], out.flux.mean(axis=1), rtol=1e-5)
    np.testing.assert_allclose(out.stats[:, 1], out.flux.std(axis=1), rtol=1e-4)


def test_bad_pixels_are_masked_and_filled_from_their_neighbours():
    flux = np.linspace(20.0, 80.0, WAVELENGTH.size)
    ivar = np.full(WAVELENGTH.size, 4.0)
    flux[50], flux[51] = np.nan, np.inf
    ivar[300], ivar[342] = 0.0, -1.0
    raw = Spectra(WAVELENGTH, flux, ivar, np.zeros(flux.shape, dtype=bool), ["star-1"])
    out = get_modality("gaia_xp").preprocess(raw)
    assert set(np.flatnonzero(out.mask[0])) == {50, 51, 300, 342}
    assert np.all(out.ivar[0, [50, 51, 300, 342]] == 0)
    line = np.linspace(20.0, 80.0, WAVELENGTH.size) / flux[REFERENCE_INDEX]
    np.testing.assert_allclose(out.flux[0, [50, 51, 300]], line[[50, 51, 300]], rtol=1e-6)
    assert out.flux[0, 342] == pytest.approx(line[341], rel=1e-6), "an edge pixel takes its neighbour's value"


@pytest.mark.parametrize("value", [0.0, -3.0, np.nan])
def test_no_usable_flux_at_550nm_is_rejected_by_id(value):
    flux = np.full(WAVELENGTH.size, 10.0)
    flux[REFERENCE_INDEX] = value
    with pytest.raises(ValueError, match="Gaia 123: no usable flux at 550 nm"):
        get_modality("gaia_xp").preprocess(make(flux, np.ones_like(flux), ids=["Gaia 123"]))


def test_real_spectra_with_negative_flux_at_550nm_are_rejected(library):
    bad = library.subset(np.flatnonzero(library.flux[:, REFERENCE_INDEX] <= 0))
    assert sorted(bad.ids) == ["2057671934775173760", "5878329877585470720"]
    for row in range(len(bad)):
        with pytest.raises(ValueError, match=f"{bad.ids[row]}: no usable flux at 550 nm"):
            get_modality("gaia_xp").preprocess(bad.subset([row]))


def test_other_samplings_are_interpolated_at_550nm():
    wavelength = np.arange(3365.0, 10200.0, 10.0)  # no sample at 5500 A
    flux = 1.0 + wavelength / 1000.0
    out = get_modality("gaia_xp").preprocess(make(flux, np.full_like(flux, 0.01), wavelength=wavelength))
    inside = (WAVELENGTH >= 3365) & (WAVELENGTH <= 10195)
    np.testing.assert_allclose(out.flux[0, inside], (1.0 + WAVELENGTH[inside] / 1000.0) / 6.5, rtol=1e-6)
    assert np.array_equal(out.mask[0], ~inside)


def test_resample_is_exact_on_the_grid_and_linear_between():
    flux = np.vstack([np.sin(WAVELENGTH / 500.0), np.cos(WAVELENGTH / 500.0)])
    error = np.full_like(flux, 0.1)
    same, same_error = resample(WAVELENGTH, flux, error)
    assert np.array_equal(same, flux) and np.array_equal(same_error, error)
    half = (WAVELENGTH[:-1] + WAVELENGTH[1:]) / 2
    mid, mid_error = resample(WAVELENGTH, flux, error, target=half)
    np.testing.assert_allclose(mid, (flux[:, :-1] + flux[:, 1:]) / 2)
    np.testing.assert_allclose(mid_error, 0.1)


@pytest.mark.parametrize(("tokenizer", "n_tokens", "token_dim"), [({"name": "vector"}, 1, 345), (MT_TOKENIZER, 345, 1)])
def test_tokenizations(good, tokenizer, n_tokens, token_dim):
    """OAE: the whole vector (2 stats + 343 fluxes); MT: one token per sample plus 2 stats tokens."""
    spec = get_modality("gaia_xp")
    made = create_component("tokenizer", tokenizer, n_pixels=spec.n_pixels, stats_names=spec.stats_names)
    out = spec.preprocess(good.subset(slice(0, 4)))
    tokens = made(torch.from_numpy(out.flux), torch.from_numpy(out.stats))
    assert tokens.shape == (4, n_tokens, token_dim)
    assert made.stats_tokens() == (2 if tokenizer is MT_TOKENIZER else 0)


def test_default_encoder_and_masked_transformer_run(good):
    spec = get_modality("gaia_xp")
    assert dict(spec.default_tokenizer) == {"name": "vector"}
    assert dict(spec.default_encoder) == {"name": "mlp_autoencoder", "size": "small"}
    assert spec.tokenizer_for("mlp_autoencoder") == {"name": "vector"}
    assert spec.tokenizer_for("masked_transformer") == MT_TOKENIZER
    out = spec.preprocess(good.subset(slice(0, 3)))
    inputs = {"flux": torch.from_numpy(out.flux), "stats": torch.from_numpy(out.stats)}
    oae = ModalityEncoder("xp")
    small = {"name": "masked_transformer", "depth": 1, "width": 16, "heads": 2}
    transformer = ModalityEncoder("xp", spec.tokenizer_for("masked_transformer"), small)
    assert oae(inputs).pooled.shape == (3, oae.embed_dim)
    assert transformer(inputs).tokens.shape == (3, 345, 16)
