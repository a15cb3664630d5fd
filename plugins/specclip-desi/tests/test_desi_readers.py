"""The DESI readers on the real specutils files: every target fibre read, the rest skipped with reasons."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from astropy.io import fits

from specclip_core.api import ReaderError, ingest_files
from specclip_desi.grid import NATIVE_WAVELENGTH, arm_offset
from specclip_desi.readers import DesiCoaddReader, DesiSpectraReader

KEPT = {
    "coadd-5-169-thru20210419.fits": ["39633300968442591"],
    "coadd-sv3-dark-26065.fits": ["39627866878511337", "39627866878514741"],
    "spectra-5-169-thru20210419.fits": ["39633300968442591"],
    "spectra-sv3-dark-26065.fits": ["39627866878511337"],
}
SKIPPED = {
    "coadd-5-169-thru20210419.fits": {"2500": "no target", "2501": "no valid pixel", "2502": "no target", "2503": "no target"},
    "coadd-sv3-dark-26065.fits": {"1551": "no target", "1555": "no target", "1570": "not a target (OBJTYPE 'SKY')"},
    "spectra-5-169-thru20210419.fits": {"2500": "no target", "2501": "no valid pixel", "2502": "no target", "2503": "no target"},
    "spectra-sv3-dark-26065.fits": {"1551": "no target", "1555": "no target", "1570": "not a target (OBJTYPE 'SKY')", "1571": "no valid pixel"},
}


def reader_for(name):
    return DesiCoaddReader() if name.startswith("coadd-") else DesiSpectraReader()


@pytest.mark.parametrize("name", sorted(KEPT))
def test_every_target_fibre_is_read_and_the_rest_skipped_by_fibre(desi_files, name):
    spectra = reader_for(name).read(desi_files[name])
    assert list(spectra.ids) == KEPT[name]
    with fits.open(desi_files[name]) as hdul:
        assert len(spectra) + len(spectra.skipped) == len(hdul["FIBERMAP"].data)
    reasons = {reason.split()[1]: reason for _, reason in spectra.skipped}
    assert set(reasons) == set(SKIPPED[name])
    for fibre, words in SKIPPED[name].items():
        assert words in reasons[fibre]
    assert np.array_equal(spectra.wavelength, NATIVE_WAVELENGTH) and spectra.flux.shape == (len(spectra), 7781)
    assert np.all(spectra.ivar[spectra.mask] == 0) and np.all(spectra.ivar[~spectra.mask] > 0)


def test_the_readers_sniff_their_own_files_only(desi_files):
    for name, path in desi_files.items():
        assert DesiCoaddReader().sniff(path) == name.startswith("coadd-")
        assert DesiSpectraReader().sniff(path) == name.startswith("spectra-")


def test_arms_are_merged_by_inverse_variance_where_they_overlap(desi_files):
    path = desi_files["coadd-sv3-dark-26065.fits"]
    spectra = DesiCoaddReader().read(path)
    with fits.open(path) as hdul:
        row = 2  # TARGETID 39627866878511337
        arrays = {arm: [np.asarray(hdul[f"{arm}_{k}"].data[row], dtype=np.float64) for k in ("FLUX", "IVAR", "MASK")] for arm in "BRZ"}
    for arm in "BRZ":  # outside any overlap the arm's own values
        flux, ivar, mask = arrays[arm]
        good = (mask == 0) & (ivar > 0)
        cut = arm_offset(arm) + np.flatnonzero(good)
        inside = NATIVE_WAVELENGTH[cut]
        alone = ~(((inside >= 5760) & (inside <= 5800)) | ((inside >= 7520) & (inside <= 7620)))
        np.testing.assert_allclose(spectra.flux[0, cut[alone]], flux[good][alone], rtol=1e-6)
    # 7520-7620 A: R and Z overlap
    r_flux, r_ivar, r_mask = (a[arm_offset("Z") - arm_offset("R") :] for a in arrays["R"])
    z_flux, z_ivar, z_mask = (a[: r_flux.size] for a in arrays["Z"])
    wr, wz = np.where(r_mask == 0, r_ivar, 0.0), np.where(z_mask == 0, z_ivar, 0.0)
    both = (wr > 0) & (wz > 0)
    assert both.sum() > 50
    expected = (wr * r_flux + wz * z_flux) / (wr + wz)
    merged = slice(arm_offset("Z"), arm_offset("Z") + r_flux.size)
    np.testing.assert_allclose(spectra.flux[0, merged][both], expected[both], rtol=1e-5)
    np.testing.assert_allclose(spectra.ivar[0, merged][both], (wr + wz)[both], rtol=1e-5)


def test_masked_pixels_get_zero_ivar(desi_files, tmp_path):
    path = tmp_path / "coadd-masked.fits"
    with fits.open(desi_files["coadd-sv3-dark-26065.fits"]) as hdul:
        hdul["B_MASK"].data[2, 1000:1010] = 4
        hdul.writeto(path, checksum=True)
    spectra = DesiCoaddReader().read(path)
    assert spectra.mask[0, 1000:1010].all() and np.all(spectra.ivar[0, 1000:1010] == 0)


def test_gaia_source_id_from_ref_id(desi_files, tmp_path):
    path = tmp_path / "coadd-gaia.fits"
    with fits.open(desi_files["coadd-sv3-dark-26065.fits"]) as hdul:
        hdul["FIBERMAP"].data["REF_ID"][2] = 3857447330829004544
        hdul["FIBERMAP"].data["REF_CAT"][2] = "G2"
        hdul.writeto(path, checksum=True)
    spectra = DesiCoaddReader().read(path)
    assert list(spectra.meta["gaia_source_id"]) == ["3857447330829004544", ""]
    assert spectra.meta["resolving_power_b"][0] == pytest.approx(2754, abs=5)


def test_a_file_without_any_target_is_rejected_with_every_reason(desi_files, tmp_path):
    path = tmp_path / "coadd-none.fits"
    with fits.open(desi_files["coadd-5-169-thru20210419.fits"]) as hdul:
        hdul["FIBERMAP"].data["OBJTYPE"][:] = "SKY"
        hdul.writeto(path, checksum=True)
    with pytest.raises(ReaderError, match=r"coadd-none.fits.*fibre 2500.*fibre 2504 .*OBJTYPE 'SKY'"):
        DesiCoaddReader().read(path)


def test_ingest_reports_the_skipped_fibres_with_their_file(desi_files, tmp_path):
    folder = tmp_path / "files"
    folder.mkdir()
    for path in desi_files.values():
        shutil.copy(path, folder)
    report = ingest_files([folder], "desi", tmp_path / "desi.zarr", progress=False, duplicates="first")
    assert report.n_spectra_read == 5 and report.n_spectra_written == 3  # two targets are in a coadd and a spectra file
    skips = [p for p in report.problems if p.check == "reader-skip"]
    assert len(skips) == 15
    assert {p.file.rsplit("/", 1)[-1] for p in skips} == set(SKIPPED)
