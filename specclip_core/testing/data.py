"""Locating the project's shared real data in tests; tests that need it skip cleanly when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA_ENV = "SPECCLIP_SHARED_DATA"


def shared_data_dir() -> Path | None:
    """``$SPECCLIP_SHARED_DATA``, else ``../shared/data`` beside the checkout (found from the cwd upwards)."""
    if os.environ.get(SHARED_DATA_ENV):
        path = Path(os.environ[SHARED_DATA_ENV])
        return path if path.is_dir() else None
    for parent in [Path.cwd(), *Path.cwd().parents]:
        candidate = parent.parent / "shared" / "data"
        if (parent / ".git").exists() and candidate.is_dir():
            return candidate
    return None


def shared_data(*parts: str) -> Path:
    """Path under the shared data folder, or skip the calling test when that folder or path is absent."""
    root = shared_data_dir()
    if root is None:
        pytest.skip(f"shared data not found (set {SHARED_DATA_ENV} or place ../shared/data beside the checkout)")
    path = root.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent")
    return path
