"""Test setup: the toy plugin is pip-installed into a temporary directory at session start, so every
test (and every subprocess, through PYTHONPATH) discovers it through its real ``specclip`` entry point."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
REPO = TESTS.parent
SHARED_DATA = REPO.parent / "shared" / "data"

_site = Path(tempfile.mkdtemp(prefix="specclip-toy-site-"))
subprocess.run(
    [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index", "--target", str(_site), str(TESTS / "toy_plugin")],
    check=True,
    capture_output=True,
)
sys.path.insert(0, str(_site))
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_site), os.environ.get("PYTHONPATH", "")]))
os.environ.setdefault("SPECCLIP_PROGRESS", "0")


@pytest.fixture(scope="session")
def toy_site() -> Path:
    """Where the toy plugin is installed (on sys.path and PYTHONPATH)."""
    return _site


@pytest.fixture
def toy_store(tmp_path):
    from specclip_toy import make_store

    return make_store(tmp_path / "toy.zarr", n=256)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SPECCLIP_CACHE", str(tmp_path / "cache"))
