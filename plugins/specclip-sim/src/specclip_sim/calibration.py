"""What simulating one modality takes from that instrument's real spectra: a calibration file.

A calibration (``specclip_sim/calibrations/<modality>.json``, package data) holds, measured from real
spectra of the instrument and with its provenance:

- ``resolving_power``: the effective resolving power to simulate at (may differ from the
  instrument's nominal one: it is whatever makes simulated spectra match real ones best);
- ``snr_band``: the wavelength range whose median per-pixel S/N is the quoted S/N;
- ``snr_values``: an empirical S/N distribution to draw from;
- ``throughput``: the relative throughput on the instrument's native grid (shapes the noise);
- ``mask_runs``: masked-pixel runs of real spectra, one list per spectrum, to reuse as the masks of
  simulated spectra (optional);
- ``correction``: an empirical, label-dependent correction of the emulator's normalised flux
  learned from real spectra (optional; :mod:`specclip_sim.correction`);
- ``measured``: how and from what it was measured (script, data, date, numbers).

Modalities without a calibration are simulated at their instrument's nominal resolving power with a
flat throughput, and need S/N values from the caller.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from specclip_sim.correction import ResidualCorrection

CALIBRATIONS = "calibrations"


class Calibration(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    modality: str
    resolving_power: float = Field(gt=0)
    snr_band: tuple[float, float]
    snr_values: list[float] = Field(min_length=1)
    wavelength_start: float = Field(gt=0, description="first wavelength (A) of the native grid the arrays refer to")
    log_step: float = Field(gt=0, description="log10 step of that grid")
    throughput: list[float] | None = None
    mask_runs: list[list[tuple[int, int]]] | None = Field(None, description="per real spectrum: (first pixel, length) of each masked run on the native grid")
    correction: ResidualCorrection | None = Field(None, description="empirical correction of the emulator learned from real spectra (specclip_sim.correction)")
    measured: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> Calibration:
        if not all(np.isfinite(v) and v > 0 for v in self.snr_values):
            raise ValueError("snr_values must be finite and positive")
        if self.throughput is not None and not all(np.isfinite(v) and v > 0 for v in self.throughput):
            raise ValueError("throughput must be finite and positive")
        return self

    def native_wavelength(self, n_pixels: int) -> np.ndarray:
        return 10.0 ** (np.log10(self.wavelength_start) + self.log_step * np.arange(n_pixels))

    def throughput_on(self, wavelength: np.ndarray) -> np.ndarray | None:
        """The throughput interpolated (in log wavelength) onto ``wavelength``; None when absent."""
        if self.throughput is None:
            return None
        grid = np.log10(self.native_wavelength(len(self.throughput)))
        return np.interp(np.log10(np.asarray(wavelength, dtype=np.float64)), grid, np.asarray(self.throughput))

    def save(self, path: str | Path) -> None:
        """One top-level key per line, values compact."""
        items = [f"{json.dumps(k)}: {json.dumps(v, separators=(',', ':'))}" for k, v in self.model_dump(mode="json").items()]
        Path(path).write_text("{\n" + ",\n".join(items) + "\n}\n")


def calibration_path(modality: str) -> Path:
    return Path(str(resources.files("specclip_sim").joinpath(CALIBRATIONS, f"{modality}.json")))


def load_calibration(modality: str) -> Calibration | None:
    """The shipped calibration of ``modality`` (its registered name), or None."""
    path = calibration_path(modality)
    if not path.is_file():
        return None
    return Calibration.model_validate_json(path.read_text())
