"""The spectrum emulator: thedoppler's Cannon models, a model chosen per star by Teff, and fast
evaluation at an instrument's resolution on its grid.

Model choice and label limits (documented policy): the model is chosen by Teff alone (with
thedoppler's two models, ``coolstars`` below 8000 K and ``hotdwarfs`` from 8000 K up); labels
outside the chosen model's range are clipped into it and the star is flagged ``clipped``. So a
label set outside every model's range is clipped to the nearest model by Teff (for example a hot
star with logg < 2.5 gets the hot model at logg 2.5; a 3000 K dwarf the cool model at 3500 K).
Pass ``outside="raise"`` to reject such stars instead. Separately, ``covered`` is False where the
(clipped) labels fall in a cell of the training grid with a missing corner, i.e. where the Cannon
polynomial extrapolates (the grids lack, e.g., cool-model spectra at Teff >= 6000 K, logg < 3.5).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from threadpoolctl import threadpool_limits

from specclip_sim.cannon import CannonModel, read_models
from specclip_sim.lsf import ArmResolution, convolve_arms, convolve_coefficients
from specclip_sim.wavelength import doppler_factor, vacuum_to_air

Outside = Literal["clip", "raise"]


@dataclass(frozen=True)
class Assignment:
    """Which model each star uses (index into ``Emulator.models``), the labels used after clipping,
    whether they were clipped, and whether they lie inside the training grid's coverage."""

    model: np.ndarray
    labels: np.ndarray
    clipped: np.ndarray
    covered: np.ndarray


class Emulator:
    """Cannon models ordered by their lowest Teff; labels are (teff [K], logg [dex], [Fe/H] [dex])."""

    def __init__(self, models: Sequence[CannonModel], metadata: dict[str, str] | None = None):
        self.models = sorted(models, key=lambda m: m.ranges[0, 0])
        self.metadata = dict(metadata or {})
        self.label_names = self.models[0].label_names

    @classmethod
    def load(cls, download: bool = True, progress: bool = True) -> Emulator:
        """The converted thedoppler models from the cache (fetched and converted the first time)."""
        from specclip_sim.source import ensure_model_file

        metadata, models = read_models(ensure_model_file(download=download, progress=progress))
        return cls(models, metadata)

    def assign(self, labels: np.ndarray, outside: Outside = "clip") -> Assignment:
        """Choose a model per star by Teff and clip the labels (N, 3) into its range."""
        labels = np.atleast_2d(np.asarray(labels, dtype=np.float64))
        if labels.ndim != 2 or labels.shape[1] != len(self.label_names):
            raise ValueError(f"labels must have shape (N, {len(self.label_names)}) for {self.label_names}, got {labels.shape}")
        bad = ~np.isfinite(labels).all(axis=1)
        if bad.any():
            raise ValueError(f"{bad.sum()} label set(s) have non-finite values, the first at row {np.flatnonzero(bad)[0]}")
        starts = np.array([m.ranges[0, 0] for m in self.models[1:]])
        index = np.searchsorted(starts, labels[:, 0], side="right")
        used = labels.copy()
        covered = np.zeros(len(labels), dtype=bool)
        for i, model in enumerate(self.models):
            rows = index == i
            used[rows] = np.clip(labels[rows], model.ranges[:, 0], model.ranges[:, 1])
            covered[rows] = model.covered(used[rows])
        clipped = (used != labels).any(axis=1)
        if outside == "raise" and clipped.any():
            first = np.flatnonzero(clipped)[0]
            raise ValueError(
                f"{clipped.sum()} label set(s) lie outside the emulator's range, e.g. row {first}: "
                f"{dict(zip(self.label_names, labels[first]))} (model {self.models[index[first]].name!r} "
                f"covers {dict(zip(self.label_names, self.models[index[first]].ranges.tolist()))})"
            )
        return Assignment(index, used, clipped, covered)

    def flux(self, labels: np.ndarray, outside: Outside = "clip") -> tuple[np.ndarray, Assignment]:
        """Normalised flux (N, pixels) on the models' own 0.1 A air grid, before any convolution.

        thedoppler additionally caps this flux at 1 when it returns a spectrum; this does not.
        """
        assignment = self.assign(labels, outside)
        out = np.empty((len(assignment.labels), len(self.models[0].flux.wavelength)))
        for i, model in enumerate(self.models):
            rows = assignment.model == i
            if rows.any():
                out[rows] = model.flux(assignment.labels[rows])
        return out, assignment

    def at_resolution(
        self,
        resolving_power: float | Sequence[ArmResolution],
        wavelength: np.ndarray,
        vacuum: bool = True,
        max_velocity: float = 1000.0,
        oversample: int = 40,
    ) -> ConvolvedEmulator:
        """The emulator convolved to resolving power R and sampled for the grid ``wavelength`` (A).

        ``resolving_power``: one R for the whole grid, or one per arm (:class:`~specclip_sim.lsf.ArmResolution`,
        ranges in the grid's wavelengths; the arms are placed at rest wavelengths, i.e. a star's
        radial velocity does not move the arm boundaries, a shift of at most |rv| / c).
        ``vacuum``: whether ``wavelength`` is in vacuum (the models are in air). The convolved
        coefficients are kept on a grid uniform in log10(lambda), ``oversample`` times finer than
        the target grid's finest step, with a margin for radial velocities up to ``max_velocity``
        km/s; a star's spectrum is then read off it by linear interpolation at its shifted pixels.
        """
        wavelength = np.asarray(wavelength, dtype=np.float64)
        rest_x = np.log10(vacuum_to_air(wavelength) if vacuum else wavelength)
        if np.any(np.diff(rest_x) <= 0):
            raise ValueError("the target wavelength grid must increase")
        margin = float(np.log10(doppler_factor(max_velocity)))
        step = float(np.min(np.diff(rest_x))) / oversample
        x0 = rest_x[0] - margin - 2 * step
        n = int(np.ceil((rest_x[-1] + margin + 2 * step - x0) / step)) + 1
        if isinstance(resolving_power, (int, float)):
            resolving_power = float(resolving_power)
            flux = [convolve_coefficients(m.flux.wavelength, m.flux.theta, resolving_power, x0, step, n).astype(np.float32) for m in self.models]
        else:
            resolving_power = tuple(resolving_power)
            edges = np.log10(np.array([[a.start, a.stop] for a in resolving_power], dtype=np.float64))
            if vacuum:
                edges = np.log10(vacuum_to_air(10.0**edges))
            arms = [(lo, hi, a.resolving_power) for (lo, hi), a in zip(edges, resolving_power, strict=True)]
            flux = [convolve_arms(m.flux.wavelength, m.flux.theta, arms, x0, step, n).astype(np.float32) for m in self.models]
        cont_x = np.log10(self.models[0].log_continuum.wavelength)
        cont_step = float(np.median(np.diff(cont_x)))
        xc = np.arange(x0 - 2 * cont_step, x0 + n * step + 2 * cont_step, cont_step)
        log_cont = [
            np.stack([np.interp(xc, np.log10(m.log_continuum.wavelength), row) for row in m.log_continuum.theta]).astype(np.float32)
            for m in self.models
        ]
        return ConvolvedEmulator(
            self, resolving_power, wavelength, float(max_velocity),
            _Grid(rest_x, x0, step), flux, _Grid(rest_x, xc[0], cont_step), log_cont,
        )


@dataclass(frozen=True)
class Emulated:
    """Emulator output on the target grid: continuum-normalised flux, the continuum (model units),
    and the model assignment."""

    flux: np.ndarray
    continuum: np.ndarray
    assignment: Assignment


class _Grid:
    """Target pixels ``rest_x`` located on a uniform grid ``x0 + k * step``: integer part ``a`` and
    fraction ``r`` of each pixel's index on it."""

    def __init__(self, rest_x: np.ndarray, x0: float, step: float):
        q = (rest_x - x0) / step
        self.a = np.floor(q).astype(np.int64)
        self.r = q - self.a
        self.step = step

    def sample(self, design: np.ndarray, theta: np.ndarray, shift: np.ndarray, chunk: int = 256) -> np.ndarray:
        """``design @ theta`` read at the target pixels moved by ``-shift`` (in x), for each row of
        ``design``, by linear interpolation. Stars are grouped by the integer part of their shift so
        that only three columns of ``theta`` per pixel enter each product."""
        steps = shift / self.step
        whole = np.floor(steps).astype(np.int64)
        frac = (steps - whole)[:, None]
        out = np.empty((len(design), len(self.a)), dtype=theta.dtype)
        with threadpool_limits(1, user_api="blas"):  # these products are small: threads cost more than they give
            for k in np.unique(whole):
                group = np.flatnonzero(whole == k)
                near = theta[:, np.concatenate([self.a - k - 1, self.a - k, self.a - k + 1])]
                for start in range(0, len(group), chunk):
                    rows = group[start : start + chunk]
                    below, at, above = np.split(design[rows].astype(theta.dtype) @ near, 3, axis=1)
                    # pixel position a + r - frac lies between a-1 and a if r < frac, else between a and a+1
                    offset = (self.r[None, :] - frac[rows]).astype(theta.dtype)
                    out[rows] = at + offset * np.where(offset < 0, at - below, above - at)
        return out

@dataclass(frozen=True)
class ConvolvedEmulator:
    """An :class:`Emulator` at one resolution (or one per arm), for one target grid; see :meth:`Emulator.at_resolution`."""

    emulator: Emulator
    resolving_power: float | tuple[ArmResolution, ...]
    wavelength: np.ndarray
    max_velocity: float
    flux_grid: _Grid
    flux_theta: list[np.ndarray]
    continuum_grid: _Grid
    log_continuum_theta: list[np.ndarray]

    def __call__(self, labels: np.ndarray, rv: np.ndarray | None = None, outside: Outside = "clip") -> Emulated:
        """Spectra for labels (N, 3) at radial velocities ``rv`` (km/s; default 0) on the target grid."""
        assignment = self.emulator.assign(labels, outside)
        n = len(assignment.labels)
        rv = np.zeros(n) if rv is None else np.broadcast_to(np.asarray(rv, dtype=np.float64), (n,))
        if not np.all(np.abs(rv) <= self.max_velocity):
            raise ValueError(f"rv must be finite and |rv| at most {self.max_velocity} km/s (raise max_velocity in at_resolution)")
        shift = np.log10(doppler_factor(rv))
        flux = np.empty((n, len(self.wavelength)), dtype=np.float32)
        continuum = np.empty_like(flux)
        for i, model in enumerate(self.emulator.models):
            rows = np.flatnonzero(assignment.model == i)
            if len(rows) == 0:
                continue
            labels_i = assignment.labels[rows]
            flux[rows] = self.flux_grid.sample(model.flux.design(labels_i), self.flux_theta[i], shift[rows])
            log_cont = self.continuum_grid.sample(model.log_continuum.design(labels_i), self.log_continuum_theta[i], shift[rows])
            continuum[rows] = 10.0**log_cont
        return Emulated(flux, continuum, assignment)
