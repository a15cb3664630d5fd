"""DESI's instrument description, for simulators (specclip-sim)."""

from __future__ import annotations

from importlib.resources import files

from specclip_core.api import Instrument
from specclip_desi.grid import NATIVE_WAVELENGTH
from specclip_desi.readers import SNR_BAND

RESOLVING_POWER = 2800.0
"""The B arm's resolving power (the arm under the model grid), measured from the resolution
matrices of the real files (median of the kept fibres 2728-2840; README)."""

INSTRUMENT = Instrument(
    resolving_power=RESOLVING_POWER,
    native_wavelength=NATIVE_WAVELENGTH,
    description="DESI spectrographs: arms B 3600-5800, R 5760-7620, Z 7520-9824 A every 0.8 A (vacuum), "
    "merged; R ~ 2800 (B), 4400 (R), 4750 (Z) from the resolution matrices",
    snr_band=SNR_BAND,
    calibration=str(files("specclip_desi") / "calibrations" / "desi.json"),
)
"""``calibration``: what specclip-sim takes from the real files (``tools/measure_calibration.py``):
the R of each arm (B 2754, R 4409, Z 4766, medians; the simulator convolves each arm at its own),
the effective R (the B arm's), the S/N values and the mask runs of the kept fibres."""
