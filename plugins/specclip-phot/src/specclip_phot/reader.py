"""Reader of magnitude tables: CSV (optionally gzipped) with a ``source_id`` column and the Gaia
archive's magnitude columns (``phot_bp_mean_mag``, ``phot_g_mean_mag``, ``phot_rp_mean_mag``; 2MASS
``j_m``, ``h_m``, ``ks_m`` with their errors ``j_msigcom``, ``h_msigcom``, ``ks_msigcom``), one star
per row. A band column may be missing or empty (that band is masked); at least one must be there.
Every row must have the header's number of fields, and every value must be a number or empty."""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path

import numpy as np

from specclip_core.api import Reader, ReaderError, Spectra, read_verified
from specclip_phot.bands import ARCHIVE_COLUMNS, ARCHIVE_ERRORS, BANDS, DEFAULT_ERROR, WAVELENGTH


def _header(path: Path) -> list[str]:
    try:
        with open(path, "rb") as handle:
            start = handle.read(2)
        if start == b"\x1f\x8b":
            with gzip.open(path, "rt", errors="replace") as handle:
                line = handle.readline()
        else:
            with open(path, errors="replace") as handle:
                line = handle.readline()
    except (OSError, EOFError):
        return []
    return [name.strip() for name in line.strip().split(",")]


def photometry_spectra(ids: np.ndarray, magnitudes: dict[str, np.ndarray], errors: dict[str, np.ndarray]) -> Spectra:
    """Raw photometry spectra: band -> magnitudes (NaN = not measured) and band -> their errors
    (bands without: :data:`DEFAULT_ERROR`)."""
    n = len(ids)
    flux = np.stack([magnitudes.get(band, np.full(n, np.nan)) for band in BANDS], axis=1)
    sigma = np.stack([errors.get(band, np.full(n, DEFAULT_ERROR)) for band in BANDS], axis=1)
    mask = ~np.isfinite(flux) | ~np.isfinite(sigma) | (sigma <= 0)
    ivar = np.where(mask, 0.0, 1.0 / np.where(mask, 1.0, sigma) ** 2)
    return Spectra(WAVELENGTH, np.where(mask, np.nan, flux), ivar, mask, ids, {"source_id": ids})


class PhotometryTableReader(Reader):
    """A CSV table of Gaia and 2MASS magnitudes; ids are the ``source_id`` column."""

    name = "photometry_csv"
    modality = "photometry"
    patterns = ("*.csv", "*.csv.gz")
    description = "CSV table of Gaia G, BP, RP and 2MASS J, H, Ks magnitudes (Gaia archive column names), one star per row"
    meta_columns = ("source_id",)

    def sniff(self, path: Path) -> bool:
        names = set(_header(Path(path)))
        return "source_id" in names and bool(names & set(ARCHIVE_COLUMNS.values())) and "flux" not in names

    def read(self, path: Path) -> Spectra:
        path = Path(path)
        data = read_verified(path)
        if not data.strip():
            raise ReaderError(path, "empty file; expected a CSV table of magnitudes")
        try:
            rows = list(csv.reader(io.StringIO(data.decode("utf-8"))))
        except (UnicodeDecodeError, csv.Error) as error:
            raise ReaderError(path, f"not a readable CSV table ({error})") from None
        header = [name.strip() for name in rows[0]]
        bands = {band: header.index(column) for band, column in ARCHIVE_COLUMNS.items() if column in header}
        if "source_id" not in header or not bands:
            raise ReaderError(path, f"expected a source_id column and at least one of {sorted(ARCHIVE_COLUMNS.values())}; got columns {header[:10]}")
        body = [row for row in rows[1:] if row]
        if not body:
            raise ReaderError(path, "no rows after the header")
        short = [i + 2 for i, row in enumerate(body) if len(row) != len(header)]
        if short:
            raise ReaderError(path, f"line {short[0]} has a different number of fields than the header's {len(header)} (truncated or damaged?)")
        table = np.array(body, dtype=object)
        source = table[:, header.index("source_id")]
        if not all(value.strip().isdigit() and int(value) > 0 for value in source):
            raise ReaderError(path, "source_id must be a positive integer in every row")
        magnitudes = {band: self._numbers(path, table[:, column], ARCHIVE_COLUMNS[band]) for band, column in bands.items()}
        errors = {band: self._numbers(path, table[:, header.index(column)], column) for band, column in ARCHIVE_ERRORS.items() if column in header}
        return photometry_spectra(np.array([value.strip() for value in source]), magnitudes, errors)

    @staticmethod
    def _numbers(path: Path, values: np.ndarray, column: str) -> np.ndarray:
        try:
            return np.array([float(value) if value.strip() else np.nan for value in values])
        except ValueError:
            raise ReaderError(path, f"column {column}: every value must be a number or empty") from None
