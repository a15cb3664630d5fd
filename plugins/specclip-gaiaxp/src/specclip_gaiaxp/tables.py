"""Tables as the Gaia archive delivers them (CSV, ECSV, FITS; optionally gzipped), read with astropy.

Every problem becomes a :class:`~specclip_core.errors.ReaderError` that names the file. Text is
streamed in pieces of rows (:func:`read_table_chunks`), after the reader's caller has verified the
gzip CRC (:func:`specclip_core.api.verify`); FITS files are opened with
:func:`~specclip_core.api.open_fits` (regular files only; checksums verified). Array
columns (coefficients, correlations, sampled fluxes) arrive as text ``(1.0, 2.0, ...)`` or
``[1.0, 2.0, ...]`` in CSV, and as fixed or variable-length vector columns in ECSV and FITS;
:func:`float_rows` turns any of them into one float array per row. astropy is imported on first
use, which keeps loading the plugin (every ``specclip`` command does) fast.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
import sys
import warnings
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from specclip_core.api import ReaderError, check_regular_file, open_fits

if TYPE_CHECKING:
    from astropy.table import Table

_FORMATS = {"csv": "ascii.csv", "ecsv": "ascii.ecsv"}
_ECSV_DELIMITER = re.compile(r"^#\s*delimiter:\s*'?([^'\s])'?", re.MULTILINE)
_MISSING_TEXT = {"", "null", "none", "nan", "--"}
GZIP_MAGIC = b"\x1f\x8b"


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


def read_table_chunks(path: Path, required: Sequence[str], rows: int, share: int = 0, shares: int = 1) -> Iterator[Table]:
    """The file's table in pieces of at most ``rows`` rows (text is streamed; a FITS table is read
    whole and sliced); ReaderError if it is empty, not a table, damaged (a failed gzip CRC or FITS
    checksum), has a truncated row, has no rows or lacks ``required`` columns. A problem in a later
    piece is raised when that piece is reached. With ``shares`` > 1 only pieces ``share``,
    ``share + shares``, ... are parsed and given (the lines of the others are skipped unparsed), so
    that ``shares`` processes read the file together (see ``Reader.read_share``); only share 0
    reports a table with no rows."""
    path = Path(path)
    check_regular_file(path)
    if path.stat().st_size == 0:
        raise ReaderError(path, "empty file")
    kind = table_format(path)
    if kind is None:
        raise ReaderError(path, "not a CSV, ECSV or FITS table (checked the first bytes)")
    pieces = _fits_chunks(path, rows, share, shares) if kind == "fits" else _text_chunks(path, kind, rows, share, shares)
    first = True
    while True:
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("error", message=".*truncated.*")
                table = next(pieces, None)
        except ReaderError:
            raise
        except Exception as error:  # astropy, gzip and numpy raise many kinds for damaged files
            raise ReaderError(path, f"cannot read as {kind.upper()} (truncated or damaged?): {type(error).__name__}: {error}") from None
        if table is None:
            if first and share == 0:
                raise ReaderError(path, "the table has no rows")
            return
        if first:
            missing = [name for name in required if name not in table.colnames]
            if missing:
                raise ReaderError(path, f"missing columns {missing}; the file has {table.colnames[:12]}")
            first = False
        yield table
        del table  # before the next piece is parsed: one piece in memory at a time


def read_table(path: Path, required: Sequence[str]) -> Table:
    """The whole table, checked as :func:`read_table_chunks` checks it."""
    return next(read_table_chunks(path, required, sys.maxsize))


def _text_chunks(path: Path, kind: str, rows: int, share: int = 0, shares: int = 1) -> Iterator[Table]:
    """CSV or ECSV text read line by line: every data line has as many fields as the header line
    (a row cut short, e.g. by a truncated file followed by a line break, is an error naming the file
    and the line), and the text ends with a line break. The gzip CRC was checked before (verify).
    CSV lines are split as they are read and each piece's array cells parsed together (see
    :class:`_CsvColumns`); ECSV pieces go to astropy."""
    from astropy.table import Table

    with _open_bytes(path) as handle:
        header, number = [], 0
        for raw in handle:
            number += 1
            line = raw.decode("utf-8")
            header.append(line)
            if line.strip() and not line.startswith("#"):
                break
        head = "".join(header)
        declared = _ECSV_DELIMITER.search(head) if kind == "ecsv" else None
        delimiter = declared.group(1) if declared else ("," if kind == "csv" else " ")
        names = _split(header[-1], delimiter) if header else []
        columns = _CsvColumns(path, [name.strip() for name in names]) if kind == "csv" else None
        batch: list[str] = []
        data_lines = 0
        for raw in handle:
            number += 1
            if not raw.endswith(b"\n"):
                raise ReaderError(path, "the text does not end with a line break (truncated?)", check="table-row")
            if not raw.strip() or raw.startswith(b"#"):
                continue
            data_lines += 1
            if shares > 1 and ((data_lines - 1) // rows) % shares != share:
                continue  # another share's piece: not even decoded
            line = raw.decode("utf-8")
            fields = _split(line, delimiter)
            if len(fields) != len(names):
                raise ReaderError(path, f"line {number} has {len(fields)} fields, the header {len(names)} (a truncated row?)", check="table-row")
            if columns is not None:
                columns.add(fields, number)
            else:
                batch.append(line)
            if len(columns or batch) >= rows:
                yield columns.table() if columns is not None else Table.read(head + "".join(batch), format=_FORMATS[kind], guess=False)
                batch = []
        if header and not header[-1].endswith("\n"):
            raise ReaderError(path, "the text does not end with a line break (truncated?)", check="table-row")
        if len(columns or batch):
            yield columns.table() if columns is not None else Table.read(head + "".join(batch), format=_FORMATS[kind], guess=False)


class _CsvColumns:
    """The rows of one piece of a CSV table, column by column. A cell written as an array,
    ``(1.0, 2.0, ...)`` or ``[...]``, keeps its text and line number until :meth:`table`, which parses
    each array column's cells together (:func:`_array_cells`); other cells stay text until then, when
    each scalar column gets a type (integer, else float, else text; empty cells masked)."""

    def __init__(self, path: Path, names: list[str]):
        self.path, self.names = path, names
        self.cells: list[list] = [[] for _ in names]

    def __len__(self) -> int:
        return len(self.cells[0]) if self.cells else 0

    def add(self, fields: list[str], number: int) -> None:
        for cell, value in zip(self.cells, fields, strict=True):
            stripped = value.strip()
            cell.append(_ArrayText(stripped, number) if stripped[:1] in ("(", "[") else stripped)

    def table(self) -> Table:
        from astropy.table import Column, Table

        columns = []
        for name, cell in zip(self.names, self.cells, strict=True):
            if any(isinstance(value, _ArrayText) for value in cell):
                values = np.empty(len(cell), dtype=object)
                values[:] = _array_cells(cell, self.path, name)
                columns.append(Column(values, name=name))
            else:
                columns.append(_scalar_column(name, cell))
        self.cells = [[] for _ in self.names]
        return Table(columns)


class _ArrayText:
    """An array cell's text and the line it is on."""

    __slots__ = ("text", "line")

    def __init__(self, text: str, line: int):
        self.text, self.line = text, line


def _array_cells(cells: list, path: Path, column: str) -> list[np.ndarray]:
    """The float arrays of one array column's cells (:class:`_ArrayText`, or the text of a missing
    value). Cells of one length are parsed together by pandas' C parser, about twice as fast as one
    parse per cell, into one block whose rows they are; anything else (other lengths, a missing or
    bad value) is parsed cell by cell, with errors naming the line."""
    import pandas as pd

    texts = [cell for cell in cells if isinstance(cell, _ArrayText)]
    if len(texts) == len(cells) and all(t.text[0] + t.text[-1] in ("()", "[]") for t in texts):
        bodies = [t.text[1:-1] for t in texts]
        commas = {body.count(",") for body in bodies}
        if len(commas) == 1 and all(body.strip() for body in bodies):
            try:
                block = pd.read_csv(io.StringIO("\n".join(bodies)), header=None, dtype=np.float64, engine="c", skipinitialspace=True, na_filter=False).to_numpy()
            except (ValueError, pd.errors.ParserError):
                block = None
            if block is not None and block.shape == (len(bodies), commas.pop() + 1):
                return list(block)
    return [_parse_text(cell.text, path, column, f"line {cell.line}") if isinstance(cell, _ArrayText) else _parse_text(cell, path, column, f"row {row}") for row, cell in enumerate(cells)]


def _scalar_column(name: str, cells: list[str]):
    """A typed column from text cells, as astropy's CSV reader types one: integers, else floats, else
    text; an empty (or null) cell is masked."""
    from astropy.table import Column, MaskedColumn

    missing = np.array([cell.lower() in ("", "null", "none", "--") for cell in cells], dtype=bool)
    present = np.array([cell for cell, gone in zip(cells, missing, strict=True) if not gone], dtype=str)
    for dtype, fill in ((np.int64, 0), (np.float64, np.nan)):
        try:
            converted = present.astype(dtype)
        except (ValueError, OverflowError):
            continue
        values = np.full(len(cells), fill, dtype=dtype)
        values[~missing] = converted
        break
    else:
        values = np.array(cells, dtype=str)
    return MaskedColumn(values, name=name, mask=missing) if missing.any() else Column(values, name=name)


def _split(line: str, delimiter: str) -> list[str]:
    """The fields of one CSV line, as the csv module splits it. A line whose quoted fields hold no
    quote or line break (an archive table's: numbers, and array cells ``"[1.0, 2.0, ...]"``) is split
    at its quotes and then at its delimiters, 8 times faster than the csv module's
    character-by-character pass over a 10 kB archive line; any other line goes to the csv module."""
    body = line[:-2] if line.endswith("\r\n") else line[:-1] if line.endswith("\n") else line
    parts = body.split('"')
    if body and "\r" not in body and "\n" not in body and len(parts) % 2:
        fields: list[str] = []
        last = len(parts) - 1
        for index, part in enumerate(parts):
            if index % 2:
                fields.append(part)
                continue
            pieces = part.split(delimiter)  # unquoted text: after a closing quote a delimiter, before an opening one too
            if index > 0 and (pieces[0] or (index < last and len(pieces) < 2)) or index < last and pieces[-1]:
                break  # a quote inside a field, or a doubled quote: the csv module's rules
            fields += pieces[1 if index > 0 else 0 : -1 if index < last else None]
        else:
            return fields
    return next(csv.reader([line], delimiter=delimiter, quotechar='"'))


def _open_bytes(path: Path):
    """The file's bytes, decompressed when gzipped (its lines are decoded by the caller, only those
    it reads)."""
    with open(path, "rb") as handle:
        compressed = handle.read(2) == GZIP_MAGIC
    return gzip.open(path, "rb") if compressed else open(path, "rb")


def _fits_chunks(path: Path, rows: int, share: int = 0, shares: int = 1) -> Iterator[Table]:
    from astropy.io import fits
    from astropy.table import Table

    with open_fits(path) as hdul:
        hdu = next((hdu for hdu in hdul if isinstance(hdu, fits.BinTableHDU)), None)
        if hdu is None:
            raise ReaderError(path, "FITS file without a binary table extension")
        table = Table.read(hdu).copy(copy_data=True)
    for start in range(share * rows, len(table), rows * shares):
        yield table[start : start + rows]


def _parse_text(text: str, path: Path, column: str, where: str) -> np.ndarray:
    """One array cell, ``(1.0, 2.0, ...)`` or ``[...]``, as floats (empty for a missing value);
    ``where`` (``row 3``, ``line 7``) places it in errors."""
    stripped = str(text).strip()
    if stripped.lower() in _MISSING_TEXT:
        return np.empty(0)
    if stripped[0] + stripped[-1] not in ("()", "[]"):
        raise ReaderError(path, f"{where}, column {column!r}: expected an array like (1.0, 2.0, ...), got {stripped[:40]!r}")
    body = stripped[1:-1].strip()
    if not body:
        return np.empty(0)
    values = body.split(",")
    try:
        return np.array(values, dtype=np.float64)
    except ValueError:
        bad = next(value.strip() for value in values if not _is_float(value))
        raise ReaderError(path, f"{where}, column {column!r}: could not convert string to float: {bad!r}") from None


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def float_rows(table: Table, column: str, path: Path) -> list[np.ndarray]:
    """One float64 array per row of an array column (text, fixed-shape or variable-length)."""
    values = table[column]
    if values.dtype.kind in "US":
        texts = values.filled("") if hasattr(values, "filled") else values
        return [_parse_text(text, path, column, f"row {row}") for row, text in enumerate(np.asarray(texts))]
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
