"""What data will hold, where that is known without fetching or running anything: a store on disk or
a registered dataset already in the cache, and the columns of a CSV file."""

from __future__ import annotations

import csv
from pathlib import Path

from specclip_core.data.cache import dataset_store_path
from specclip_core.data.store import SpectralStore
from specclip_core.errors import StoreError


def cached_store(source: str | Path) -> SpectralStore | None:
    """The complete store at path ``source``, or registered dataset ``source``'s store if it is in the
    cache; None otherwise (nothing is fetched)."""
    path = Path(source) if Path(source).exists() else dataset_store_path(str(source))
    if not (path / "zarr.json").exists():
        return None
    try:
        return SpectralStore.open(path)
    except StoreError:
        return None


def csv_columns(path: str | Path) -> list[str] | None:
    """The column names of a CSV file (its first line that is neither blank nor a '#' comment); None when unreadable."""
    try:
        with open(path, newline="") as handle:
            for row in csv.reader(handle):
                if row and not row[0].lstrip().startswith("#"):
                    return [name.strip() for name in row]
    except (OSError, UnicodeDecodeError):
        return None
    return None
