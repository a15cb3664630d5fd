"""Opening input files: regular files only, gzip CRC verified, FITS CHECKSUM/DATASUM checked.

Every reader opens its files through :func:`read_verified` (bytes) or :func:`open_fits` (an
HDUList), so a damaged file is rejected by name instead of being read with changed values. A
failure is a :class:`~specclip_core.errors.ReaderError` whose ``check`` says which check failed:
``exists``, ``regular-file``, ``gzip``, ``fits-size`` (data cut short) or ``fits-checksum``.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import io
import os
import stat
import warnings
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from specclip_core.errors import ReaderError

GZIP_MAGIC = b"\x1f\x8b"
CARD_BYTES = 80
_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def check_regular_file(path: str | Path) -> None:
    """ReaderError unless ``path`` is (a link to) a regular file; never opens it, so a FIFO cannot hang."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        dangling = os.path.islink(path)
        raise ReaderError(path, "dangling symbolic link" if dangling else "no such file", check="exists") from None
    except OSError as error:
        reason = "symbolic link loop" if error.errno == errno.ELOOP else f"cannot stat: {error.strerror}"
        raise ReaderError(path, reason, check="exists") from None
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _KINDS if test(mode)), "not a plain file")
        raise ReaderError(path, f"not a regular file ({kind}); only regular files are read", check="regular-file")


KEPT_BYTES = 64 << 20
"""A gzipped file up to this size is decompressed once: :func:`verify` keeps the content of the
last file it checked for :func:`read_verified` and :func:`primary_fits_header` of the same file."""

_kept: tuple[tuple, bytes] | None = None


def _identity(path: str | Path) -> tuple:
    """What tells a file apart from itself changed: path, inode, size, modification time."""
    info = os.stat(path)
    return os.fspath(path), info.st_ino, info.st_size, info.st_mtime_ns


def _kept_content(path: str | Path) -> bytes | None:
    if _kept is None:
        return None
    try:
        return _kept[1] if _kept[0] == _identity(path) else None
    except OSError:
        return None


def _gunzip(path: str | Path, data: bytes) -> bytes:
    try:
        return gzip.decompress(data)
    except EOFError as error:
        raise ReaderError(path, f"truncated gzip file ({error})", check="gzip") from None
    except (gzip.BadGzipFile, zlib.error) as error:
        raise ReaderError(path, f"damaged gzip file ({error})", check="gzip") from None


def verify(path: str | Path, block: int = 1 << 22) -> None:
    """Check a file before anything sniffs it: regular, not empty, and (when gzipped) its CRC and
    length intact, streamed through without holding the content (a file up to :data:`KEPT_BYTES`
    is decompressed whole and kept for reading it). A sniffer that reads a damaged gzip file may
    loop on the garbage (astropy does), and would report it as unrecognised."""
    global _kept
    check_regular_file(path)
    with open(path, "rb") as handle:
        start = handle.read(2)
    if not start:
        raise ReaderError(path, "empty file", check="empty")
    if start != GZIP_MAGIC:
        return
    identity = _identity(path)
    if identity[2] <= KEPT_BYTES:
        _kept = None
        _kept = (identity, _gunzip(path, Path(path).read_bytes()))
        return
    try:
        with gzip.open(path) as stream:
            while stream.read(block):
                pass
    except EOFError as error:
        raise ReaderError(path, f"truncated gzip file ({error})", check="gzip") from None
    except (gzip.BadGzipFile, zlib.error) as error:
        raise ReaderError(path, f"damaged gzip file ({error})", check="gzip") from None


def read_verified(path: str | Path) -> bytes:
    """The content of a regular file, decompressed when gzipped (CRC and length verified)."""
    check_regular_file(path)
    kept = _kept_content(path)
    if kept is not None:
        return kept
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise ReaderError(path, f"cannot read: {error.strerror}", check="exists") from None
    return _gunzip(path, data) if data[:2] == GZIP_MAGIC else data


def primary_fits_header(path: str | Path, cards: int | None = None) -> Any:
    """The primary header (an astropy Header) of a FITS file, for sniffing: from the content
    :func:`verify` kept when it did, else read from the file. With ``cards``, only its first
    ``cards`` 80-character cards: the FITS standard puts SIMPLE, BITPIX, NAXIS and NAXISn first, and
    astropy looks its configuration up two or three times (~5 us each) for every card it parses
    (a plugin's two sniffers on 5 cards instead of a 36-card block: 0.56-0.67 ms a file against
    0.70-0.83). Raises OSError or ValueError when the file is not FITS."""
    from astropy.io import fits

    kept = _kept_content(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if cards is None:
            return fits.getheader(path, 0) if kept is None else fits.Header.fromfile(io.BytesIO(kept))
        start = kept[: cards * CARD_BYTES] if kept is not None else _first_bytes(path, cards * CARD_BYTES)
        if not start.startswith(b"SIMPLE  ="):
            raise ValueError(f"{path}: not a FITS file (no SIMPLE card first)")
        return fits.Header.fromstring(start.decode("ascii"))


def _first_bytes(path: str | Path, size: int) -> bytes:
    """The first ``size`` bytes of a file's content, decompressed when gzipped."""
    with open(path, "rb") as handle:
        gzipped = handle.read(2) == GZIP_MAGIC
    with gzip.open(path) if gzipped else open(path, "rb") as handle:
        return handle.read(size)


@contextlib.contextmanager
def open_fits(path: str | Path, content: bytes | None = None, **options: Any) -> Iterator[Any]:
    """An astropy HDUList of the verified content (``content``: what :func:`read_verified` gave for
    ``path``, when the caller holds it): every HDU's data complete, and its CHECKSUM/DATASUM checked
    where present."""
    from astropy.io import fits

    content = read_verified(path) if content is None else content
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        hdul = fits.open(io.BytesIO(content), memmap=False, checksum=True, lazy_load_hdus=False, **options)
    with hdul:
        for index, hdu in enumerate(hdul):
            located = hdu.fileinfo() or hdul.fileinfo(index)  # the HDU's own: the list's re-renders every header
            end = located["datLoc"] + hdu.size
            if end > len(content):
                reason = f"truncated FITS file: HDU {index} ends at byte {end}, the content has {len(content)}"
                raise ReaderError(path, reason, check="fits-size")
        for warning in caught:
            if "verification failed" in str(warning.message).lower():
                raise ReaderError(path, f"FITS {warning.message}", check="fits-checksum")
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
        yield hdul


LAYOUT_KEYWORDS = (b"NAXIS", b"PCOUNT", b"GCOUNT", b"TFIELDS", b"THEAP", b"TTYPE", b"TFORM", b"TSCAL", b"TZERO", b"TNULL", b"TDIM")
"""Cards that define a binary table's columns and their layout (a layout's key in :func:`table_layout`)."""

_layouts: dict[bytes, Any] = {}
LAYOUTS_KEPT = 256
"""Distinct table layouts :func:`table_layout` keeps (a survey's files come in a few)."""


def table_layout(hdu: Any, content: bytes) -> Any:
    """The astropy column definitions (``ColDefs``) of a binary-table HDU that :func:`open_fits`
    opened from ``content``: made once per distinct layout, the raw cards of :data:`LAYOUT_KEYWORDS`
    its key (astropy builds them from the header in ~1 ms a file, as long as the rest of a small
    file's reading)."""
    located = hdu.fileinfo()
    block = content[located["hdrLoc"] : located["datLoc"]]
    key = b"".join(block[i : i + CARD_BYTES] for i in range(0, len(block), CARD_BYTES) if block[i : i + 8].startswith(LAYOUT_KEYWORDS))
    if key not in _layouts:
        if len(_layouts) >= LAYOUTS_KEPT:
            _layouts.clear()
        _layouts[key] = hdu.columns
    return _layouts[key]


NUMERIC_FORMATS = "BIJKED"
"""FITS binary-table formats read straight from the content by :func:`table_columns`."""


def table_columns(hdu: Any, content: bytes, names: Iterable[str]) -> dict[str, np.ndarray]:
    """Columns ``names`` (any case) of a binary-table HDU that :func:`open_fits` opened from
    ``content``, as float64 arrays of shape (rows, ...). Plain numeric columns are read from the
    content through the table's column formats (astropy defines a table's columns twice when its
    data is read: about 1 ms for a small file); a scaled (TSCAL, TZERO), null-valued or other column
    through astropy's table data."""
    columns = table_layout(hdu, content)
    raw = np.frombuffer(content, dtype=columns.dtype.newbyteorder(">"), count=hdu.header["NAXIS2"], offset=hdu.fileinfo()["datLoc"])
    out = {}
    for name in names:
        column = columns[name]
        plain = column.format[-1:] in tuple(NUMERIC_FORMATS) and column.bscale in (None, 1) and column.bzero in (None, 0) and column.null is None
        with np.errstate(invalid="ignore"):
            out[name] = raw[column.name].astype(np.float64) if plain else np.asarray(hdu.data[column.name], dtype=np.float64)
    return out
