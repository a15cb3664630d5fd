"""An empirical correction of the emulator, learned from real spectra of an instrument.

The emulator's line strengths differ from real stars' (its synthetic grid's line list and physics;
the Cannon's own error). Where real spectra with labels exist, the mean difference between real and
simulated *preprocessed* spectra can be learned as a function of the labels, Cannon style: per pixel
a polynomial in scaled labels (log10 Teff, logg, [Fe/H]), fitted by weighted least squares (inverse
variance of both spectra, masked pixels excluded) with a small ridge term. The simulator then adds
``design(labels) @ theta`` to the emulated continuum-normalised flux (before continuum, extinction,
calibration error and noise), over the wavelength range it was learned on (its edge values tapered
to zero just beyond it); labels are clamped into the range of the real stars it was learned from, so it does not
extrapolate a polynomial beyond them (it is constant there instead).

It is data-driven: a correction learned from LAMOST stars with LAMOST pipeline labels carries their
label scale and their population (for DR10: A, F, G stars, few giants); report it as such.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field


def exponents_up_to(degree: int, n_labels: int = 3) -> np.ndarray:
    """All monomial exponents of total degree <= ``degree`` (the constant first)."""
    terms = [e for e in itertools.product(range(degree + 1), repeat=n_labels) if sum(e) <= degree]
    return np.array(sorted(terms, key=lambda e: (sum(e), [-x for x in e])), dtype=np.int64)


class ResidualCorrection(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    wavelength_start: float = Field(gt=0, description="first wavelength (A) of the grid theta lives on")
    log_step: float = Field(gt=0)
    exponents: list[list[int]]
    fiducials: list[float] = Field(description="of (log10 Teff, logg, [Fe/H])")
    scales: list[float]
    label_min: list[float] = Field(description="labels (Teff, logg, [Fe/H]) are clamped into [label_min, label_max]")
    label_max: list[float]
    theta: list[list[float]] = Field(description="terms x pixels: the additive correction of the normalised flux")
    taper_pixels: int = Field(20, ge=0, description="beyond the learned range, the edge values fall linearly to zero over this many pixels")
    measured: dict[str, Any] = Field(default_factory=dict)

    @property
    def n_pixels(self) -> int:
        return len(self.theta[0])

    def design(self, labels: np.ndarray) -> np.ndarray:
        """Design matrix (N, terms) of labels (N, 3) = (Teff, logg, [Fe/H]), clamped into the learned range."""
        labels = np.clip(np.atleast_2d(np.asarray(labels, dtype=np.float64)), self.label_min, self.label_max)
        x = np.column_stack([np.log10(labels[:, 0]), labels[:, 1], labels[:, 2]])
        scaled = (x - np.asarray(self.fiducials)) / np.asarray(self.scales)
        return np.prod(scaled[:, None, :] ** np.asarray(self.exponents)[None, :, :], axis=2)

    def on_grid(self, wavelength: np.ndarray) -> np.ndarray:
        """theta (terms, L) interpolated onto ``wavelength``: in full over the learned range, its edge
        values tapered linearly to zero over ``taper_pixels`` beyond it, zero further out."""
        wavelength = np.asarray(wavelength, dtype=np.float64)
        position = (np.log10(wavelength) - np.log10(self.wavelength_start)) / self.log_step
        position = np.round(position, 6)  # a pixel of the learned grid is on it, whatever the rounding
        last = self.n_pixels - 1
        index = np.arange(self.n_pixels)
        theta = np.asarray(self.theta, dtype=np.float64)
        out = np.stack([np.interp(np.clip(position, 0, last), index, row) for row in theta])
        beyond = np.maximum(np.maximum(-position, position - last), 0.0)
        weight = (beyond == 0) if self.taper_pixels == 0 else np.clip(1.0 - beyond / self.taper_pixels, 0.0, 1.0)
        return out * weight


def fit_correction(
    real_flux: np.ndarray,
    real_ivar: np.ndarray,
    simulated_flux: np.ndarray,
    simulated_ivar: np.ndarray,
    usable: np.ndarray,
    labels: np.ndarray,
    wavelength_start: float,
    log_step: float,
    degree: int = 3,
    ridge: float = 1e-2,
    measured: dict[str, Any] | None = None,
) -> ResidualCorrection:
    """Least-squares fit, per pixel, of real - simulated (N, L) preprocessed flux on the label design;
    weights 1 / (var_real + var_sim) where ``usable``, else 0."""
    labels = np.asarray(labels, dtype=np.float64)
    x = np.column_stack([np.log10(labels[:, 0]), labels[:, 1], labels[:, 2]])
    fiducials = np.median(x, axis=0)
    scales = np.ptp(np.percentile(x, [2.5, 97.5], axis=0), axis=0)
    scales = np.where(scales > 0, scales, 1.0)
    exponents = exponents_up_to(degree)
    correction = ResidualCorrection(
        wavelength_start=wavelength_start, log_step=log_step, exponents=exponents.tolist(), fiducials=fiducials.tolist(),
        scales=scales.tolist(), label_min=labels.min(axis=0).tolist(), label_max=labels.max(axis=0).tolist(),
        theta=[[0.0]], measured=dict(measured or {}),
    )
    design = correction.design(labels)
    with np.errstate(divide="ignore"):
        weight = np.where(usable, 1.0 / (1.0 / real_ivar + 1.0 / simulated_ivar), 0.0)
    difference = np.where(usable, real_flux - simulated_flux, 0.0).astype(np.float64)
    normal = np.einsum("nt,np,nu->ptu", design, weight, design)  # (L, terms, terms)
    normal += ridge * np.trace(normal, axis1=1, axis2=2)[:, None, None] / design.shape[1] * np.eye(design.shape[1])
    rhs = np.einsum("nt,np->pt", design, weight * difference)
    theta = np.linalg.solve(normal, rhs[..., None])[..., 0].T  # (terms, L)
    return correction.model_copy(update={"theta": [[float(f"{v:.5g}") for v in row] for row in theta]})
