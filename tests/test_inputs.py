"""Opening inputs: regular files only (checked without opening), gzip CRC and FITS checksums verified."""

from __future__ import annotations

import gzip
import os

import numpy as np
import pytest

from specclip_core.testing import deadline


def test_a_fifo_is_rejected_without_being_opened(tmp_path):
    from specclip_core.data.inputs import read_verified
    from specclip_core.errors import ReaderError

    os.mkfifo(tmp_path / "pipe")
    with deadline(10), pytest.raises(ReaderError, match="FIFO") as caught:
        read_verified(tmp_path / "pipe")
    assert caught.value.check == "regular-file"


def test_gzip_crc_is_verified(tmp_path):
    from specclip_core.data.inputs import read_verified
    from specclip_core.errors import ReaderError

    data = gzip.compress(b"0123456789" * 1000)
    (tmp_path / "good.gz").write_bytes(data)
    assert read_verified(tmp_path / "good.gz") == b"0123456789" * 1000
    flipped = bytearray(data)
    flipped[-6] ^= 0x01  # inside the CRC32 of the trailer
    (tmp_path / "crc.gz").write_bytes(bytes(flipped))
    (tmp_path / "cut.gz").write_bytes(data[: len(data) // 2])
    for name, words in (("crc.gz", "CRC check failed"), ("cut.gz", "truncated")):
        with pytest.raises(ReaderError, match=words) as caught:
            read_verified(tmp_path / name)
        assert caught.value.check == "gzip" and caught.value.path == str(tmp_path / name)


def test_fits_checksum_and_datasum_are_verified(tmp_path):
    from astropy.io import fits

    from specclip_core.data.inputs import open_fits
    from specclip_core.errors import ReaderError

    fits.HDUList([fits.PrimaryHDU(np.arange(100, dtype=np.float32))]).writeto(tmp_path / "good.fits", checksum=True)
    with open_fits(tmp_path / "good.fits") as hdul:
        assert hdul[0].data[5] == 5
    data = bytearray((tmp_path / "good.fits").read_bytes())
    data[2880 + 41] ^= 0x10  # a pixel value
    (tmp_path / "bad.fits.gz").write_bytes(gzip.compress(bytes(data)))
    with pytest.raises(ReaderError, match="verification failed") as caught:
        with open_fits(tmp_path / "bad.fits.gz"):
            pass
    assert caught.value.check == "fits-checksum"


def test_a_truncated_fits_file_is_rejected(tmp_path):
    from astropy.io import fits

    from specclip_core.data.inputs import open_fits
    from specclip_core.errors import ReaderError

    fits.HDUList([fits.PrimaryHDU(np.arange(2000, dtype=np.float32))]).writeto(tmp_path / "good.fits")
    (tmp_path / "cut.fits").write_bytes((tmp_path / "good.fits").read_bytes()[:5000])
    with pytest.raises(ReaderError, match="truncated FITS file") as caught:
        with open_fits(tmp_path / "cut.fits"):
            pass
    assert caught.value.check == "fits-size"


def test_verify_keeps_a_small_gzipped_file_and_drops_it_when_the_file_changes(tmp_path):
    import time

    from specclip_core.data.inputs import read_verified, verify
    from specclip_core.errors import ReaderError

    path = tmp_path / "spectrum.gz"
    path.write_bytes(gzip.compress(b"first" * 100))
    verify(path)
    assert read_verified(path) == b"first" * 100
    time.sleep(0.01)
    path.write_bytes(gzip.compress(b"second" * 100))
    assert read_verified(path) == b"second" * 100, "a file rewritten after verify() is read again, not served from what was kept"
    path.write_bytes(gzip.compress(b"third" * 100)[:-4])
    with pytest.raises(ReaderError, match="truncated") as caught:
        verify(path)
    assert caught.value.check == "gzip"


def _table_file(tmp_path, name="table.fits.gz"):
    from astropy.io import fits

    rows = 7
    rng = np.random.default_rng(3)
    columns = [
        fits.Column(name="FLUX", format="3E", array=rng.normal(size=(rows, 3)).astype(np.float32)),
        fits.Column(name="IVAR", format="D", array=rng.uniform(1, 2, rows)),
        fits.Column(name="MASK", format="J", array=np.arange(rows, dtype=np.int32) - 3),
        fits.Column(name="SCALED", format="I", array=np.arange(rows, dtype=np.int16)),
        fits.Column(name="COUNTS", format="I", null=-1, array=np.array([1, -1, 3, 4, 5, 6, 7], dtype=np.int16)),
    ]
    plain = tmp_path / "table.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(columns)]).writeto(plain)
    with fits.open(plain, mode="update") as hdul:  # stored integers 0..6 that mean 10, 10.5, ...
        hdul[1].header["TSCAL4"], hdul[1].header["TZERO4"] = 0.5, 10.0
    (tmp_path / name).write_bytes(gzip.compress(plain.read_bytes()))
    return tmp_path / name


def test_table_columns_read_from_the_content_match_astropys_table_data(tmp_path):
    from specclip_core.data.inputs import open_fits, read_verified, table_columns, verify

    path = _table_file(tmp_path)
    verify(path)
    content = read_verified(path)
    with open_fits(path, content) as hdul:
        columns = table_columns(hdul[1], content, ["flux", "IVAR", "mask", "scaled", "counts"])
        expected = {name: np.asarray(hdul[1].data[name], dtype=np.float64) for name in ("FLUX", "IVAR", "MASK", "SCALED", "COUNTS")}
    for name, values in zip(("flux", "IVAR", "mask", "scaled", "counts"), expected.values()):
        assert columns[name].dtype == np.float64 and columns[name].shape == values.shape
        np.testing.assert_array_equal(columns[name], values, err_msg=name)
    np.testing.assert_array_equal(columns["scaled"], np.arange(7) * 0.5 + 10.0)
    np.testing.assert_array_equal(columns["mask"], np.arange(7) - 3)


def test_table_layouts_are_shared_by_tables_of_the_same_columns_only(tmp_path):
    from astropy.io import fits

    from specclip_core.data.inputs import open_fits, read_verified, table_columns, table_layout

    def table(name, pixels, value, extname):
        path = tmp_path / name
        column = fits.Column(name="FLUX", format=f"{pixels}E", array=np.full((1, pixels), value, dtype=np.float32))
        fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns([column], name=extname)]).writeto(path)
        return path

    layouts, values = [], []
    for path in (table("a.fits", 5, 1.0, "COADD"), table("b.fits", 5, 2.0, "OTHER"), table("c.fits", 8, 3.0, "COADD")):
        content = read_verified(path)
        with open_fits(path, content) as hdul:
            layouts.append(table_layout(hdul[1], content))
            values.append(table_columns(hdul[1], content, ["FLUX"])["FLUX"])
    assert layouts[0] is layouts[1] and layouts[2] is not layouts[0]
    assert [v.shape for v in values] == [(1, 5), (1, 5), (1, 8)] and [v[0, 0] for v in values] == [1.0, 2.0, 3.0]


def test_primary_fits_header_from_the_kept_content_and_from_the_file(tmp_path):
    from astropy.io import fits

    from specclip_core.data.inputs import primary_fits_header, verify

    cards = [(f"KEY{index}", index) for index in range(60)] + [("TELESCOP", "TOY")]
    header = fits.Header(cards)
    plain = tmp_path / "plain.fits"
    fits.PrimaryHDU(np.zeros(4, dtype=np.float32), header=header).writeto(plain)
    gzipped = tmp_path / "packed.fits.gz"
    gzipped.write_bytes(gzip.compress(plain.read_bytes()))
    verify(gzipped)
    for path in (plain, gzipped):
        assert primary_fits_header(path)["TELESCOP"] == "TOY"
        assert primary_fits_header(path)["NAXIS1"] == 4
    for path in (plain, gzipped):  # the first cards: from the kept content, or the file's first bytes
        first = primary_fits_header(path, cards=4)
        assert list(first) == ["SIMPLE", "BITPIX", "NAXIS", "NAXIS1"] and first["NAXIS1"] == 4
    (tmp_path / "text.gz").write_bytes(gzip.compress(b"not a FITS file at all" * 200))
    (tmp_path / "text.fits").write_bytes(b"NAXIS   =                    0" + b" " * 400)
    verify(tmp_path / "text.gz")
    for path in (tmp_path / "text.gz", tmp_path / "text.fits"):
        for cards in (None, 3):
            with pytest.raises((OSError, ValueError)):
                primary_fits_header(path, cards)
