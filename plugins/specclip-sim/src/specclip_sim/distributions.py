"""The random parts of an observation: radial velocity, flux-calibration error, bad pixels, S/N.

Defaults and where they come from (see the README for the measurements):

- radial velocity: a two-Gaussian mixture fitted (scikit-learn ``GaussianMixture``) to c*z of the
  2,224 LAMOST DR10 spectra in ``shared/data/lamost-dr10/labels.csv``: 72% N(0, 34 km/s) for the
  disc and 28% N(-10, 91 km/s), the broad component carrying the thick-disc and halo tail;
- flux calibration: a smooth multiplicative error exp(sum_k a_k P_k(u)), Legendre P_1..P_3 in
  u = scaled log(lambda) over the grid, a_k Gaussian, with an expected rms of the log error of 5%
  (a choice, of the order of the few-to-10% relative calibration errors quoted for survey spectra);
- bad pixels: runs of masked pixels whose number per spectrum is negative-binomial (mean 8.3,
  shape 0.38) and whose lengths are 5 + (geometric - 1) pixels (mean 7.9), at uniform positions;
  measured on the ivar == 0 runs of the same 2,224 LAMOST DR10 spectra;
- S/N: drawn with replacement from an empirical list of values (e.g. LAMOST DR10 S/N(g)).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from numpy.polynomial import legendre
from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RadialVelocityMixture(_Settings):
    """A Gaussian mixture of heliocentric radial velocities (km/s)."""

    weights: tuple[float, ...] = (0.72, 0.28)
    means: tuple[float, ...] = (0.0, -10.0)
    sigmas: tuple[float, ...] = (34.0, 91.0)

    @model_validator(mode="after")
    def _check(self) -> RadialVelocityMixture:
        if not len(self.weights) == len(self.means) == len(self.sigmas) or abs(sum(self.weights) - 1) > 1e-6:
            raise ValueError("weights, means and sigmas need one entry per component and weights must sum to 1")
        return self

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        component = rng.choice(len(self.weights), size=n, p=self.weights)
        return np.asarray(self.means)[component] + np.asarray(self.sigmas)[component] * rng.standard_normal(n)


class FluxCalibrationError(_Settings):
    """A smooth multiplicative error: exp of a Legendre series in scaled log(lambda)."""

    rms: float = Field(0.05, ge=0, description="expected rms over the grid of the log of the error")
    degree: int = Field(3, ge=1)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Coefficients (n, degree) of P_1..P_degree."""
        sigma = self.rms / np.sqrt(sum(1.0 / (2 * k + 1) for k in range(1, self.degree + 1)))
        return sigma * rng.standard_normal((n, self.degree))

    def basis(self, wavelength: np.ndarray) -> np.ndarray:
        """P_1..P_degree (pixels, degree) on the grid, u = log(lambda) scaled to [-1, 1]."""
        x = np.log(wavelength)
        u = 2.0 * (x - x[0]) / (x[-1] - x[0]) - 1.0
        return legendre.legvander(u, self.degree)[:, 1:]


class MaskRuns(_Settings):
    """Runs of bad pixels at uniform positions (masked, ivar 0)."""

    mean_runs: float = Field(8.3, ge=0, description="mean number of runs per spectrum of reference_pixels pixels")
    reference_pixels: int = Field(3909, ge=1, description="pixels of the spectra mean_runs was measured on (LAMOST DR10); a grid of another size gets proportionally many runs")
    shape: float = Field(0.38, gt=0, description="negative-binomial shape of that number (small = clumpy)")
    min_length: int = Field(5, ge=1)
    mean_length: float = Field(7.9, ge=1)

    @model_validator(mode="after")
    def _check(self) -> MaskRuns:
        if self.mean_length < self.min_length:
            raise ValueError("mean_length must be at least min_length")
        return self

    def sample(self, rng: np.random.Generator, n: int, pixels: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Runs as (spectrum index, first pixel, length) arrays."""
        mean = self.mean_runs * pixels / self.reference_pixels  # the same masked fraction on any grid
        counts = rng.negative_binomial(self.shape, self.shape / (self.shape + mean), size=n)
        total = int(counts.sum())
        star = np.repeat(np.arange(n), counts)
        start = rng.integers(0, pixels, size=total)
        length = self.min_length - 1 + rng.geometric(1.0 / (1.0 + self.mean_length - self.min_length), size=total)
        return star, start, length


def runs_to_mask(star: np.ndarray, start: np.ndarray, length: np.ndarray, n: int, pixels: int) -> np.ndarray:
    """Boolean mask (n, pixels) with the given runs set."""
    edges = np.zeros((n, pixels + 1), dtype=np.int32)
    np.add.at(edges, (star, start), 1)
    np.add.at(edges, (star, np.minimum(start + length, pixels)), -1)
    return np.cumsum(edges[:, :-1], axis=1) > 0


def load_snr_values(path: str | Path, column: str = "snrg") -> np.ndarray:
    """The finite, positive values of ``column`` in a CSV file: an empirical S/N distribution."""
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or column not in reader.fieldnames:
            raise ValueError(f"{path}: no column {column!r} (columns: {reader.fieldnames})")
        values = np.array([float(row[column]) if row[column].strip() else np.nan for row in reader])
    values = values[np.isfinite(values) & (values > 0)]
    if len(values) == 0:
        raise ValueError(f"{path}: column {column!r} has no finite positive value")
    return values
