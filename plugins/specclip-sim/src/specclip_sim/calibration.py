"""What simulating one modality takes from that instrument's real spectra: a calibration file.

A calibration (the file a modality's plugin ships and names in ``Instrument.calibration``: this
package ships none, it knows no survey) holds, measured from real spectra of the instrument and
with its provenance:

- ``resolving_power``: the effective resolving power to simulate at (may differ from the
  instrument's nominal one: it is whatever makes simulated spectra match real ones best);
- ``arms`` (optional): for a spectrograph with several arms, each arm's wavelength range and
  resolving power; the simulation then convolves each arm at its own R (:mod:`specclip_sim.lsf`)
  and ``resolving_power`` is the effective one of the arm under the model grid;
- ``snr_band``: the wavelength range whose median per-pixel S/N is the quoted S/N;
- ``snr_values``: an empirical S/N distribution to draw from;
- ``throughput``: the relative throughput on the instrument's native grid (shapes the noise);
- ``mask_runs``: masked-pixel runs of real spectra, one list per spectrum, to reuse as the masks of
  simulated spectra (optional);
- ``correction``: an empirical, label-dependent correction of the emulator's normalised flux
  learned from real spectra (optional; :mod:`specclip_sim.correction`);
- ``parts_file`` / ``parts_sha256`` (optional): a numpy ``.npz`` file next to the calibration, with
  its SHA-256, holding the parts drawn from real spectra (:mod:`specclip_sim.empirical`: correlated
  noise, sky-residual windows, flux-calibration shapes, residual variety, background noise), read by :meth:`Calibration.parts`;
- ``measured``: how and from what it was measured (script, data, date, numbers).

Modalities without a calibration are simulated at their instrument's nominal resolving power with a
flat throughput, and need S/N values from the caller.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from specclip_core.api import SpecCLIPError, get_modality

from specclip_sim.correction import ResidualCorrection
from specclip_sim.empirical import BackgroundNoise, CorrelatedNoise, FluxShapes, ResidualVariety, SkyResiduals
from specclip_sim.lsf import ArmResolution

PARTS_KEYS = {
    "noise": ("noise_scale", "noise_kernel"),
    "sky": ("sky_pixels", "sky_templates", "sky_snr"),
    "flux_shapes": ("shape_range", "shape_coefficients", "shape_teff"),
    "variety": ("variety_grid", "variety_components", "variety_scores", "variety_labels"),
    "background": ("background_throughput", "background_profiles", "background_amplitudes", "background_snr"),
}


@dataclass(frozen=True)
class EmpiricalParts:
    """The parts of a calibration's parts file (None where the file has no such part)."""

    noise: CorrelatedNoise | None
    sky: SkyResiduals | None
    flux_shapes: FluxShapes | None
    variety: ResidualVariety | None = None
    background: BackgroundNoise | None = None


class Calibration(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    modality: str
    resolving_power: float = Field(gt=0)
    arms: list[ArmResolution] | None = Field(None, description="per arm: wavelength range (A) and resolving power, in increasing order")
    snr_band: tuple[float, float]
    snr_values: list[float] = Field(min_length=1)
    wavelength_start: float = Field(gt=0, description="first wavelength (A) of the native grid the arrays refer to")
    log_step: float | None = Field(None, gt=0, description="log10 step of that grid (a log-linear grid)")
    wavelength_step: float | None = Field(None, gt=0, description="step (A) of that grid (a linear grid); give this or log_step")
    throughput: list[float] | None = None
    mask_runs: list[list[tuple[int, int]]] | None = Field(None, description="per real spectrum: (first pixel, length) of each masked run on the native grid")
    correction: ResidualCorrection | None = Field(None, description="empirical correction of the emulator learned from real spectra (specclip_sim.correction)")
    parts_file: str | None = Field(None, description="name of a .npz file next to the calibration with the parts drawn from real spectra (specclip_sim.empirical)")
    parts_sha256: str | None = Field(None, description="SHA-256 of parts_file")
    measured: dict[str, Any] = Field(default_factory=dict)
    _folder: Path | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _check(self) -> Calibration:
        if (self.log_step is None) == (self.wavelength_step is None):
            raise ValueError("give exactly one of log_step (log-linear grid) and wavelength_step (linear grid)")
        if not all(np.isfinite(v) and v > 0 for v in self.snr_values):
            raise ValueError("snr_values must be finite and positive")
        if self.throughput is not None and not all(np.isfinite(v) and v > 0 for v in self.throughput):
            raise ValueError("throughput must be finite and positive")
        if (self.parts_file is None) != (self.parts_sha256 is None):
            raise ValueError("give both parts_file and parts_sha256, or neither")
        return self

    def parts(self, folder: str | Path | None = None) -> EmpiricalParts | None:
        """The parts in ``parts_file`` (in ``folder``, default the folder the calibration was loaded
        from), after checking its SHA-256; None when the calibration names no parts file."""
        if self.parts_file is None:
            return None
        folder = Path(folder) if folder is not None else self._folder
        if folder is None:
            raise SpecCLIPError(f"calibration of {self.modality!r} names parts file {self.parts_file!r} but was not loaded from a file: give its folder")
        return load_parts(folder / self.parts_file, self.parts_sha256)

    def native_wavelength(self, n_pixels: int) -> np.ndarray:
        if self.wavelength_step is not None:
            return self.wavelength_start + self.wavelength_step * np.arange(n_pixels)
        return 10.0 ** (np.log10(self.wavelength_start) + self.log_step * np.arange(n_pixels))

    def pixel_offset(self, wavelength: np.ndarray) -> int:
        """Index on ``wavelength`` (same step assumed) of the calibration grid's first pixel."""
        if self.wavelength_step is not None:
            return int(round((self.wavelength_start - float(wavelength[0])) / self.wavelength_step))
        return int(round((np.log10(self.wavelength_start) - np.log10(float(wavelength[0]))) / self.log_step))

    def throughput_on(self, wavelength: np.ndarray) -> np.ndarray | None:
        """The throughput interpolated onto ``wavelength``; None when absent."""
        if self.throughput is None:
            return None
        grid = self.native_wavelength(len(self.throughput))
        return np.interp(np.asarray(wavelength, dtype=np.float64), grid, np.asarray(self.throughput))

    def save(self, path: str | Path) -> None:
        """One top-level key per line, values compact."""
        items = [f"{json.dumps(k)}: {json.dumps(v, separators=(',', ':'))}" for k, v in self.model_dump(mode="json").items()]
        Path(path).write_text("{\n" + ",\n".join(items) + "\n}\n")


def calibration_path(modality: str) -> Path | None:
    """The calibration file the plugin of ``modality`` (a registered name or alias) names in its
    instrument description; None when it names none."""
    spec = get_modality(modality)
    named = spec.instrument.calibration if spec.instrument is not None else None
    return Path(named) if named else None


def load_calibration(modality: str) -> Calibration | None:
    """The calibration of ``modality`` (a registered name or alias): the file its plugin names in
    ``Instrument.calibration``; None when it names none."""
    path = calibration_path(modality)
    if path is None:
        return None
    name = get_modality(modality).name
    if not path.is_file():
        raise SpecCLIPError(f"modality {name!r}: its instrument's calibration file {path} does not exist")
    return read_calibration(path, name)


def read_calibration(path: str | Path, modality: str | None = None) -> Calibration:
    """The calibration in the file ``path`` (its parts file is looked for next to it)."""
    path = Path(path)
    try:
        calibration = Calibration.model_validate_json(path.read_text())
    except (ValidationError, OSError) as error:
        raise SpecCLIPError(f"{path}: not a specclip-sim calibration{f' of {modality!r}' if modality else ''}: {error}") from None
    calibration._folder = path.parent
    return calibration


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_parts(path: str | Path, sha256: str | None) -> EmpiricalParts:
    """Read a parts file (numpy .npz, no pickles), checking its SHA-256 when given; each part is
    present when all its arrays are (PARTS_KEYS)."""
    path = Path(path)
    if not path.is_file():
        raise SpecCLIPError(f"calibration parts file {path} does not exist")
    if sha256 is not None and file_sha256(path) != sha256:
        raise SpecCLIPError(f"calibration parts file {path}: SHA-256 {file_sha256(path)} is not the calibration's {sha256} (file changed or corrupted)")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (ValueError, OSError) as error:
        raise SpecCLIPError(f"calibration parts file {path}: not a numpy .npz without pickles ({error})") from None
    present = {part: all(k in arrays for k in keys) for part, keys in PARTS_KEYS.items()}
    for part, keys in PARTS_KEYS.items():
        partial = [k for k in keys if k in arrays]
        if partial and not present[part]:
            raise SpecCLIPError(f"calibration parts file {path}: part {part!r} needs arrays {list(keys)}, has only {partial}")
    try:
        return EmpiricalParts(
            noise=CorrelatedNoise(arrays["noise_scale"], arrays["noise_kernel"]) if present["noise"] else None,
            sky=SkyResiduals(arrays["sky_pixels"], arrays["sky_templates"], arrays["sky_snr"]) if present["sky"] else None,
            flux_shapes=FluxShapes(tuple(arrays["shape_range"]), arrays["shape_coefficients"], arrays["shape_teff"]) if present["flux_shapes"] else None,
            variety=ResidualVariety(*arrays["variety_grid"], arrays["variety_components"], arrays["variety_scores"], arrays["variety_labels"]) if present["variety"] else None,
            background=BackgroundNoise(*(arrays[k] for k in PARTS_KEYS["background"])) if present["background"] else None,
        )
    except ValueError as error:
        raise SpecCLIPError(f"calibration parts file {path}: {error}") from None
