"""Reader of *sampled* absolute XP spectra (``source_id``, ``flux``, ``flux_error``) in CSV, ECSV or FITS.

The Gaia archive's XP_SAMPLED product holds 343 samples per spectrum at 336-1020 nm every 2 nm in
W m-2 nm-1 and no wavelength column. Files written by ``gaiaxpy.calibrate`` carry their sampling
(in nm) in ``<stem>_sampling.csv`` (CSV), the ``sampling`` metadata entry (ECSV) or the
``SAMPLING`` header keyword (FITS). A sampling other than the XP grid is resampled onto it by
linear interpolation (see :func:`specclip_gaiaxp.grid.resample`), which is logged at INFO level.
Internally calibrated spectra (``gaiaxpy.convert``: pseudo-wavelengths, electrons per second) are
refused.
"""

from __future__ import annotations

import ast
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from specclip_core.api import Reader, ReaderError, Spectra
from specclip_gaiaxp.assemble import raw_spectra
from specclip_gaiaxp.continuous import BANDS, TABLE_PATTERNS
from specclip_gaiaxp.grid import SAMPLING_NM, WAVELENGTH, resample, to_flux_unit
from specclip_gaiaxp.tables import column_names, float_rows, read_table_chunks, scalar_column, table_format

if TYPE_CHECKING:
    from astropy.table import Table

log = logging.getLogger(__name__)


class GaiaXPSampledReader(Reader):
    """Sampled XP spectra (archive XP_SAMPLED or gaiaxpy.calibrate output); ids are Gaia source ids."""

    name = "gaiaxp_sampled"
    modality = "gaia_xp"
    patterns = TABLE_PATTERNS
    description = "sampled absolute XP spectra (archive XP_SAMPLED, gaiaxpy.calibrate output) in CSV, ECSV, FITS"

    def sniff(self, path: Path) -> bool:
        names = set(column_names(Path(path))) if table_format(Path(path)) else set()
        coefficients = any(f"{band}_coefficients" in names for band in BANDS)
        return {"source_id", "flux", "flux_error"} <= names and not coefficients and "medflux" not in names

    def read(self, path: Path) -> Spectra:
        return next(self.read_chunks(path, sys.maxsize))

    shares = True

    def read_chunks(self, path: Path, rows: int) -> Iterator[Spectra]:
        return self.read_share(path, rows, 0, 1)

    def read_share(self, path: Path, rows: int, share: int, shares: int) -> Iterator[Spectra]:
        path = Path(path)
        for table in read_table_chunks(path, ["source_id", "flux", "flux_error"], rows, share, shares):
            spectra = _spectra(path, table)
            del table  # before the next piece is parsed: one piece in memory at a time
            yield spectra


def _spectra(path: Path, table: Table) -> Spectra:
    """Raw spectra of one piece of a sampled XP table."""
    if "xp" in table.colnames:
        raise ReaderError(path, "internally calibrated spectra (gaiaxpy.convert output, pseudo-wavelengths); expected absolute ones")
    flux, error = (_matrix(path, table, name) for name in ("flux", "flux_error"))
    if error.shape != flux.shape:
        raise ReaderError(path, f"flux has {flux.shape[1]} samples per row but flux_error has {error.shape[1]}")
    sampling = _sampling(path, table, flux.shape[1])
    if not np.array_equal(sampling, SAMPLING_NM):
        log.info("%s: resampling %d samples at %.1f-%.1f nm onto the XP grid", path, sampling.size, sampling[0], sampling[-1])
        flux, error = resample(sampling * 10.0, flux, error)
    source_id = scalar_column(table, "source_id", np.int64)
    if (source_id <= 0).any():
        raise ReaderError(path, f"{int((source_id <= 0).sum())} rows have no valid source_id")
    ids = source_id.astype(str)
    flux, error = flux * _unit_scale(path, table, "flux"), error * _unit_scale(path, table, "flux_error")
    return raw_spectra(path, WAVELENGTH, to_flux_unit(flux), to_flux_unit(error), ids, {"source_id": ids})


def _matrix(path: Path, table: Table, column: str) -> np.ndarray:
    rows = float_rows(table, column, path)
    sizes = {row.size for row in rows if row.size}
    if len(sizes) > 1:
        raise ReaderError(path, f"column {column!r}: rows have different numbers of samples {sorted(sizes)} (truncated or damaged?)")
    width = sizes.pop() if sizes else 0
    if width < 2:
        raise ReaderError(path, f"column {column!r} holds no sampled spectra")
    return np.stack([row if row.size else np.full(width, np.nan) for row in rows])


def _sampling(path: Path, table: Table, n_samples: int) -> np.ndarray:
    """The sampling in nm: from the file's metadata or its gaiaxpy sampling file, else the archive's grid."""
    meta = {str(key).lower(): value for key, value in table.meta.items()}
    name = path.name.removesuffix(".gz")
    sibling = path.with_name(name.rsplit(".", 1)[0] + "_sampling.csv")
    if "sampling" in meta:
        text = str(meta["sampling"])
    elif sibling.is_file():
        text = _sampling_file(sibling)
    elif n_samples == SAMPLING_NM.size:
        return SAMPLING_NM
    else:
        raise ReaderError(
            path,
            f"{n_samples} samples per spectrum and no sampling given (the archive's grid has {SAMPLING_NM.size}; "
            f"gaiaxpy writes other samplings to {sibling.name}, the ECSV 'sampling' entry or the FITS SAMPLING keyword)",
        )
    try:
        sampling = np.asarray(ast.literal_eval(text.strip()), dtype=np.float64).reshape(-1)
    except (ValueError, SyntaxError, TypeError) as error:
        raise ReaderError(path, f"cannot parse the sampling {text[:40]!r}: {error}") from None
    if sampling.size != n_samples or np.any(np.diff(sampling) <= 0):
        raise ReaderError(path, f"the sampling has {sampling.size} increasing positions, the spectra {n_samples} samples")
    return sampling


def _sampling_file(path: Path) -> str:
    """The ``pos`` entry of a gaiaxpy ``*_sampling.csv`` file."""
    from astropy.table import Table

    try:
        return str(Table.read(path, format="ascii.csv", guess=False)["pos"][0])
    except Exception as error:  # astropy raises many kinds for a damaged file
        raise ReaderError(path, f"cannot read the sampling (a 'pos' column): {type(error).__name__}: {error}") from None


def _unit_scale(path: Path, table: Table, column: str) -> float:
    """Factor to W m-2 nm-1 from a column's unit (none given: the archive's W m-2 nm-1)."""
    import astropy.units as u

    unit, expected = table[column].unit, u.W / u.m**2 / u.nm
    if unit is None:
        return 1.0
    if isinstance(unit, u.UnrecognizedUnit) or not unit.is_equivalent(expected):
        raise ReaderError(path, f"{column} unit {unit} is not a flux density per wavelength (W m-2 nm-1 expected)")
    return float(unit.to(expected))
