"""Fixtures of the LAMOST plugin's tests: the real files copied into ``data/`` (see PROVENANCE.md)."""

from __future__ import annotations

import gzip
import io
import os
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from specclip_core.api import Spectra
from specclip_core.testing import bit_flips, truncations
from specclip_lamost.readers import read_lamost

DATA = Path(__file__).parent / "data"
COADD_FILES = {
    "1010003232": "spec-59701-HD124107N302613B04_sp03-232.fits.gz",  # G9, S/N(g) 10.6
    "976308215": "spec-59609-TD042836N191049H01_sp08-215.fits.gz",  # F6, S/N(g) 542
    "966704132": "spec-59588-GAC093N22B2_sp04-132.fits.gz",  # A1, S/N(g) 75
}
IMAGE_FILES = {
    "107209": "spec-55859-F5902_sp07-209.fits.gz",  # F0, S/N(g) 40, GroupID 7
    "263414102": "spec-56971-EG222332S021805B01_sp14-102.fits.gz",  # A9V, S/N(g) 31, GroupID 7
}


FAULTS_SOURCE = "spec-59588-GAC093N22B2_sp04-132.fits.gz"
"""The real file the corpus of bad files is made from."""


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def coadd_files() -> dict[str, Path]:
    """OBSID -> copied DR10 file (COADD-table layout)."""
    return {obsid: DATA / name for obsid, name in COADD_FILES.items()}


@pytest.fixture(scope="session")
def image_files() -> dict[str, Path]:
    """OBSID -> copied DR8 file (5 x N image layout)."""
    return {obsid: DATA / name for obsid, name in IMAGE_FILES.items()}


@pytest.fixture(scope="session")
def spectra_by_id(coadd_files, image_files) -> dict[str, Spectra]:
    """Every copied file, read."""
    return {obsid: read_lamost(path) for obsid, path in {**coadd_files, **image_files}.items()}


@pytest.fixture
def bad_lamost_files(data_dir, tmp_path) -> list[tuple[str, Path, tuple[str, str]]]:
    """A corpus of bad files made from a real DR10 file: (case, path, expected (check, words in the
    reason)). Bit flips may also be harmless (a gzip header's time stamp): such a file reads unchanged."""
    directory = tmp_path / "bad"
    directory.mkdir()
    data = (data_dir / FAULTS_SOURCE).read_bytes()
    cases = []

    def write(name, content, expected):
        (directory / name).write_bytes(content)
        cases.append((name, directory / name, expected))

    for position, damaged in bit_flips(data, 60, seed=1):
        write(f"spec-flip-{position}.fits.gz", damaged, ("gzip", ""))
    for size, cut in truncations(data):
        write(f"spec-cut-{size}.fits.gz", cut, ("empty", "empty file") if size == 0 else ("gzip", "truncated gzip file"))
    plain = gzip.decompress(data)
    write("spec-cut-plain.fits", plain[: len(plain) // 2], ("fits-size", "truncated FITS file"))
    write("spec-random.fits.gz", np.random.default_rng(0).bytes(5000), ("sniff", "no reader recognises"))
    with fits.open(io.BytesIO(plain)) as hdul:
        out = io.BytesIO()
        hdul.writeto(out, checksum=True, output_verify="silentfix")
    signed = bytearray(out.getvalue())
    signed[-100] ^= 0x04
    write("spec-checksum.fits", bytes(signed), ("fits-checksum", "verification failed"))
    os.mkfifo(directory / "spec-fifo.fits.gz")
    cases.append(("spec-fifo.fits.gz", directory / "spec-fifo.fits.gz", ("regular-file", "FIFO")))
    (directory / "spec-loop.fits.gz").symlink_to(directory / "spec-loop.fits.gz")
    cases.append(("spec-loop.fits.gz", directory / "spec-loop.fits.gz", ("exists", "symbolic link loop")))
    (directory / "spec-dir.fits.gz").mkdir()
    cases.append(("spec-dir.fits.gz", directory / "spec-dir.fits.gz", ("regular-file", "a directory")))
    return cases
