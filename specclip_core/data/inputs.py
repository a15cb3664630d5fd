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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from specclip_core.errors import ReaderError

GZIP_MAGIC = b"\x1f\x8b"
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


def verify(path: str | Path, block: int = 1 << 22) -> None:
    """Check a file before anything sniffs it: regular, not empty, and (when gzipped) its CRC and
    length intact, streamed through without holding the content. A sniffer that reads a damaged
    gzip file may loop on the garbage (astropy does), and would report it as unrecognised."""
    check_regular_file(path)
    with open(path, "rb") as handle:
        start = handle.read(2)
    if not start:
        raise ReaderError(path, "empty file", check="empty")
    if start != GZIP_MAGIC:
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
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise ReaderError(path, f"cannot read: {error.strerror}", check="exists") from None
    if data[:2] != GZIP_MAGIC:
        return data
    try:
        return gzip.decompress(data)
    except EOFError as error:
        raise ReaderError(path, f"truncated gzip file ({error})", check="gzip") from None
    except (gzip.BadGzipFile, zlib.error) as error:
        raise ReaderError(path, f"damaged gzip file ({error})", check="gzip") from None


@contextlib.contextmanager
def open_fits(path: str | Path, **options: Any) -> Iterator[Any]:
    """An astropy HDUList of the verified content: every HDU's data complete, and its CHECKSUM/DATASUM
    checked where present."""
    from astropy.io import fits

    content = read_verified(path)
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
