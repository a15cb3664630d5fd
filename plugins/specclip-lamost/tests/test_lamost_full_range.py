"""The whole-range modality lamost_lrs_full (3850-8900 A, both arms) against lamost_lrs (4000-5600 A);
its conformance suite is in test_lamost_conformance.py."""

from __future__ import annotations

import numpy as np
import pytest

from specclip_core.api import SpectralStore, get_modality, ingest_files, readers_for
from specclip_lamost.grid import FULL_PIXELS_BLUE_OF_MODEL, FULL_WAVELENGTH, MODEL_PIXELS, MODEL_WAVELENGTH
from specclip_lamost.readers import read_lamost


def test_the_paper_grid_is_a_stretch_of_the_full_grid():
    assert FULL_WAVELENGTH.size == 3640
    assert FULL_WAVELENGTH[0] == pytest.approx(3850.0, abs=0.01) and FULL_WAVELENGTH[-1] == pytest.approx(8899.4, abs=0.1)
    stretch = FULL_WAVELENGTH[FULL_PIXELS_BLUE_OF_MODEL : FULL_PIXELS_BLUE_OF_MODEL + MODEL_PIXELS]
    np.testing.assert_array_equal(stretch, MODEL_WAVELENGTH)


def test_the_full_modality_reads_with_the_lamost_readers():
    full = get_modality("lamost_full")
    assert full.name == "lamost_lrs_full" and full.reader_modality == "lamost_lrs"
    assert {r.name for r in readers_for("lamost_lrs_full")} == {r.name for r in readers_for("lamost_lrs")} == {"lamost_lrs_coadd", "lamost_lrs_image"}


@pytest.mark.parametrize("obsid", ["1010003232", "976308215", "966704132"])
def test_both_ranges_give_the_same_flux_where_they_overlap(coadd_files, obsid):
    raw = read_lamost(coadd_files[obsid])
    paper, full = get_modality("lamost_lrs").preprocess(raw), get_modality("lamost_lrs_full").preprocess(raw)
    assert full.flux.shape == (1, 3640)
    stretch = slice(FULL_PIXELS_BLUE_OF_MODEL, FULL_PIXELS_BLUE_OF_MODEL + MODEL_PIXELS)
    np.testing.assert_allclose(full.flux[:, stretch], paper.flux, rtol=1e-6)
    np.testing.assert_allclose(full.ivar[:, stretch], paper.ivar, rtol=1e-6)
    np.testing.assert_array_equal(full.mask[:, stretch], paper.mask)
    red = FULL_WAVELENGTH > 6100
    assert (~full.mask[0, red]).mean() > 0.9  # the red arm is there and mostly usable
    assert 0.3 < np.median(full.flux[0, red & ~full.mask[0]]) < 1.2  # normalised by the red continuum fit


def test_an_ingest_of_the_full_range(data_dir, tmp_path):
    report = ingest_files([data_dir], "lamost_lrs_full", tmp_path / "full.zarr", progress=False)
    assert report.n_spectra_written == 5 and not report.skipped_files and not report.rejected_spectra
    store = SpectralStore.open(tmp_path / "full.zarr")
    assert store.wavelength("lamost_lrs_full").size == 3640
