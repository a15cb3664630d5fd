"""Tables as the Gaia archive delivers them (CSV, ECSV, FITS; optionally gzipped), read with astropy.

Every problem becomes a :class:`~specclip_core.errors.ReaderError` that names the file. Files are
read through :func:`specclip_core.api.read_verified` and :func:`~specclip_core.api.open_fits`
(regular files only; gzip CRC and FITS checksums verified). Array
columns (coefficients, correlations, sampled fluxes) arrive as text ``(1.0, 2.0, ...)`` or
``[1.0, 2.0, ...]`` in CSV, and as fixed or variable-length vector columns in ECSV and FITS;
:func:`float_rows` turns any of them into one float array per row. astropy is imported on first
use, which keeps loading the plugin (every ``specclip`` command does) fast.
"""

from __future__ import annotations

import csv
import re
import warnings
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from specclip_core.api import ReaderError, check_regular_file, open_fits, read_verified

if TYPE_CHECKING:
    from astropy.table import Table

_FORMATS = {"csv": "ascii.csv", "ecsv": "ascii.ecsv"}
_ECSV_DELIMITER = re.compile(r"^#\s*delimiter:\s*'?([^'\s])'?", re.MULTILINE)
_MISSING_TEXT = {"", "null", "none", "nan", "--"}


def head_bytes(path: Path, size: int = 65536) -> bytes:
    """The first ``size`` bytes of the file, decompressed if it is gzipped."""
    with open(path, "rb") as handle:
        start = handle.read(size)
    if start[:2] != b"\x1f\x8b":
        return start
    try:
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(start, size)
    except zlib.error:
        return b""


def table_format(path: Path) -> str | None:
    """``"fits"``, ``"ecsv"`` or ``"csv"`` from the file's first bytes; None for anything else."""
    try:
        head = head_bytes(path)
    except OSError:
        return None
    if head.startswith(b"SIMPLE  ="):
        return "fits"
    if head.startswith(b"# %ECSV"):
        return "ecsv"
    if b"\x00" in head:
        return None
    return "csv" if "," in _first_line(head.decode("utf-8", errors="replace")) else None


def _first_line(text: str) -> str:
    return next((line for line in text.splitlines() if line.strip() and not line.startswith("#")), "")


def column_names(path: Path) -> list[str]:
    """Column names read cheaply from the header (empty when the file is not a table)."""
    kind = table_format(path)
    try:
        if kind == "fits":
            from astropy.io import fits

            with fits.open(path) as hdul:
                table = next((hdu for hdu in hdul if isinstance(hdu, fits.BinTableHDU)), None)
                return [] if table is None else list(table.columns.names)
        text = head_bytes(path).decode("utf-8", errors="ignore")
    except Exception:  # sniffing never fails; read() reports what is wrong
        return []
    if kind not in ("csv", "ecsv"):
        return []
    declared = _ECSV_DELIMITER.search(text) if kind == "ecsv" else None
    delimiter = declared.group(1) if declared else ("," if kind == "csv" else " ")
    return [name.strip().strip('"') for name in _first_line(text).split(delimiter)]


def read_table(path: Path, required: Sequence[str]) -> Table:
    """The file's table; ReaderError if it is empty, not a table, damaged (a failed gzip CRC or FITS
    checksum), has a truncated row, has no rows or lacks ``required`` columns."""
    path = Path(path)
    check_regular_file(path)
    if path.stat().st_size == 0:
        raise ReaderError(path, "empty file")
    kind = table_format(path)
    if kind is None:
        raise ReaderError(path, "not a CSV, ECSV or FITS table (checked the first bytes)")
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("error", message=".*truncated.*")
            table = _read_fits(path) if kind == "fits" else _read_text(path, kind)
    except ReaderError:
        raise
    except Exception as error:  # astropy, gzip and numpy raise many kinds for damaged files
        raise ReaderError(path, f"cannot read as {kind.upper()} (truncated or damaged?): {type(error).__name__}: {error}") from None
    missing = [name for name in required if name not in table.colnames]
    if missing:
        raise ReaderError(path, f"missing columns {missing}; the file has {table.colnames[:12]}")
    if len(table) == 0:
        raise ReaderError(path, "the table has no rows")
    return table


def check_rows(path: Path, text: str, delimiter: str) -> None:
    """Every data line has as many fields as the header line: a row cut short (a truncated file
    followed by a line break) is an error naming the file and the line, never a row of blanks."""
    width = None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = len(next(csv.reader([line], delimiter=delimiter, quotechar='"')))
        if width is None:
            width = fields
        elif fields != width:
            raise ReaderError(path, f"line {number} has {fields} fields, the header {width} (a truncated row?)", check="table-row")


def _read_text(path: Path, kind: str) -> Table:
    from astropy.table import Table

    text = read_verified(path).decode("utf-8")
    if not text.endswith("\n"):
        raise ReaderError(path, "the text does not end with a line break (truncated?)", check="table-row")
    declared = _ECSV_DELIMITER.search(text[:65536]) if kind == "ecsv" else None
    check_rows(path, text, declared.group(1) if declared else ("," if kind == "csv" else " "))
    return Table.read(text, format=_FORMATS[kind], guess=False)


def _read_fits(path: Path) -> Table:
    from astropy.io import fits
    from astropy.table import Table

    with open_fits(path) as hdul:
        hdu = next((hdu for hdu in hdul if isinstance(hdu, fits.BinTableHDU)), None)
        if hdu is None:
            raise ReaderError(path, "FITS file without a binary table extension")
        return Table.read(hdu).copy(copy_data=True)


def _parse_text(text: str, path: Path, column: str, row: int) -> np.ndarray:
    stripped = str(text).strip()
    if stripped.lower() in _MISSING_TEXT:
        return np.empty(0)
    if stripped[0] + stripped[-1] not in ("()", "[]"):
        raise ReaderError(path, f"row {row}, column {column!r}: expected an array like (1.0, 2.0, ...), got {stripped[:40]!r}")
    body = stripped[1:-1].strip()
    if not body:
        return np.empty(0)
    try:
        return np.array([float(value) for value in body.split(",")])
    except ValueError as error:
        raise ReaderError(path, f"row {row}, column {column!r}: {error}") from None


def float_rows(table: Table, column: str, path: Path) -> list[np.ndarray]:
    """One float64 array per row of an array column (text, fixed-shape or variable-length)."""
    values = table[column]
    if values.dtype.kind in "US":
        texts = values.filled("") if hasattr(values, "filled") else values
        return [_parse_text(text, path, column, row) for row, text in enumerate(np.asarray(texts))]
    if values.dtype.kind == "O":
        return [np.asarray(item if item is not None else [], dtype=np.float64).reshape(-1) for item in values]
    if values.ndim != 2:
        raise ReaderError(path, f"column {column!r} holds {values.dtype} scalars, expected arrays")
    filled = values.filled(np.nan) if hasattr(values, "filled") else values
    return [row for row in np.asarray(filled, dtype=np.float64)]


def scalar_column(table: Table, column: str, dtype: type = np.float64) -> np.ndarray:
    """A scalar column as a plain array, masked entries as NaN (floats) or 0 (integers)."""
    values = table[column]
    fill = np.nan if np.dtype(dtype).kind == "f" else 0
    filled = values.filled(fill) if hasattr(values, "filled") else values
    return np.asarray(filled, dtype=dtype)
