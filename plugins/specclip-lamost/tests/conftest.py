"""Fixtures of the LAMOST plugin's tests: the real files copied into ``data/`` (see PROVENANCE.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from specclip_core.api import Spectra
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
