"""Reader of Gaia archive XP *continuous* spectra (basis-function coefficients) in CSV, ECSV or FITS.

Each band (BP, RP) has ``{band}_coefficients``, ``{band}_coefficient_errors`` and
``{band}_coefficient_correlations`` (the upper triangle, n(n-1)/2 values). ``gaiaxpy`` samples
them at 336-1020 nm every 2 nm in W m-2 nm-1. Files without ``{band}_standard_deviation`` (the
archive's reduced column sets) are read with it set to 1: the sampled flux does not depend on it,
and the sampled error does not either, since ``gaiaxpy`` divides the coefficient errors by it and
multiplies the sampled error by it again. A row with neither band gives an all-NaN spectrum
(rejected by preprocessing, by id).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from specclip_core.api import Reader, ReaderError, Spectra
from specclip_gaiaxp import calibrate
from specclip_gaiaxp.assemble import raw_spectra
from specclip_gaiaxp.grid import WAVELENGTH, to_flux_unit
from specclip_gaiaxp.tables import column_names, float_rows, read_table_chunks, scalar_column, table_format

if TYPE_CHECKING:
    import pandas as pd
    from astropy.table import Table

BANDS = ("bp", "rp")
ARRAYS = ("coefficients", "coefficient_errors", "coefficient_correlations")
TABLE_PATTERNS = ("*.csv", "*.csv.gz", "*.ecsv", "*.ecsv.gz", "*.fits", "*.fits.gz")


class GaiaXPContinuousReader(Reader):
    """XP continuous spectra from the Gaia archive, sampled with ``gaiaxpy``; ids are Gaia source ids."""

    name = "gaiaxp_continuous"
    modality = "gaia_xp"
    patterns = TABLE_PATTERNS
    description = "Gaia archive XP continuous spectra (CSV, ECSV, FITS), sampled at 336-1020 nm with gaiaxpy"

    def sniff(self, path: Path) -> bool:
        names = set(column_names(Path(path))) if table_format(Path(path)) else set()
        return "source_id" in names and any(f"{band}_coefficients" in names for band in BANDS)

    def read(self, path: Path) -> Spectra:
        return Spectra.concatenate(list(self.read_chunks(path, sys.maxsize)))

    shares = True

    def read_chunks(self, path: Path, rows: int) -> Iterator[Spectra]:
        """Pieces of at most ``rows`` and at most :data:`calibrate.CHUNK` rows: a row's coefficients and
        correlations take more memory than its sampled spectrum, and gaiaxpy's working set far more,
        so each piece is sampled and let go before the next is parsed."""
        return self.read_share(path, rows, 0, 1)

    def read_share(self, path: Path, rows: int, share: int, shares: int) -> Iterator[Spectra]:
        path, block = Path(path), min(rows, calibrate.CHUNK)
        for number, table in enumerate(read_table_chunks(path, ["source_id"], block, share, shares)):
            spectra = _spectra(path, table, (share + number * shares) * block)
            del table  # before the next piece is parsed: one piece in memory at a time
            yield spectra


def _spectra(path: Path, table: Table, first: int) -> Spectra:
    """Raw spectra of one piece of a continuous XP table (its rows from ``first`` on), sampled with gaiaxpy."""
    import pandas as pd

    bands = [band for band in BANDS if f"{band}_coefficients" in table.colnames]
    if not bands:
        raise ReaderError(path, "no bp_coefficients or rp_coefficients column: not an XP continuous spectra table")
    source_id = scalar_column(table, "source_id", np.int64)
    if (source_id <= 0).any():
        raise ReaderError(path, f"{int((source_id <= 0).sum())} rows have no valid source_id")
    columns: dict[str, list] = {"source_id": list(source_id)}
    for band in BANDS:
        columns.update(_band_columns(path, table, band, first) if band in bands else _missing_band(len(table), band))
    frame = pd.DataFrame(columns)
    covered = np.logical_or.reduce([_available(frame, band) for band in BANDS])
    flux = np.full((len(frame), WAVELENGTH.size), np.nan)
    error = flux.copy()
    if covered.any():
        try:
            flux[covered], error[covered] = calibrate.sample(frame[covered])
        except Exception as problem:  # gaiaxpy raises ValueError, KeyError, ... for input it cannot use
            raise ReaderError(path, f"gaiaxpy cannot sample these spectra: {type(problem).__name__}: {problem}") from None
    ids = source_id.astype(str)
    return raw_spectra(path, WAVELENGTH, to_flux_unit(flux), to_flux_unit(error), ids, {"source_id": ids})


def _available(frame: pd.DataFrame, band: str) -> np.ndarray:
    """Rows where gaiaxpy can use the band: coefficients and a finite standard deviation."""
    return (frame[f"{band}_n_parameters"].to_numpy() > 0) & np.isfinite(frame[f"{band}_standard_deviation"].to_numpy(dtype=np.float64))


def _band_columns(path: Path, table: Table, band: str, first: int) -> dict[str, list]:
    """gaiaxpy's input columns for one band, checked for consistent lengths row by row (rows of the
    file numbered from ``first``)."""
    missing = [f"{band}_{name}" for name in ARRAYS if f"{band}_{name}" not in table.colnames]
    if missing:
        raise ReaderError(path, f"has {band}_coefficients but lacks {missing}")
    coefficients, errors, correlations = (float_rows(table, f"{band}_{name}", path) for name in ARRAYS)
    sizes = np.array([c.size for c in coefficients])
    declared = scalar_column(table, f"{band}_n_parameters", np.int64) if f"{band}_n_parameters" in table.colnames else sizes
    if f"{band}_standard_deviation" in table.colnames:
        deviation = scalar_column(table, f"{band}_standard_deviation")
    else:
        deviation = np.ones(len(table))
    for row, (n, e, r) in enumerate(zip(sizes, errors, correlations, strict=True)):
        if n and (declared[row] != n or e.size != n or r.size != n * (n - 1) // 2):
            raise ReaderError(
                path,
                f"row {first + row} (source {table['source_id'][row]}), {band}: {n} coefficients, {e.size} errors, "
                f"{r.size} correlations, n_parameters {declared[row]}; expected n, n and n(n-1)/2 (truncated or damaged?)",
            )
    return {
        f"{band}_n_parameters": list(sizes),
        f"{band}_standard_deviation": list(np.where(sizes > 0, deviation, np.nan)),
        f"{band}_coefficients": coefficients,
        f"{band}_coefficient_errors": errors,
        f"{band}_coefficient_correlations": correlations,
    }


def _missing_band(n_rows: int, band: str) -> dict[str, list]:
    empty = [np.empty(0) for _ in range(n_rows)]
    return {
        f"{band}_n_parameters": [0] * n_rows,
        f"{band}_standard_deviation": [np.nan] * n_rows,
        f"{band}_coefficients": empty,
        f"{band}_coefficient_errors": empty,
        f"{band}_coefficient_correlations": empty,
    }
