"""The DR8+-style writer: files the COADD reader reads back bit for bit, headers, simulated flag."""

from __future__ import annotations

import gzip
import io

import numpy as np
import pytest
from astropy.io import fits

from specclip_core.api import Spectra, get_registry
from specclip_lamost.readers import LamostCoaddReader, LamostImageReader
from specclip_lamost.writer import ABSENT_NORMALIZATION, C_KMS, LamostCoaddWriter, obsid_for

WRITER, READER = LamostCoaddWriter(), LamostCoaddReader()


def test_the_writer_is_registered_for_lamost_lrs():
    registry = get_registry()
    assert "lamost_lrs_coadd" in registry.names("writer")
    assert registry.get("writer", "lamost_lrs_coadd").build().modality == "lamost_lrs"
    assert registry.plugin_of("writer", "lamost_lrs_coadd") == "lamost"


def test_real_files_come_back_bit_for_bit(spectra_by_id, tmp_path):
    for obsid, original in spectra_by_id.items():
        (path,) = WRITER.write(original, tmp_path / obsid)
        assert READER.sniff(path) and not LamostImageReader().sniff(path)
        back = READER.read(path)
        assert list(back.ids) == [obsid]
        for name in ("wavelength", "flux", "ivar", "mask"):
            np.testing.assert_array_equal(getattr(back, name), getattr(original, name), err_msg=name)
        for key in ("obsid", "ra", "dec", "snrg", "snrr", "z", "class", "subclass"):
            np.testing.assert_array_equal(back.meta[key], original.meta[key], err_msg=key)
        assert back.meta["simulated"].tolist() == [False]
        header = fits.getheader(path)
        assert header["SIMULATED"] is False and path.name == f"spec-{obsid}.fits.gz"


def test_fast_bytes_equal_astropys_own_writer(spectra_by_id):
    spectra = spectra_by_id["976308215"]
    _, fast = WRITER.fits_bytes(spectra, 0)
    header, _ = WRITER.header(spectra, 0)
    buffer = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(header=header), fits.BinTableHDU(data=WRITER.record(spectra, 0), name="COADD")]).writeto(buffer)
    assert fast == buffer.getvalue()


def _simulated(n: int = 3) -> Spectra:
    rng = np.random.default_rng(1)
    wavelength = 10 ** (3.5682 + 1e-4 * np.arange(200))
    mask = np.zeros((n, 200), bool)
    mask[0, 10:20] = True
    ivar = np.where(mask, 0.0, rng.uniform(1, 2, (n, 200)))
    meta = {"simulated": np.ones(n, bool), "snr": np.array([12.5, 80.0, 300.0]), "rv": np.array([-30.0, 0.0, 150.0]), "teff": np.full(n, 5000.0)}
    return Spectra(wavelength, rng.normal(1, 0.1, (n, 200)), ivar, mask, ["3314245809274264832", "47974788992607488", "12"], meta)


def test_simulated_spectra_say_so_in_name_and_header(tmp_path):
    spectra = _simulated()
    paths = WRITER.write(spectra, tmp_path)
    assert [p.name for p in paths] == [f"spec-sim-{i}.fits.gz" for i in spectra.ids]
    for row, path in enumerate(paths):
        with fits.open(path) as hdul:
            header, table = hdul[0].header, hdul["COADD"].data[0]
            assert header["SIMULATED"] is True and header["OBSID"] == int(spectra.ids[row])
            assert header["SNRG"] == spectra.meta["snr"][row]
            assert header["Z"] == pytest.approx(spectra.meta["rv"][row] / C_KMS, rel=1e-12)
            assert header["CLASS"] == "STAR" and header["NORM"] == 0
            assert "RA" not in header and "SNRR" not in header
            assert 10 ** header["COEFF0"] == pytest.approx(spectra.wavelength[0])
            np.testing.assert_array_equal(table["ANDMASK"] != 0, spectra.mask[row])
            np.testing.assert_array_equal(table["ORMASK"] != 0, spectra.mask[row])
            assert (table["NORMALIZATION"] == ABSENT_NORMALIZATION).all()
        back = READER.read(path)
        assert back.meta["simulated"].tolist() == [True]
        np.testing.assert_array_equal(back.flux[0], spectra.flux[row])
        np.testing.assert_array_equal(back.mask[0], spectra.mask[row])


def test_files_are_small_and_byte_identical_for_identical_input(tmp_path):
    spectra = _simulated()
    first = [p.read_bytes() for p in WRITER.write(spectra, tmp_path / "a")]
    second = [p.read_bytes() for p in WRITER.write(spectra, tmp_path / "b")]
    assert first == second
    assert gzip.decompress(first[0])[:6] == b"SIMPLE"


def test_ids_that_are_not_integers_get_a_synthetic_obsid(tmp_path):
    spectra = _simulated()
    spectra = Spectra(spectra.wavelength, spectra.flux, spectra.ivar, spectra.mask, ["2M00000002+7417074", "b", "c"], spectra.meta)
    paths = WRITER.write(spectra, tmp_path)
    header = fits.getheader(paths[0])
    assert header["SPECID"] == "2M00000002+7417074"
    assert header["OBSID"] == obsid_for("2M00000002+7417074")[0] < 2**52
    assert obsid_for("42") == (42, False) and obsid_for("x")[1]
    assert obsid_for("042")[1] and obsid_for(" 42")[1] and obsid_for(str(2**63))[1]  # would not come back as given
    duplicate = Spectra(spectra.wavelength, spectra.flux[:2], spectra.ivar[:2], spectra.mask[:2], ["7", "7"], {})
    with pytest.raises(ValueError, match="same file"):
        WRITER.write(duplicate, tmp_path / "dup")
