"""A writer of DESI coadd-style files: what :class:`~specclip_desi.readers.DesiCoaddReader` reads.

One file holds every spectrum given (DESI files hold many fibres): a primary header (``SIMULATED``
T for simulated spectra, ``ORIGIN = 'specclip'``), a ``FIBERMAP`` (TARGETID, TARGET_RA/DEC, OBJTYPE
``TGT``, FIBER 0..N-1, COADD_FIBERSTATUS 0, REF_ID/REF_CAT ``G2`` where meta ``gaia_source_id`` is
given, SPECID the original id) and per arm B, R, Z the WAVELENGTH, FLUX, IVAR, MASK and RESOLUTION
images. The merged spectrum is cut into the arms; where two arms overlap both get the flux and half
the inverse variance, so that merging them again gives back the same flux and ivar. RESOLUTION
holds a Gaussian LSF of each arm's resolving power (meta ``resolving_power_<arm>`` where given).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from astropy.io import fits

from specclip_core.api import Spectra, Writer
from specclip_desi.grid import ARMS, NATIVE_WAVELENGTH, STEP, arm_offset, arm_wavelength
from specclip_desi.resolution import gaussian_diagonals

ARM_RESOLVING_POWER = {"B": 2800.0, "R": 4400.0, "Z": 4750.0}
"""Resolving power per arm, the medians measured from the real files' resolution matrices (README)."""
MASKED = 1
"""MASK value of a masked pixel (any non-zero value masks)."""
MAX_TARGETID = 2**63 - 1


def targetid_for(spectrum_id: str) -> int:
    """The id itself when it is a canonical positive integer that fits int64, else a synthetic one
    (the first 13 hex digits of its sha256)."""
    text = str(spectrum_id)
    if text.isascii() and text.isdigit() and text == str(int(text)) and 0 < int(text) <= MAX_TARGETID:
        return int(text)
    return int(hashlib.sha256(text.encode()).hexdigest()[:13], 16)


def _overlap_share() -> np.ndarray:
    """Per merged pixel, the share of the inverse variance each arm covering it gets (1 or 1/2)."""
    cover = np.zeros(NATIVE_WAVELENGTH.size)
    for arm in ARMS:
        cover[arm_offset(arm) : arm_offset(arm) + arm_wavelength(arm).size] += 1
    return 1.0 / cover


def _meta_numbers(meta: dict[str, np.ndarray], key: str, n: int, default: float) -> np.ndarray:
    column = meta.get(key)
    if column is None or column.dtype.kind not in "fiu":
        return np.full(n, default, dtype=np.float64)
    values = column.astype(np.float64)
    return np.where(np.isfinite(values), values, default)


class DesiCoaddWriter(Writer):
    """DESI coadd-style ``coadd-[sim-]<hash>.fits``, all spectra in one file."""

    name = "desi_coadd"
    modality = "desi"
    description = "DESI coadd-style coadd-*.fits (FIBERMAP + B/R/Z images); SIMULATED = T for simulated spectra"

    def write(self, spectra: Spectra, directory: Path) -> list[Path]:
        if spectra.wavelength.shape != NATIVE_WAVELENGTH.shape or np.max(np.abs(spectra.wavelength - NATIVE_WAVELENGTH)) > 1e-6:
            raise ValueError(f"DESI files hold spectra on the merged grid 3600-9824 A every {STEP} A ({NATIVE_WAVELENGTH.size} pixels)")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        n, meta = len(spectra), spectra.meta
        simulated = bool(np.all(meta["simulated"])) if "simulated" in meta else False
        header = fits.Header()
        header["HIERARCH SIMULATED"] = (simulated, "T: simulated, not an observation")
        header["ORIGIN"] = ("specclip", "written by specclip-desi's DesiCoaddWriter")
        hdus = [fits.PrimaryHDU(header=header), fits.BinTableHDU.from_columns(self._fibermap(spectra), name="FIBERMAP")]
        ivar = np.where(spectra.mask, 0.0, spectra.ivar) * _overlap_share()
        for arm in ARMS:
            cut = slice(arm_offset(arm), arm_offset(arm) + arm_wavelength(arm).size)
            wavelength = arm_wavelength(arm)
            power = _meta_numbers(meta, f"resolving_power_{arm.lower()}", n, ARM_RESOLVING_POWER[arm])
            resolution = np.stack([gaussian_diagonals(wavelength, p, STEP) for p in power])
            for kind, data in (
                ("WAVELENGTH", wavelength),
                ("FLUX", spectra.flux[:, cut].astype(np.float32)),
                ("IVAR", ivar[:, cut].astype(np.float32)),
                ("MASK", np.where(spectra.mask[:, cut], MASKED, 0).astype(np.int32)),
                ("RESOLUTION", resolution),
            ):
                hdus.append(fits.ImageHDU(data, name=f"{arm}_{kind}"))
        digest = hashlib.sha256("\n".join(spectra.ids).encode()).hexdigest()[:16]
        path = directory / f"coadd-{'sim-' if simulated else ''}{digest}.fits"
        fits.HDUList(hdus).writeto(path, overwrite=True, checksum=True)
        return [path]

    @staticmethod
    def _fibermap(spectra: Spectra) -> list[fits.Column]:
        n, meta = len(spectra), spectra.meta
        gaia = meta.get("gaia_source_id", np.full(n, ""))
        ref_id = np.array([int(g) if str(g).isdigit() else 0 for g in gaia], dtype=np.int64)
        return [
            fits.Column("TARGETID", "K", array=np.array([targetid_for(i) for i in spectra.ids], dtype=np.int64)),
            fits.Column("SPECID", "64A", array=np.array([str(i)[:64] for i in spectra.ids])),
            fits.Column("TARGET_RA", "D", array=_meta_numbers(meta, "target_ra", n, np.nan)),
            fits.Column("TARGET_DEC", "D", array=_meta_numbers(meta, "target_dec", n, np.nan)),
            fits.Column("OBJTYPE", "3A", array=np.full(n, "TGT")),
            fits.Column("FIBER", "J", array=np.arange(n, dtype=np.int32)),
            fits.Column("COADD_FIBERSTATUS", "J", array=np.zeros(n, dtype=np.int32)),
            fits.Column("REF_ID", "K", array=ref_id),
            fits.Column("REF_CAT", "2A", array=np.where(ref_id > 0, "G2", "")),
        ]
