"""Readers of LAMOST LRS ``spec-*.fits(.gz)`` files.

Two layouts exist:

* DR8 and later (v2 products, e.g. DR10 v0): an empty primary HDU carrying the header and a binary
  table ``COADD`` with one row of FLUX, IVAR, WAVELENGTH, ANDMASK, ORMASK and NORMALIZATION;
* older products (also shipped for DR8 v1): a 5 x N primary image whose rows are Flux, Inverse
  (variance), Wavelength, Andmask and Ormask, with the log-linear solution in COEFF0/COEFF1.

Both give one raw spectrum on the native grid whose id is the OBSID, with header fields as meta
columns. Files are opened through :func:`specclip_core.api.open_fits` (gzip CRC and any FITS
CHECKSUM/DATASUM verified; a damaged file is rejected by name).

A pixel is masked where ANDMASK != 0 (bad in every exposure), the flux is not finite or the
inverse variance is not positive; masked pixels carry ``ivar == 0``. A file with a ``SIMULATED``
keyword (written by :mod:`specclip_lamost.writer`) also gives a boolean meta column ``simulated``.
"""

from __future__ import annotations

import warnings
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.io.fits.verify import VerifyError

from specclip_core.api import Reader, ReaderError, Spectra, check_regular_file, open_fits, primary_fits_header, read_verified, table_columns, table_layout
from specclip_lamost.grid import LOG_STEP

PATTERNS = ("spec-*.fits", "spec-*.fits.gz")
FITS_SUFFIXES = (".fits", ".fit", ".fits.gz", ".fit.gz")

HEADER_NUMBERS = {"ra": "RA", "dec": "DEC", "snrg": "SNRG", "snrr": "SNRR", "z": "Z"}
HEADER_TEXT = {"class": "CLASS", "subclass": "SUBCLASS"}
"""Primary-header fields kept as meta columns (lower-case); a missing one is NaN or ""."""
META_COLUMNS = ("obsid", *HEADER_NUMBERS, *HEADER_TEXT, "simulated")
"""Every meta column a file can give (``simulated`` only from files written for simulated spectra)."""

COADD_COLUMNS = ("FLUX", "IVAR", "WAVELENGTH", "ANDMASK")
IMAGE_ROWS = ("flux", "inverse", "wavelength", "andmask", "ormask")
"""Row order of the older image when its header does not name the rows (EXTEN0)."""

WAVELENGTH_TOLERANCE = 0.5
"""Largest allowed disagreement, in pixels, between a file's wavelengths and its COEFF0/COEFF1."""

_READ_ERRORS = (OSError, EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError, zlib.error, VerifyError)


def read_fits(path: Path, extract: Callable[[Path, fits.HDUList, bytes], Spectra]) -> Spectra:
    """Open ``path`` and run ``extract`` on it (with the file's verified content); any failure
    becomes a ReaderError naming the file."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            content = read_verified(path)
            with open_fits(path, content) as hdul:
                spectra = extract(path, hdul, content)
    except ReaderError:
        raise
    except _READ_ERRORS as error:
        raise ReaderError(path, f"cannot read as a LAMOST FITS file: {type(error).__name__}: {error}") from None
    for warning in caught:
        if "truncated" in str(warning.message):
            raise ReaderError(path, f"truncated file ({warning.message})")
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    return spectra


def primary_header(path: Path, cards: int | None = None) -> fits.Header | None:
    """The primary header (with ``cards``, only its first cards), or None when ``path`` is not a
    readable FITS file (for sniffing)."""
    if not path.name.lower().endswith(FITS_SUFFIXES):
        return None
    try:
        return primary_fits_header(path, cards)
    except (*_READ_ERRORS, ReaderError):
        return None


LAYOUT_CARDS = 5
"""SIMPLE, BITPIX, NAXIS, NAXIS1, NAXIS2: the primary header's first cards, all a sniff reads (DR10's
primary header carries NAXIS1 and NAXIS2 beside NAXIS = 0)."""


def sniffed_layout(path: Path) -> tuple[int | None, int | None]:
    """(NAXIS, NAXIS2) of a LAMOST file's primary header, (None, None) for anything else: a
    ``spec-*`` name or a LAMOST telescope keyword."""
    header = primary_header(path, cards=LAYOUT_CARDS)
    if header is None:
        return None, None
    if not path.name.startswith("spec-"):
        full = primary_header(path)
        if full is None or not str(full.get("TELESCOP", "")).strip().upper().startswith("LAMOST"):
            return None, None
    return header.get("NAXIS"), header.get("NAXIS2")


def header_meta(path: Path, header: fits.Header) -> tuple[str, dict[str, np.ndarray]]:
    """The spectrum id (OBSID) and the meta columns of one file."""
    try:
        obsid = int(str(header["OBSID"]).strip())
    except (KeyError, ValueError):
        raise ReaderError(path, f"no integer OBSID in the primary header (got {header.get('OBSID')!r})") from None
    meta: dict[str, np.ndarray] = {"obsid": np.array([obsid], dtype=np.int64)}
    for key, card in HEADER_NUMBERS.items():
        value = header.get(card)
        meta[key] = np.array([float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else np.nan])
    for key, card in HEADER_TEXT.items():
        meta[key] = np.array([str(header.get(card, "")).strip()])
    if "SIMULATED" in header:  # only files written for simulated spectra carry it (specclip_lamost.writer)
        meta["simulated"] = np.array([header["SIMULATED"] is True])
    return str(obsid), meta


def check_wavelength(path: Path, header: fits.Header, wavelength: np.ndarray) -> None:
    """Wavelengths must be finite, positive, increasing and agree with COEFF0/COEFF1 when given."""
    if wavelength.size < 2 or not np.all(np.isfinite(wavelength)) or np.any(wavelength <= 0):
        raise ReaderError(path, "wavelengths are missing, non-finite or not positive")
    if np.any(np.diff(wavelength) <= 0):
        raise ReaderError(path, "wavelengths do not increase")
    start, step = header.get("COEFF0"), header.get("COEFF1")
    if isinstance(start, (int, float)) and isinstance(step, (int, float)) and step > 0:
        expected = start + step * np.arange(wavelength.size)
        offset = np.max(np.abs(np.log10(wavelength) - expected)) / step
        if offset > WAVELENGTH_TOLERANCE:
            raise ReaderError(path, f"wavelengths disagree with COEFF0/COEFF1 by {offset:.1f} pixels")


def coeff_wavelength(path: Path, header: fits.Header, n_pixels: int) -> np.ndarray:
    """The log-linear grid 10**(COEFF0 + COEFF1 * i) of the header."""
    start, step = header.get("COEFF0"), header.get("COEFF1", LOG_STEP)
    if not isinstance(start, (int, float)) or not isinstance(step, (int, float)):
        raise ReaderError(path, "no wavelength row and no numeric COEFF0/COEFF1 in the header")
    return 10.0 ** (start + step * np.arange(n_pixels))


def make_spectrum(
    path: Path, header: fits.Header, wavelength: np.ndarray, flux: np.ndarray, ivar: np.ndarray, andmask: np.ndarray
) -> Spectra:
    """One raw spectrum with its mask (ANDMASK != 0, non-finite flux, ivar <= 0) and header meta."""
    sizes = {"wavelength": wavelength.size, "flux": flux.size, "ivar": ivar.size, "andmask": andmask.size}
    if len(set(sizes.values())) != 1:
        raise ReaderError(path, f"arrays of different lengths: {sizes}")
    check_wavelength(path, header, wavelength)
    sid, meta = header_meta(path, header)
    with np.errstate(invalid="ignore"):
        mask = (andmask != 0) | ~np.isfinite(flux) | ~np.isfinite(ivar) | ~(ivar > 0)
    return Spectra(wavelength, flux[None], np.where(mask, 0.0, ivar)[None], mask[None], [sid], meta)


def _vector(data: np.ndarray) -> np.ndarray:
    return np.asarray(data, dtype=np.float64).reshape(-1)


class LamostCoaddReader(Reader):
    """LAMOST LRS DR8+ files: primary header plus a one-row ``COADD`` binary table."""

    name = "lamost_lrs_coadd"
    modality = "lamost_lrs"
    patterns = PATTERNS
    meta_columns = META_COLUMNS
    description = "LAMOST LRS spec-*.fits(.gz), DR8 and later: COADD table (FLUX, IVAR, WAVELENGTH, ANDMASK, ...)"

    def sniff(self, path: Path) -> bool:
        return sniffed_layout(Path(path))[0] == 0

    def read(self, path: Path) -> Spectra:
        return read_fits(Path(path), self._extract)

    @staticmethod
    def _extract(path: Path, hdul: fits.HDUList, content: bytes) -> Spectra:
        if "COADD" not in hdul or not isinstance(hdul["COADD"], fits.BinTableHDU):
            raise ReaderError(path, "no COADD binary-table extension (not a LAMOST LRS DR8+ file)")
        table = hdul["COADD"]
        names = {n.upper() for n in table_layout(table, content).names}
        missing = [c for c in COADD_COLUMNS if c not in names]
        if missing:
            raise ReaderError(path, f"the COADD table lacks column(s) {', '.join(missing)}")
        rows = table.header.get("NAXIS2", 0)
        if rows != 1:
            raise ReaderError(path, f"the COADD table should hold one row, it holds {rows}")
        columns = table_columns(table, content, COADD_COLUMNS)
        flux, ivar, wavelength, andmask = (columns[c][0].reshape(-1) for c in COADD_COLUMNS)
        return make_spectrum(path, hdul[0].header, wavelength, flux, ivar, andmask)


class LamostImageReader(Reader):
    """Older LAMOST LRS files: a 5 x N primary image (Flux, Inverse, Wavelength, Andmask, Ormask)."""

    name = "lamost_lrs_image"
    modality = "lamost_lrs"
    patterns = PATTERNS
    meta_columns = META_COLUMNS
    description = "LAMOST LRS spec-*.fits(.gz), older layout: 5 x N primary image with COEFF0/COEFF1"

    def sniff(self, path: Path) -> bool:
        return sniffed_layout(Path(path)) == (2, len(IMAGE_ROWS))

    def read(self, path: Path) -> Spectra:
        return read_fits(Path(path), self._extract)

    @staticmethod
    def _row_names(header: fits.Header) -> tuple[str, ...]:
        named = str(header.get("EXTEN0", ""))
        names = tuple(part.strip().lower() for part in named.split(",") if part.strip())
        return names if len(names) == len(IMAGE_ROWS) else IMAGE_ROWS

    @classmethod
    def _extract(cls, path: Path, hdul: fits.HDUList, content: bytes) -> Spectra:
        header, data = hdul[0].header, hdul[0].data
        if data is None or data.ndim != 2 or data.shape[0] != len(IMAGE_ROWS):
            shape = None if data is None else data.shape
            raise ReaderError(path, f"the primary HDU should be a 5 x N image (Flux, Inverse, Wavelength, Andmask, Ormask), got {shape}")
        rows = dict(zip(cls._row_names(header), (_vector(r) for r in data), strict=True))
        missing = [name for name in ("flux", "inverse", "andmask") if name not in rows]
        if missing:
            raise ReaderError(path, f"EXTEN0 names no {', '.join(missing)} row(s): {header.get('EXTEN0')!r}")
        wavelength = rows.get("wavelength")
        if wavelength is None:
            wavelength = coeff_wavelength(path, header, data.shape[1])
        return make_spectrum(path, header, wavelength, rows["flux"], rows["inverse"], rows["andmask"])


def read_lamost(path: str | Path) -> Spectra:
    """Read one LAMOST LRS file of either layout (the reader is chosen by sniffing)."""
    path = Path(path)
    check_regular_file(path)  # before sniffing, which opens the file (a FIFO would block)
    for reader in (LamostCoaddReader(), LamostImageReader()):
        if reader.sniff(path):
            return reader.read(path)
    raise ReaderError(path, "not a LAMOST LRS file (neither a COADD-table nor a 5 x N image spec file)")
