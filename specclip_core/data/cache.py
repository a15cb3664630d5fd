"""Where specclip keeps what it downloads and builds: ``$SPECCLIP_CACHE``, else ``~/.cache/specclip``."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    return Path(os.environ.get("SPECCLIP_CACHE", Path.home() / ".cache" / "specclip"))


def dataset_store_path(name: str) -> Path:
    """Where a registered dataset's store is (once fetched)."""
    return cache_dir() / "datasets" / name / "store.zarr"
