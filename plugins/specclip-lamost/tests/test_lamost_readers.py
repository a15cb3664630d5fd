"""The two LAMOST readers on real files: sniffing, header meta, ids, masks, and clear errors."""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from specclip_core.api import ReaderError, get_modality, get_registry
from specclip_core.testing import shared_data
from specclip_lamost.readers import LamostCoaddReader, LamostImageReader, read_lamost

COADD, IMAGE = LamostCoaddReader(), LamostImageReader()


def rewrite(src: Path, dst: Path, change) -> Path:
    """A copy of ``src`` at ``dst`` after ``change(hdul)`` edits it in memory."""
    with fits.open(src) as hdul:
        hdul.readall()
        change(hdul)
        hdul.writeto(dst, output_verify="ignore")  # the DR10 primary header is not standard-conforming
    return dst


def test_plugin_registers_modality_alias_and_readers():
    registry = get_registry()
    assert get_modality("lamost").name == "lamost_lrs"
    assert {"lamost_lrs_coadd", "lamost_lrs_image"} <= set(registry.names("reader"))
    assert registry.plugin_of("modality", "lamost_lrs") == "lamost"


def test_each_layout_is_sniffed_by_its_own_reader(coadd_files, image_files, tmp_path):
    for path in coadd_files.values():
        assert COADD.sniff(path) and not IMAGE.sniff(path)
    for path in image_files.values():
        assert IMAGE.sniff(path) and not COADD.sniff(path)
    text = tmp_path / "spec-1-x_sp01-001.fits"
    text.write_text("not fits")
    assert not COADD.sniff(text) and not IMAGE.sniff(text)
    assert not COADD.sniff(tmp_path / "absent.fits")
    renamed = tmp_path / "star.csv"
    renamed.write_bytes(next(iter(coadd_files.values())).read_bytes())
    assert not COADD.sniff(renamed), "only FITS file names are sniffed"



def test_a_file_not_named_spec_is_sniffed_by_its_telescope_keyword_wherever_it_stands(coadd_files, tmp_path):
    from specclip_core.api import verify

    source = next(iter(coadd_files.values()))

    def telescope_last(hdul):
        value = hdul[0].header.pop("TELESCOP")
        hdul[0].header["TELESCOP"] = value  # past the first 2880-byte block of cards

    def other_telescope(hdul):
        hdul[0].header["TELESCOP"] = "OTHER"

    last = rewrite(source, tmp_path / "star.fits", telescope_last)
    assert list(fits.getheader(last, 0)).index("TELESCOP") >= 36
    other = rewrite(source, tmp_path / "other.fits", other_telescope)
    for path, expected in ((last, True), (other, False)):
        packed = path.with_name(path.name + ".gz")
        packed.write_bytes(gzip.compress(path.read_bytes()))
        verify(packed)  # as the stream does before sniffing: the content is kept and sniffed from memory
        for candidate in (path, packed):
            assert COADD.sniff(candidate) is expected and not IMAGE.sniff(candidate), candidate.name

def test_coadd_header_meta_and_id(coadd_files, spectra_by_id):
    for obsid, path in coadd_files.items():
        spectra = spectra_by_id[obsid]
        header = fits.getheader(path)
        assert list(spectra.ids) == [obsid] == [str(header["OBSID"])]
        assert spectra.meta["obsid"][0] == header["OBSID"]
        for key in ("ra", "dec", "snrg", "snrr", "z"):
            assert spectra.meta[key][0] == pytest.approx(header[key.upper()])
        assert spectra.meta["class"][0] == "STAR"
        assert spectra.meta["subclass"][0] == header["SUBCLASS"].strip()
    low = spectra_by_id["1010003232"]
    assert low.meta["snrg"][0] == pytest.approx(10.63) and low.meta["subclass"][0] == "G9"


def test_coadd_arrays(coadd_files, spectra_by_id):
    spectra = spectra_by_id["976308215"]
    table = fits.getdata(coadd_files["976308215"], "COADD")[0]
    assert spectra.wavelength.dtype == np.float64 and spectra.wavelength.size == 3909
    assert spectra.wavelength[0] == pytest.approx(3699.986, abs=1e-3) and spectra.wavelength[-1] == pytest.approx(9099.1, abs=0.1)
    assert np.array_equal(spectra.flux[0], table["FLUX"].astype(np.float32))
    good = ~spectra.mask[0]
    assert np.array_equal(spectra.ivar[0][good], table["IVAR"][good].astype(np.float32))


def test_image_header_meta_and_arrays(image_files, spectra_by_id):
    spectra = spectra_by_id["107209"]
    data = fits.getdata(image_files["107209"])
    assert list(spectra.ids) == ["107209"] and spectra.meta["obsid"][0] == 107209
    assert spectra.meta["subclass"][0] == "F0" and spectra.meta["snrg"][0] == pytest.approx(39.97)
    assert spectra.wavelength.size == data.shape[1] == 3892
    assert np.array_equal(spectra.flux[0], data[0]) and np.array_equal(spectra.wavelength, data[2].astype(np.float64))


def test_masked_pixels_carry_zero_ivar(spectra_by_id):
    for spectra in spectra_by_id.values():
        assert np.all(spectra.ivar[spectra.mask] == 0)
        assert np.all(spectra.ivar[~spectra.mask] > 0)
    low = spectra_by_id["1010003232"]
    assert 20 < low.mask.sum() < 100  # 24 ANDMASK pixels, 53 with IVAR 0 in the file


def test_andmask_and_nonfinite_flux_are_masked(coadd_files, image_files, tmp_path):
    def spoil_table(hdul):
        row = hdul["COADD"].data[0]
        row["ANDMASK"][1000] = 4
        row["FLUX"][1500] = np.nan

    def spoil_image(hdul):
        hdul[0].data[3, 1000] = 4
        hdul[0].data[0, 1500] = np.inf

    for src, spoil in ((coadd_files["976308215"], spoil_table), (image_files["107209"], spoil_image)):
        spectra = read_lamost(rewrite(src, tmp_path / src.name, spoil))
        assert spectra.mask[0, [1000, 1500]].all()
        assert spectra.ivar[0, 1000] == 0 and spectra.ivar[0, 1500] == 0


def test_plain_fits_reads_like_gzip(coadd_files, tmp_path, spectra_by_id):
    plain = tmp_path / coadd_files["966704132"].name.removesuffix(".gz")
    plain.write_bytes(gzip.decompress(coadd_files["966704132"].read_bytes()))
    spectra, expected = read_lamost(plain), spectra_by_id["966704132"]
    assert np.array_equal(spectra.flux, expected.flux) and np.array_equal(spectra.mask, expected.mask)


def test_missing_header_fields_become_nan_or_empty(coadd_files, tmp_path):
    def strip(hdul):
        for key in ("SNRR", "Z", "SUBCLASS"):
            del hdul[0].header[key]

    spectra = read_lamost(rewrite(coadd_files["976308215"], tmp_path / "spec-strip.fits", strip))
    assert np.isnan(spectra.meta["snrr"][0]) and np.isnan(spectra.meta["z"][0]) and spectra.meta["subclass"][0] == ""
    assert spectra.meta["snrg"][0] == pytest.approx(542.16)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda h: h[0].header.remove("OBSID"), "OBSID"),
        (lambda h: h[0].header.set("COEFF0", 3.58), "disagree with COEFF0/COEFF1"),
        (lambda h: h.__setitem__(1, fits.BinTableHDU.from_columns([fits.Column("FLUX", "3909E", array=h[1].data["FLUX"])], name="COADD")), "lacks column"),
        (lambda h: h.__delitem__(1), "no COADD"),
    ],
)
def test_inconsistent_coadd_files_are_rejected_by_name(coadd_files, tmp_path, change, reason):
    bad = rewrite(coadd_files["976308215"], tmp_path / "spec-bad.fits", change)
    with pytest.raises(ReaderError, match=reason) as caught:
        COADD.read(bad)
    assert str(bad) in str(caught.value)


def test_image_without_wavelength_row_uses_coeff(image_files, tmp_path, spectra_by_id):
    def rename_rows(hdul):
        hdul[0].header["EXTEN0"] = "Flux, Inverse, Continuum, Andmask, Ormask"

    spectra = read_lamost(rewrite(image_files["107209"], tmp_path / "spec-old.fits", rename_rows))
    assert np.allclose(spectra.wavelength, spectra_by_id["107209"].wavelength, rtol=1e-6)


def test_image_of_wrong_shape_is_rejected(image_files, tmp_path):
    bad = rewrite(image_files["107209"], tmp_path / "spec-4rows.fits", lambda h: setattr(h[0], "data", h[0].data[:4]))
    with pytest.raises(ReaderError, match="5 x N image") as caught:
        IMAGE.read(bad)
    assert str(bad) in str(caught.value)


def test_dr8_obsids_are_the_groups_combined_obsid(data_dir, image_files):
    with open(data_dir / "groups.csv", newline="") as handle:
        rows = {row["combined_obsid"]: row for row in csv.DictReader(handle)}
    for obsid, path in image_files.items():
        assert read_lamost(path).ids[0] == obsid
        assert Path(rows[obsid]["combined_file"]).name == path.name
        assert rows[obsid]["GroupID"] == "7.0"


@pytest.mark.parametrize("folder", ["lamost-dr10", "lamost-dr8-repeats"])
def test_a_sample_of_the_shared_files_reads(folder):
    files = sorted(shared_data(folder, "spectra").glob("spec-*.fits.gz"))
    for path in files[:: max(len(files) // 12, 1)]:
        spectra = read_lamost(path)
        assert spectra.ids[0] == str(fits.getval(path, "OBSID"))
        assert 3600 < spectra.wavelength[0] < 3900 and spectra.wavelength[-1] > 8900
