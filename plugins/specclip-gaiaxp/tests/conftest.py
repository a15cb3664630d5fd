"""Shared fixtures: the copied sample files, an isolated specclip cache, no progress bars."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.table import Column, Table

DATA = Path(__file__).parent / "data"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SPECCLIP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SPECCLIP_PROGRESS", "0")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The copied sample files (see data/PROVENANCE.md)."""
    return DATA


def with_array_columns(path: Path) -> Table:
    """The CSV table with its '(a, b, ...)' text columns turned into float vector columns."""
    table = Table.read(path, format="ascii.csv")
    for name in table.colnames:
        if table[name].dtype.kind == "U":
            rows = [np.array(text.strip("()").split(","), dtype=np.float64) for text in table[name]]
            table.replace_column(name, Column(np.stack(rows), name=name))
    return table


@pytest.fixture(scope="session")
def archive_formats(tmp_path_factory) -> dict[str, Path]:
    """XP_CONTINUOUS_RAW.csv and the same table written by astropy as ECSV and as FITS."""
    directory = tmp_path_factory.mktemp("formats")
    table = with_array_columns(DATA / "XP_CONTINUOUS_RAW.csv")
    out = {"csv": DATA / "XP_CONTINUOUS_RAW.csv"}
    for kind in ("ecsv", "fits"):
        out[kind] = directory / f"XP_CONTINUOUS_RAW.{kind}"
        table.write(out[kind], format="ascii.ecsv" if kind == "ecsv" else "fits")
    return out
