"""Readers of DESI ``coadd-*.fits`` and ``spectra-*.fits`` files (astropy.io.fits, through the core's
:func:`~specclip_core.api.open_fits`: regular files only, CHECKSUM/DATASUM verified where present).

Both layouts hold N fibres: a ``FIBERMAP`` table (TARGETID, TARGET_RA/DEC, OBJTYPE, REF_ID/REF_CAT,
FIBER, (COADD_)FIBERSTATUS, ...) and per arm B, R, Z the images ``<ARM>_WAVELENGTH`` (L),
``<ARM>_FLUX``, ``<ARM>_IVAR``, ``<ARM>_MASK`` (N x L) and ``<ARM>_RESOLUTION`` (N x ndiag x L). A
coadd has one row per target (a tile coadd names its FIBER; a healpix coadd does not, and the fibres
are taken from ``EXP_FIBERMAP``); a spectra file one row per fibre and exposure.

Each kept fibre becomes one spectrum on the merged grid 3600-9824 A (:data:`~specclip_desi.grid.NATIVE_WAVELENGTH`):
a pixel is valid in an arm where MASK == 0, IVAR > 0 and both are finite; where two arms overlap
(5760-5800 and 7520-7620 A) their valid pixels are averaged with inverse-variance weights and the
ivars add; a pixel valid in no arm is masked (ivar 0). Fibres with no target (negative TARGETID,
OBJTYPE not TGT) or no valid pixel are left out and listed in ``Spectra.skipped`` with the fibre and
the reason. The id is the TARGETID.
"""

from __future__ import annotations

import warnings
import zlib
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.io.fits.verify import VerifyError

from specclip_core.api import Reader, ReaderError, Spectra, open_fits, primary_fits_header
from specclip_desi.fibres import fibres_of, skip_reason
from specclip_desi.grid import ARMS, NATIVE_WAVELENGTH, STEP, arm_offset, arm_wavelength
from specclip_desi.resolution import resolving_power

SNR_BAND = (4000.0, 5600.0)
"""Where ``snr`` (median flux * sqrt(ivar) over valid pixels) is measured: the model grid's range."""
GAIA_CATALOGUES = ("G2", "GE")
"""REF_CAT values whose REF_ID is a Gaia source_id (DR2; EDR3, the same ids as DR3)."""
WAVELENGTH_TOLERANCE = 1e-3
"""Largest allowed distance (A) between a file's arm wavelengths and DESI's 0.8 A grid."""
COMMON_COLUMNS = (
    "targetid", "target_ra", "target_dec", "fiber", "fiberstatus", "objtype", "ref_id", "ref_cat", "gaia_source_id",
    "snr", "snr_b", "snr_r", "snr_z", "resolving_power_b", "resolving_power_r", "resolving_power_z", "simulated",
)
"""Meta columns of every file (``simulated`` only in files written for simulated spectra)."""
DAMAGE_SIGNS = ("truncated", "non-ASCII", "Unexpected bytes", "END card", "corrupt")
"""Words of astropy warnings that mean the bytes are damaged (most HDUs of spectra files carry no CHECKSUM)."""
_READ_ERRORS = (OSError, EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError, zlib.error, VerifyError)


def _column(table, name: str, default, dtype) -> np.ndarray:
    names = {n.upper(): n for n in table.columns.names}
    if name not in names:
        return np.full(len(table), default, dtype=dtype)
    return np.asarray(table[names[name]]).astype(dtype)


def _median_snr(flux: np.ndarray, ivar: np.ndarray, valid: np.ndarray, where: np.ndarray) -> np.ndarray:
    snr = np.where(valid & where, flux * np.sqrt(np.where(valid, ivar, 0.0)), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(snr, axis=1) if snr.shape[1] else np.full(len(flux), np.nan)


class _Arm:
    """One arm's arrays, checked against the fibermap and DESI's grid."""

    def __init__(self, path: Path, hdul: fits.HDUList, arm: str, n: int):
        wavelength = np.asarray(hdul[f"{arm}_WAVELENGTH"].data, dtype=np.float64).reshape(-1)
        expected = arm_wavelength(arm)
        if wavelength.shape != expected.shape or np.max(np.abs(wavelength - expected)) > WAVELENGTH_TOLERANCE:
            lo, hi = ARMS[arm]
            raise ReaderError(path, f"{arm}_WAVELENGTH is not DESI's {arm} grid ({lo:g}-{hi:g} A every {STEP} A, {expected.size} pixels)")
        self.flux = np.asarray(hdul[f"{arm}_FLUX"].data, dtype=np.float64)
        self.ivar = np.asarray(hdul[f"{arm}_IVAR"].data, dtype=np.float64)
        mask = np.asarray(hdul[f"{arm}_MASK"].data)
        for name, array in (("FLUX", self.flux), ("IVAR", self.ivar), ("MASK", mask)):
            if array.shape != (n, expected.size):
                raise ReaderError(path, f"{arm}_{name} has shape {array.shape}; expected ({n}, {expected.size}) for {n} FIBERMAP rows")
        with np.errstate(invalid="ignore"):
            self.valid = (mask == 0) & np.isfinite(self.flux) & np.isfinite(self.ivar) & (self.ivar > 0)
        self.wavelength = expected
        self.power = np.full(n, np.nan)
        if f"{arm}_RESOLUTION" in hdul:
            resolution = np.asarray(hdul[f"{arm}_RESOLUTION"].data, dtype=np.float64)
            if resolution.ndim != 3 or resolution.shape[0] != n or resolution.shape[2] != expected.size:
                raise ReaderError(path, f"{arm}_RESOLUTION has shape {resolution.shape}; expected ({n}, ndiag, {expected.size})")
            power = np.where(self.valid, resolving_power(expected, resolution, STEP), np.nan)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                self.power = np.nanmedian(power, axis=1)


def merge_arms(arms: dict[str, _Arm], n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flux, ivar and mask (N x 7781) on the merged grid: inverse-variance means where arms overlap."""
    weighted = np.zeros((n, NATIVE_WAVELENGTH.size))
    ivar = np.zeros((n, NATIVE_WAVELENGTH.size))
    for name, arm in arms.items():
        cut = slice(arm_offset(name), arm_offset(name) + arm.wavelength.size)
        w = np.where(arm.valid, arm.ivar, 0.0)
        weighted[:, cut] += w * np.where(arm.valid, arm.flux, 0.0)
        ivar[:, cut] += w
    mask = ivar <= 0
    flux = np.where(mask, 0.0, weighted / np.where(mask, 1.0, ivar))
    return flux, ivar, mask


class DesiReader(Reader):
    """Base of the two DESI readers (they differ in file names and fibermap columns)."""

    prefix = ""
    status_column = ""
    extra_columns: tuple[str, ...] = ()

    def sniff(self, path: Path) -> bool:
        path = Path(path)
        if not (path.name.startswith(self.prefix) and path.name.lower().endswith((".fits", ".fits.gz"))):
            return False
        try:
            return primary_fits_header(path, cards=3).get("NAXIS") == 0  # SIMPLE, BITPIX, NAXIS
        except (*_READ_ERRORS, ReaderError):
            return False

    def read(self, path: Path) -> Spectra:
        path = Path(path)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                with open_fits(path) as hdul:
                    spectra = self._extract(path, hdul)
        except ReaderError:
            raise
        except _READ_ERRORS as error:
            raise ReaderError(path, f"cannot read as a DESI {self.prefix}*.fits file: {type(error).__name__}: {error}") from None
        for warning in caught:
            text = str(warning.message)
            if any(sign in text for sign in DAMAGE_SIGNS):
                raise ReaderError(path, f"damaged or truncated FITS file ({text.strip()})")
        return spectra

    def _extract(self, path: Path, hdul: fits.HDUList) -> Spectra:
        if "FIBERMAP" not in hdul or not isinstance(hdul["FIBERMAP"], fits.BinTableHDU):
            raise ReaderError(path, "no FIBERMAP binary table (not a DESI spectra or coadd file)")
        fibermap = hdul["FIBERMAP"].data
        if fibermap is None or len(fibermap) == 0 or "TARGETID" not in {c.upper() for c in fibermap.columns.names}:
            raise ReaderError(path, "the FIBERMAP table is empty or has no TARGETID column")
        n = len(fibermap)
        missing = [f"{arm}_{kind}" for arm in ARMS for kind in ("WAVELENGTH", "FLUX", "IVAR", "MASK") if f"{arm}_{kind}" not in hdul]
        if missing:
            raise ReaderError(path, f"missing image HDU(s) {', '.join(missing)} (a DESI file has arms B, R and Z)")
        arms = {arm: _Arm(path, hdul, arm, n) for arm in ARMS}
        flux, ivar, mask = merge_arms(arms, n)

        targetid = _column(fibermap, "TARGETID", -1, np.int64)
        objtype = np.char.strip(_column(fibermap, "OBJTYPE", "", str))
        status = _column(fibermap, self.status_column, 0, np.int64)
        exp_fibermap = hdul["EXP_FIBERMAP"].data if "EXP_FIBERMAP" in hdul else None
        fibres = fibres_of(fibermap, exp_fibermap)
        valid = (~mask).sum(axis=1)
        reasons = [skip_reason(int(t), str(o), f, int(s), int(v)) for t, o, f, s, v in zip(targetid, objtype, fibres, status, valid, strict=True)]
        keep = np.array([r is None for r in reasons])
        skipped = [(str(t), r) for t, r in zip(targetid, reasons, strict=True) if r is not None]
        if not keep.any():
            raise ReaderError(path, f"no fibre holds a spectrum of a target: {'; '.join(r for _, r in skipped)}")

        ref_id = _column(fibermap, "REF_ID", 0, np.int64)
        ref_cat = np.char.strip(_column(fibermap, "REF_CAT", "", str))
        gaia = np.where(np.isin(ref_cat, GAIA_CATALOGUES) & (ref_id > 0), ref_id.astype(str), "")
        band = (NATIVE_WAVELENGTH >= SNR_BAND[0]) & (NATIVE_WAVELENGTH <= SNR_BAND[1])
        meta = {
            "targetid": targetid, "target_ra": _column(fibermap, "TARGET_RA", np.nan, np.float64),
            "target_dec": _column(fibermap, "TARGET_DEC", np.nan, np.float64), "fiber": np.array(fibres),
            "fiberstatus": status, "objtype": objtype, "ref_id": ref_id, "ref_cat": ref_cat, "gaia_source_id": gaia,
            "snr": _median_snr(flux, ivar, ~mask, band),
        }
        for name, arm in arms.items():
            meta[f"snr_{name.lower()}"] = _median_snr(arm.flux, arm.ivar, arm.valid, np.ones(arm.wavelength.size, bool))
            meta[f"resolving_power_{name.lower()}"] = arm.power
        for column in self.extra_columns:
            meta[column] = _column(fibermap, column.upper(), -1, np.int64)
        if "SIMULATED" in hdul[0].header:
            meta["simulated"] = np.full(n, hdul[0].header["SIMULATED"] is True)
        meta = {k: v[keep] for k, v in meta.items()}
        spectra = Spectra(NATIVE_WAVELENGTH, flux[keep], ivar[keep], mask[keep], targetid[keep].astype(str), meta)
        spectra.skipped = skipped
        return spectra


class DesiCoaddReader(DesiReader):
    """DESI ``coadd-*.fits``: one row per target (exposures combined), arms B, R, Z."""

    name = "desi_coadd"
    modality = "desi"
    patterns = ("coadd-*.fits", "coadd-*.fits.gz")
    description = "DESI coadd-*.fits: FIBERMAP and B/R/Z WAVELENGTH, FLUX, IVAR, MASK, RESOLUTION; arms merged"
    meta_columns = COMMON_COLUMNS
    prefix = "coadd-"
    status_column = "COADD_FIBERSTATUS"


class DesiSpectraReader(DesiReader):
    """DESI ``spectra-*.fits``: one row per fibre and exposure, arms B, R, Z."""

    name = "desi_spectra"
    modality = "desi"
    patterns = ("spectra-*.fits", "spectra-*.fits.gz")
    description = "DESI spectra-*.fits (per exposure): FIBERMAP and B/R/Z WAVELENGTH, FLUX, IVAR, MASK, RESOLUTION; arms merged"
    meta_columns = (*COMMON_COLUMNS, "expid", "night")
    prefix = "spectra-"
    status_column = "FIBERSTATUS"
    extra_columns = ("expid", "night")
