"""Measure DESI's calibration for specclip-sim from real DESI files: writes
``src/specclip_desi/calibrations/desi.json``.

    python tools/measure_calibration.py DIR      # DIR: the four DESI files of the specutils 2.4.0 wheel

Resolving power per arm: median over valid pixels of lambda / FWHM of each kept fibre's resolution
matrix (:mod:`specclip_desi.resolution`), the median over fibres per arm (``arms``: the simulation
convolves each arm at its own R); ``resolving_power`` is the B arm's (the arm under the model grid). S/N: each kept fibre's median flux sqrt(ivar) over 4000-5600 A. Mask runs: the masked runs of
every kept fibre on the merged grid.
"""

from __future__ import annotations

import datetime
import json
import sys
from pathlib import Path

import numpy as np

from specclip_desi.grid import ARMS, START, STEP
from specclip_desi.readers import SNR_BAND, DesiCoaddReader, DesiSpectraReader


def runs(mask: np.ndarray) -> list[list[int]]:
    """(first pixel, length) of each run of True."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return [[int(a), int(b - a)] for a, b in zip(starts, stops, strict=True)]


def main(folder: Path) -> dict:
    paths = sorted(folder.glob("coadd-*.fits")) + sorted(folder.glob("spectra-*.fits"))
    read = [(p, (DesiCoaddReader() if p.name.startswith("coadd-") else DesiSpectraReader()).read(p)) for p in paths]
    power = {arm: np.concatenate([s.meta[f"resolving_power_{arm}"] for _, s in read]) for arm in "brz"}
    snr = np.concatenate([s.meta["snr"] for _, s in read])
    masks = [runs(row) for _, s in read for row in s.mask]
    masked = np.concatenate([s.mask for _, s in read]).mean()
    return {
        "modality": "desi",
        "resolving_power": round(float(np.median(power["b"])), 1),
        "arms": [{"name": arm, "start": lo, "stop": hi, "resolving_power": round(float(np.median(power[arm.lower()])), 1)} for arm, (lo, hi) in ARMS.items()],
        "snr_band": list(SNR_BAND),
        "snr_values": [round(float(v), 4) for v in snr],
        "wavelength_start": START,
        "wavelength_step": STEP,
        "mask_runs": masks,
        "measured": {
            "by": "plugins/specclip-desi/tools/measure_calibration.py",
            "date": datetime.date.today().isoformat(),
            "data": "the 5 kept fibres (3 targets) of the 4 DESI EDR files in the specutils 2.4.0 wheel: "
            + ", ".join(p.name for p, _ in read),
            "resolving_power_per_arm": {arm.upper(): {"median": round(float(np.median(v)), 1), "min": round(float(v.min()), 1), "max": round(float(v.max()), 1)} for arm, v in power.items()},
            "masked_fraction": round(float(masked), 5),
            "warning": "the only real DESI spectra here are faint galaxies: their S/N per pixel (0.06-0.47) is not that of "
            "stellar targets; give simulations an snr column (or snr_values) for stars",
        },
    }


if __name__ == "__main__":
    out = Path(__file__).resolve().parent.parent / "src" / "specclip_desi" / "calibrations" / "desi.json"
    calibration = main(Path(sys.argv[1]))
    out.write_text("{\n" + ",\n".join(f"{json.dumps(k)}: {json.dumps(v, separators=(',', ':'))}" for k, v in calibration.items()) + "\n}\n")
    print(out, json.dumps(calibration["measured"], indent=1))
