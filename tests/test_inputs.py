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
