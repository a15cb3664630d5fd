"""Simulated observations of stars with given labels by any instrument (resolving power + grid).

For each star: the emulator's normalised spectrum at the instrument's resolution, Doppler shifted by
its radial velocity, times its continuum (the emulator's continuum model), times the extinction of
its A_K, times a smooth flux-calibration error, scaled to a median of 1 in the S/N band; then Gaussian
noise (:mod:`specclip_sim.noise`: photon-like plus a background pedestal, shaped by the instrument's
relative throughput if given) scaled so that the median per-pixel S/N in the S/N band is the star's
drawn S/N; then runs of masked pixels (ivar 0). ``ivar`` is 1 / variance of the noiseless flux.
Every output is simulated and its meta says so.

Reproducibility: one seed gives bit-for-bit the same spectra for the same inputs, settings and batch
size (random numbers come from independent streams per purpose; stars are processed in batches
ordered by radial velocity, which keeps the emulator's products large).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from specclip_core.api import Instrument, Spectra
from specclip_sim.correction import ResidualCorrection
from specclip_sim.distributions import FluxCalibrationError, MaskRuns, RadialVelocityMixture, runs_to_mask
from specclip_sim.empirical import BackgroundNoise, CorrelatedNoise, FluxShapes, ResidualVariety, SkyResiduals
from specclip_sim.emulator import Emulator, Outside
from specclip_sim.extinction import a_lambda_over_a_k, transmission
from specclip_sim.lsf import ArmResolution
from specclip_sim.noise import variance as noise_variance

REQUIRED = ("teff", "logg", "feh", "a_k")


class SimulationSettings(BaseModel):
    """How observations are simulated; the defaults are documented in :mod:`specclip_sim.distributions`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rv: RadialVelocityMixture = RadialVelocityMixture()
    flux_calibration: FluxCalibrationError = FluxCalibrationError()
    masks: MaskRuns = MaskRuns()
    snr_band: tuple[float, float] | None = Field(None, description="wavelength range (A) where the median S/N per pixel is the drawn S/N; None: the whole grid")
    background_fraction: float = Field(0.1, gt=0, description="noise pedestal b, as a fraction of the median flux in the S/N band (> 0 keeps ivar finite at zero flux)")
    r_v: float = Field(3.1, description="R_V of the G23 extinction law")
    max_a_k: float = Field(
        5.0, gt=0, description="larger A_K (mag) is applied as this (recorded in meta a_k_applied): beyond it an optical "
        "spectrum spans over 20 orders of magnitude (float32 overflows) and its blue end receives no light at all",
    )
    vacuum: bool = Field(True, description="the instrument's wavelengths are in vacuum (the emulator's are in air)")
    max_velocity: float = Field(1000.0, gt=0, description="largest |rv| (km/s) the simulator accepts")
    outside: Outside = Field("clip", description="labels beyond the emulator: clip into the nearest model and flag, or raise")
    batch_size: int = Field(2048, ge=1)


class InstrumentSimulator:
    """Simulates observations with one instrument; build once, call :meth:`simulate` many times.

    ``throughput``: the instrument's relative throughput on its native grid (see
    :func:`specclip_sim.noise.relative_throughput`); None for a flat one.
    ``mask_runs``: a library of real masked-pixel patterns, one (k, 2) array of (first pixel, length)
    per real spectrum, on the instrument's native grid; each simulated spectrum then gets the runs of
    one pattern drawn at random (instead of ``settings.masks``' uniformly placed runs).
    ``correction``: an empirical correction of the emulated normalised flux learned from real spectra
    (:mod:`specclip_sim.correction`), added before the continuum; meta ``corrected`` says so.
    ``arms``: one resolving power per arm of the instrument (instead of ``instrument.resolving_power``
    everywhere); meta ``resolving_power_<arm name in lower case>`` gives each arm's to the writer.
    ``noise``, ``sky``, ``flux_shapes``: parts drawn from real spectra (:mod:`specclip_sim.empirical`,
    on the instrument's grid): correlated noise with a per-pixel amplitude instead of white noise;
    real sky-residual windows in place of the noise there; real flux-calibration shapes instead of
    ``settings.flux_calibration``'s random ones; ``variety``: the star-to-star emulator error of a
    real star of similar labels, added like the correction; ``background``: the noise variance's
    source throughput and background (sky, read noise, sky lines) of a real spectrum of similar S/N,
    in place of ``throughput`` and ``settings.background_fraction``.
    """

    def __init__(
        self,
        instrument: Instrument,
        emulator: Emulator | None = None,
        settings: SimulationSettings | None = None,
        throughput: np.ndarray | None = None,
        mask_runs: Sequence[np.ndarray] | None = None,
        correction: ResidualCorrection | None = None,
        arms: Sequence[ArmResolution] | None = None,
        noise: CorrelatedNoise | None = None,
        sky: SkyResiduals | None = None,
        flux_shapes: FluxShapes | None = None,
        variety: ResidualVariety | None = None,
        background: BackgroundNoise | None = None,
    ):
        self.instrument = instrument
        self.arms = tuple(arms) if arms else None
        self.settings = settings or SimulationSettings()
        self.emulator = emulator or Emulator.load()
        wavelength = np.asarray(instrument.native_wavelength, dtype=np.float64)
        self.wavelength = wavelength
        self.convolved = self.emulator.at_resolution(
            self.arms or instrument.resolving_power, wavelength, vacuum=self.settings.vacuum, max_velocity=self.settings.max_velocity
        )
        self.extinction_ratio = a_lambda_over_a_k(wavelength, self.settings.r_v)
        self.calibration_basis = self.settings.flux_calibration.basis(wavelength)
        self.throughput = np.ones(len(wavelength)) if throughput is None else np.asarray(throughput, dtype=np.float64)
        if self.throughput.shape != wavelength.shape or not (self.throughput > 0).all():
            raise ValueError("throughput must be positive, one value per pixel of the instrument's grid")
        band = self.settings.snr_band
        self.in_band = np.ones(len(wavelength), bool) if band is None else (wavelength >= band[0]) & (wavelength <= band[1])
        if not self.in_band.any():
            raise ValueError(f"the S/N band {band} contains no pixel of the instrument's grid")
        if noise is not None and noise.scale.shape != wavelength.shape:
            raise ValueError(f"the noise scale has {noise.scale.shape[0]} pixels, the instrument's grid {len(wavelength)}")
        if sky is not None and len(sky.pixels) and (sky.pixels.min() < 0 or sky.pixels.max() >= len(wavelength)):
            raise ValueError("sky-residual pixels must lie on the instrument's grid")
        self.noise, self.sky, self.flux_shapes = noise, sky, flux_shapes
        self.shape_basis = None if flux_shapes is None else flux_shapes.basis(wavelength)
        if background is not None and background.throughput.shape != wavelength.shape:
            raise ValueError(f"the background noise has {background.throughput.shape[0]} pixels, the instrument's grid {len(wavelength)}")
        self.background = background
        self.variety = variety
        self.variety_components = None if variety is None else variety.on_grid(wavelength)
        self.correction = correction
        self.correction_theta = None if correction is None else correction.on_grid(wavelength).astype(np.float32)
        self.mask_library = None
        if mask_runs is not None:
            patterns = [np.asarray(p, dtype=np.int64).reshape(-1, 2) for p in mask_runs]
            if not patterns:
                raise ValueError("mask_runs must hold at least one pattern (an empty array is a pattern without masked pixels)")
            counts = np.array([len(p) for p in patterns])
            runs = np.concatenate(patterns) if counts.sum() else np.zeros((0, 2), np.int64)
            if len(runs) and (runs[:, 0].min() < 0 or runs[:, 0].max() >= len(wavelength) or runs[:, 1].min() < 1):
                raise ValueError("mask_runs must start on the instrument's grid and have positive lengths")
            self.mask_library = (counts, np.concatenate([[0], np.cumsum(counts)]), runs)

    def simulate(
        self,
        labels: Mapping[str, Sequence[float] | np.ndarray],
        ids: Sequence[str] | np.ndarray,
        snr_values: Sequence[float] | np.ndarray,
        seed: int,
    ) -> Spectra:
        """Simulated spectra of the stars described by ``labels`` on the instrument's native grid.

        ``labels`` needs columns teff (K), logg, feh (dex) and a_k (mag; values in [-1, 0) are set
        to 0, lower ones are refused as missing-value sentinels, values above ``settings.max_a_k``
        are applied as that); columns ``rv`` (km/s) and ``snr``, if given, are used instead of drawing radial
        velocities or S/N. Every column is copied into ``meta``. S/N values are otherwise drawn
        with replacement from ``snr_values``.
        """
        columns = {key: np.asarray(value).reshape(-1) for key, value in labels.items()}
        missing = [key for key in REQUIRED if key not in columns]
        if missing:
            raise ValueError(f"labels lack column(s) {missing}; required: {list(REQUIRED)}")
        ids = np.asarray(ids).astype(str).reshape(-1)
        n = len(ids)
        for key, column in columns.items():
            if len(column) != n:
                raise ValueError(f"label column {key!r} has {len(column)} rows, ids have {n}")
        a_k = columns["a_k"].astype(np.float64)
        invalid = ~np.isfinite(a_k) | (a_k < -1.0)  # below -1 mag is a missing-value sentinel (e.g. -9999), not noise
        if invalid.any():
            raise ValueError(f"{invalid.sum()} star(s) have a non-finite or sentinel a_k (< -1), e.g. {ids[invalid][0]!r}")
        snr_values = np.asarray(columns.get("snr", snr_values), dtype=np.float64)
        if snr_values.size == 0 or not (np.isfinite(snr_values) & (snr_values > 0)).all():
            raise ValueError("snr_values (or the snr column) must hold finite positive numbers")

        streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(9)]  # the first 8 as before the ninth
        rv_rng, snr_rng, calibration_rng, mask_rng, noise_rng, sky_rng, shape_rng, variety_rng, background_rng = streams
        settings = self.settings
        rv = columns["rv"].astype(np.float64) if "rv" in columns else settings.rv.sample(rv_rng, n)
        snr = columns["snr"].astype(np.float64) if "snr" in columns else snr_rng.choice(snr_values, size=n)
        if self.flux_shapes is None:
            calibration, calibration_basis = settings.flux_calibration.sample(calibration_rng, n), self.calibration_basis
        else:
            calibration, calibration_basis = self.flux_shapes.draw(shape_rng, columns["teff"]), self.shape_basis
        sky = None if self.sky is None else self.sky.draw(sky_rng, snr)
        background = None if self.background is None else self.background.draw(background_rng, snr)
        if self.mask_library is None:
            run_star, run_start, run_length = settings.masks.sample(mask_rng, n, len(self.wavelength))
        else:
            counts, offsets, runs = self.mask_library
            pattern = mask_rng.integers(len(counts), size=n)
            run_star = np.repeat(np.arange(n), counts[pattern])
            picked = np.concatenate([np.arange(offsets[p], offsets[p + 1]) for p in pattern]) if len(run_star) else np.zeros(0, np.int64)
            run_start, run_length = runs[picked, 0], runs[picked, 1]
        stellar = np.stack([columns["teff"], columns["logg"], columns["feh"]], axis=1).astype(np.float64)
        variety = None if self.variety is None else self.variety.draw(variety_rng, stellar)

        flux = np.empty((n, len(self.wavelength)), dtype=np.float32)
        ivar = np.empty_like(flux)
        mask = np.empty(flux.shape, dtype=bool)
        used = np.empty((n, 3))
        clipped, covered, capped = np.empty(n, bool), np.empty(n, bool), np.empty(n)
        model = np.empty(n, dtype=object)
        order = np.argsort(rv, kind="stable")  # batches of similar rv: fewer, larger products in the emulator
        position = np.full(n, -1)
        for lo in range(0, n, settings.batch_size):
            rows = order[lo : lo + settings.batch_size]
            emulated = self.convolved(stellar[rows], rv[rows], settings.outside)
            emulated_flux = emulated.flux
            if self.correction is not None:
                emulated_flux = emulated_flux + self.correction.design(stellar[rows]).astype(np.float32) @ self.correction_theta
            if variety is not None:
                emulated_flux = emulated_flux + variety[rows] @ self.variety_components
            normalised = np.clip(emulated_flux, 0.0, 1.0)
            capped[rows] = (normalised != emulated_flux).mean(axis=1)
            continuum = emulated.continuum / emulated.continuum.mean(axis=1, keepdims=True)
            clean = normalised * continuum * transmission(np.clip(a_k[rows], 0.0, settings.max_a_k), self.extinction_ratio)
            clean *= np.exp(calibration[rows] @ calibration_basis.T)
            # flux unit: median 1 in the S/N band (float64 until here, so heavy extinction neither
            # underflows the flux nor overflows the float32 ivar; the absolute scale is not simulated)
            clean /= np.median(clean[:, self.in_band], axis=1, keepdims=True)
            throughput, learned = (self.throughput, None) if background is None else (self.background.throughput, background[rows] @ self.background.profiles)
            variance = noise_variance(clean, snr[rows], self.in_band, settings.background_fraction, throughput, learned)
            noise = noise_rng.standard_normal(clean.shape, dtype=np.float32) if self.noise is None else self.noise.draw(noise_rng, len(rows))
            if sky is not None:
                noise[:, self.sky.pixels] = sky[rows]
            flux[rows] = clean + np.sqrt(variance) * noise
            position[rows] = np.arange(len(rows))
            in_batch = position[run_star] >= 0
            batch_mask = runs_to_mask(position[run_star[in_batch]], run_start[in_batch], run_length[in_batch], len(rows), len(self.wavelength))
            position[rows] = -1
            mask[rows] = batch_mask
            with np.errstate(divide="ignore"):
                ivar[rows] = np.where(batch_mask | (variance <= 0), 0.0, 1.0 / variance)
            assignment = emulated.assignment
            used[rows], clipped[rows], covered[rows] = assignment.labels, assignment.clipped, assignment.covered
            model[rows] = [self.emulator.models[i].name for i in assignment.model]

        meta = dict(columns)
        meta.update(
            rv=rv,
            snr=snr,
            teff_emulated=used[:, 0],
            logg_emulated=used[:, 1],
            feh_emulated=used[:, 2],
            a_k_applied=np.clip(a_k, 0.0, settings.max_a_k),
            clipped=clipped,
            covered=covered,
            capped_fraction=capped,
            emulator_model=model.astype(str),
            corrected=np.full(n, self.correction is not None),
            simulated=np.ones(n, dtype=bool),
        )
        for arm in self.arms or ():
            meta[f"resolving_power_{arm.name.lower()}"] = np.full(n, arm.resolving_power)
        return Spectra(self.wavelength, flux, ivar, mask, ids, meta)
