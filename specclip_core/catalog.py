"""Catalogue files of predicted labels (CSV, ECSV or FITS, by suffix) that say what each column is.

Every label column carries its unit, the heads stage that predicted it and whether that head was
trained on real or SIMULATED spectra; the header names the model and says the same per head.

Precision: a label is rounded to the largest power of ten not above a tenth of its head's robust
sigma on the test split (Teff with sigma 50 K to 1 K, logg with sigma 0.08 dex to 0.001 dex). The
digits kept are those the head's own scatter supports plus one, and the rounding adds at most
sigma/10/sqrt(12) = 0.03 sigma in quadrature (0.04% more scatter). A label whose head has no sigma
keeps 6 significant digits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from specclip_core.errors import SpecCLIPError

FORMATS = {".csv": "ascii.csv", ".ecsv": "ascii.ecsv", ".fits": "fits", ".fit": "fits"}


def catalog_format(path: Path) -> str:
    """The astropy format a catalogue path's suffix asks for; an error for any other suffix."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise SpecCLIPError(f"{path}: a catalogue must end in {', '.join(sorted(FORMATS))}")
    return FORMATS[suffix]


@dataclass(frozen=True)
class LabelColumn:
    """What a catalogue says about one predicted label."""

    stage: str
    simulated: bool
    modality: str
    unit: str = ""
    sigma: float | None = None

    @property
    def decimals(self) -> int | None:
        """Decimal places kept (negative: tens, hundreds ...); None without a sigma."""
        if self.sigma is None or not math.isfinite(self.sigma) or self.sigma <= 0:
            return None
        return math.ceil(math.log10(10 / self.sigma))

    @property
    def format(self) -> str:
        return "{:.6g}" if self.decimals is None else f"{{:.{max(self.decimals, 0)}f}}"

    def rounded(self, values: np.ndarray) -> np.ndarray:
        values = np.asarray(values, dtype=np.float64)
        return values if self.decimals is None else np.round(values, self.decimals)

    @property
    def trained_on(self) -> str:
        return f"{'SIMULATED' if self.simulated else 'real'} {self.modality} spectra"

    def describe(self) -> str:
        unit = self.unit or "no unit given"
        step = "6 significant digits" if self.decimals is None else f"rounded to {10.0 ** -self.decimals:g} (test robust sigma {self.sigma:.3g})"
        return f"{unit}; heads stage {self.stage}, trained on {self.trained_on}; {step}"


def write_catalog(path: Path, columns: dict[str, np.ndarray], header: dict[str, object], labels: dict[str, LabelColumn]) -> None:
    """Write ``columns`` (label columns described by ``labels``) with ``header``: '#' comments in a
    CSV, the table's meta in an ECSV, header keywords in a FITS file."""
    from astropy.table import Table

    path = Path(path)
    kind = catalog_format(path)
    table = Table({name: labels[name].rounded(values) if name in labels else np.asarray(values) for name, values in columns.items()} or {"id": np.array([], dtype=str)})
    for name, info in labels.items():
        if name in table.colnames:
            table[name].format = info.format
            table[name].description = info.describe()
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "fits":
        _write_fits(path, table, header, labels)
        return
    if kind == "ascii.csv":
        lines = [f"{key}: {value}" for key, value in header.items()]
        table.meta["comments"] = lines + [f"COLUMN {name}: {table[name].description}" for name in labels if name in table.colnames]
        table.write(path, format=kind, comment="# ", overwrite=True)
        return
    for name, info in labels.items():
        if name in table.colnames and info.unit:
            table[name].unit = info.unit
    table.meta.update(header)
    table.write(path, format=kind, overwrite=True)


def _write_fits(path: Path, table, header: dict[str, object], labels: dict[str, LabelColumn]) -> None:
    """A binary table whose TUNITn are the units as given ('dex' too, which astropy would drop) and
    whose TTYPEn comments say which head predicted the column."""
    from astropy.io import fits

    hdu = fits.table_to_hdu(table)
    for index, name in enumerate(table.colnames, start=1):
        info = labels.get(name)
        if info is not None:
            if info.unit:
                hdu.header[f"TUNIT{index}"] = info.unit
            hdu.header.comments[f"TTYPE{index}"] = f"{info.stage}: {'SIMULATED' if info.simulated else 'real'} {info.modality}"[:46]
    for key, value in header.items():
        hdu.header[key] = value
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(path, overwrite=True)
