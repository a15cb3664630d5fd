"""Cannon models as plain arrays: flux per pixel is a polynomial in the scaled labels.

For labels ``l`` the scaled labels are ``s = (l - fiducials) / scales`` and the design vector has one
entry per polynomial term, ``prod_k s_k ** exponents[t, k]`` (the constant term first). The flux of
every pixel is then ``design @ theta`` with ``theta`` of shape (terms, pixels). A continuum model is
the same kind of polynomial for ``log10`` of the continuum, on its own coarser grid.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors import safe_open


@dataclass(frozen=True)
class LabelPolynomial:
    """Per-pixel polynomials in scaled labels: ``theta`` (terms, pixels) on ``wavelength`` (air, A)."""

    wavelength: np.ndarray
    theta: np.ndarray
    exponents: np.ndarray
    fiducials: np.ndarray
    scales: np.ndarray

    def design(self, labels: np.ndarray) -> np.ndarray:
        """Design matrix (N, terms) of labels (N, K) in physical units."""
        scaled = (np.atleast_2d(np.asarray(labels, dtype=np.float64)) - self.fiducials) / self.scales
        return np.prod(scaled[:, None, :] ** self.exponents[None, :, :], axis=2)

    def __call__(self, labels: np.ndarray) -> np.ndarray:
        """The polynomial's value at every pixel, (N, pixels), in float64."""
        return self.design(labels) @ self.theta.astype(np.float64)


@dataclass(frozen=True)
class CannonModel:
    """One Cannon model: normalised flux, log10 continuum, label ranges and training-grid coverage."""

    name: str
    label_names: tuple[str, ...]
    flux: LabelPolynomial
    log_continuum: LabelPolynomial
    training_labels: np.ndarray
    scatter: np.ndarray

    @property
    def ranges(self) -> np.ndarray:
        """(K, 2) min and max of the training labels per label (thedoppler's model ranges)."""
        return np.stack([self.training_labels.min(0), self.training_labels.max(0)], axis=1).astype(np.float64)

    def continuum(self, labels: np.ndarray) -> np.ndarray:
        """Continuum flux (N, continuum pixels) on ``log_continuum.wavelength``, arbitrary units."""
        return 10.0 ** self.log_continuum(labels)

    def covered(self, labels: np.ndarray) -> np.ndarray:
        """True where labels (N, K) lie in a cell of the training grid whose corners all have spectra.

        The training sets are grids with missing corners (e.g. no cool-model spectra with Teff >=
        6000 K and logg < 3.5), so being inside :attr:`ranges` does not mean being interpolated.
        """
        labels = np.atleast_2d(labels)
        nodes = [np.unique(self.training_labels[:, k]) for k in range(labels.shape[1])]
        occupied = np.zeros([len(n) for n in nodes], dtype=bool)
        occupied[tuple(np.searchsorted(n, self.training_labels[:, k]) for k, n in enumerate(nodes))] = True
        bounds = []
        for k, n in enumerate(nodes):
            lo = np.clip(np.searchsorted(n, labels[:, k], side="right") - 1, 0, len(n) - 1)
            hi = np.clip(np.searchsorted(n, labels[:, k], side="left"), 0, len(n) - 1)
            bounds.append((lo, hi))
        ok = np.ones(len(labels), dtype=bool)
        for corner in np.ndindex(*([2] * labels.shape[1])):
            ok &= occupied[tuple(bounds[k][c] for k, c in enumerate(corner))]
        return ok


def _polynomial(handle, prefix: str) -> LabelPolynomial:
    return LabelPolynomial(
        wavelength=handle.get_tensor(f"{prefix}wavelength"),
        theta=handle.get_tensor(f"{prefix}theta"),
        exponents=handle.get_tensor(f"{prefix}exponents"),
        fiducials=handle.get_tensor(f"{prefix}fiducials"),
        scales=handle.get_tensor(f"{prefix}scales"),
    )


def read_models(path: str | Path) -> tuple[dict[str, str], list[CannonModel]]:
    """The file's metadata and its Cannon models, in the order the file lists them."""
    with safe_open(str(path), framework="numpy") as handle:
        meta = handle.metadata() or {}
        label_names = tuple(json.loads(meta["label_names"]))
        models = [
            CannonModel(
                name=name,
                label_names=label_names,
                flux=_polynomial(handle, f"{name}/"),
                log_continuum=_polynomial(handle, f"{name}/continuum/"),
                training_labels=handle.get_tensor(f"{name}/training_labels"),
                scatter=handle.get_tensor(f"{name}/scatter"),
            )
            for name in json.loads(meta["models"])
        ]
    return meta, models
