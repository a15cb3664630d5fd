"""Colours from magnitudes, the table reader's checks and the photometry stage joined with spectra."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from specclip_core.api import ModalityLayout, ReaderError, SpecError, SpectralStore, get_modality, run_spec, validate_spec
from specclip_phot.bands import BANDS, DEFAULT_ERROR
from specclip_phot.reader import PhotometryTableReader, photometry_spectra

TABLE = Path(__file__).parent / "data" / "photometry-40rows.csv"


def test_colours_are_magnitudes_less_the_mean_of_the_usable_bands():
    magnitudes = {"BP": np.array([11.0, 11.0]), "G": np.array([10.0, 10.0]), "RP": np.array([9.0, 9.0]), "J": np.array([8.0, np.nan]), "H": np.array([7.0, 7.0]), "Ks": np.array([6.0, 6.0])}
    out = get_modality("photometry").preprocess(photometry_spectra(np.array(["1", "2"]), magnitudes, {"J": np.array([0.05, 0.05])}))
    np.testing.assert_allclose(out.stats[:, 0], [8.5, 8.6])
    np.testing.assert_allclose(out.flux[0], [2.5, 1.5, 0.5, -0.5, -1.5, -2.5])
    assert out.mask[1, BANDS.index("J")] and out.flux[1, BANDS.index("J")] == 0 and out.ivar[1, BANDS.index("J")] == 0
    np.testing.assert_allclose(out.flux[1][~out.mask[1]], [2.4, 1.4, 0.4, -1.6, -2.6], atol=1e-6)
    assert out.ivar[0, BANDS.index("J")] == pytest.approx(1 / 0.05**2)
    assert out.ivar[0, BANDS.index("G")] == pytest.approx(1 / DEFAULT_ERROR**2)


def test_reader_reads_the_archive_columns_and_names_bad_rows(tmp_path):
    spectra = PhotometryTableReader().read(TABLE)
    assert len(spectra) == 40 and spectra.ids[0] == "5853418002145112704"
    assert spectra.flux[0, BANDS.index("G")] == pytest.approx(10.0496)
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("source_id,phot_g_mean_mag,j_m\n1,10.0,9.0\n2,11.0\n")
    with pytest.raises(ReaderError, match="line 3"):
        PhotometryTableReader().read(ragged)
    words = tmp_path / "words.csv"
    words.write_text("source_id,phot_g_mean_mag\n1,bright\n")
    with pytest.raises(ReaderError, match="phot_g_mean_mag"):
        PhotometryTableReader().read(words)
    assert not PhotometryTableReader().sniff(tmp_path / "missing.csv")


def test_photometry_stage_joins_with_the_store_it_was_built_from(tmp_path):
    source = tmp_path / "source.zarr"
    wavelength = np.linspace(4000.0, 5000.0, 8)
    ids = np.array(["10", "11", "12"])
    with SpectralStore.build(source, {"toy": ModalityLayout(wavelength, ("mean",))}, {"g": "float", "k": "float"}) as store:
        flux = np.ones((3, 8), dtype=np.float32)
        store.append(ids, {"toy": {"flux": flux, "ivar": flux, "mask": np.zeros((3, 8), bool), "stats": np.ones((3, 1), np.float32)}}, {"g": [10.0, 11.0, np.nan], "k": [8.0, 9.5, np.nan]})
    spec = validate_spec(
        {
            "name": "phot-join",
            "stages": {
                "photometry": {"kind": "photometry", "like": {"store": str(source)}, "bands": {"G": "g", "Ks": "k"}},
                "join": {"kind": "join", "stores": {"toy": {"store": str(source)}, "phot": {"stage": "photometry"}}},
            },
        }
    )
    run_spec(spec, run_dir=tmp_path / "run", progress=False)
    photometry = SpectralStore.open(tmp_path / "run" / "photometry" / "store.zarr")
    assert list(photometry.ids) == ["10", "11"]  # the star without any magnitude is left out
    joined = SpectralStore.open(tmp_path / "run" / "join" / "store.zarr")
    assert set(joined.modalities) == {"toy", "photometry"} and list(joined.ids) == ["10", "11"]
    colours = joined.read("photometry")
    np.testing.assert_allclose(colours["flux"][1, [BANDS.index("G"), BANDS.index("Ks")]], [0.75, -0.75])
    np.testing.assert_allclose(colours["stats"][:, 0], [9.0, 10.25])


def test_unknown_band_is_an_error_naming_it():
    with pytest.raises(SpecError, match="'W1'"):
        validate_spec({"name": "bad", "stages": {"photometry": {"kind": "photometry", "like": {"dataset": "apogee-xp"}, "bands": {"W1": "w1mpro"}}}})
