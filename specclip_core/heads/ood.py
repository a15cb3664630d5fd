"""Out-of-distribution flags of a trained head, with thresholds from its own training set.

The heads stage saves an :class:`OODReference` beside the head (``head/ood.json`` and
``head/ood.safetensors``); ``predict`` scores every spectrum with it:

- ``ood_knn_pct``: the mean Euclidean distance of the head's input (embedding, or spectrum vector) to
  its ``k`` nearest training inputs, standardised per column and reduced to ``components`` principal
  components (scikit-learn PCA; exact search with faiss), as a percentile of the training inputs' own
  k-NN distances (each to the others); ``flag_knn`` where that distance is above the training
  ``percentile``;
- ``ood_recon_chi2``: the reconstruction residual of the encoder's decoder (reduced chi-square over
  good pixels, :func:`specclip_core.anomaly.scores.chi_square`) where the encoder has one;
  ``flag_recon`` above the training ``percentile``;
- ``ood_range_p``: the probability that at least one label lies outside the training labels' range,
  each label read as a Gaussian around its prediction with the head's ``<label>_err`` (or, for a point
  head, its validation robust sigma), the labels taken as independent;
- ``flag_range_<label>``: the predicted value lies outside the training labels' range;
- ``flags``: the raised flags' names joined by commas (``knn``, ``recon``, ``range_<label>``), empty
  when none is.

The training inputs kept are a seeded subsample of at most ``reference`` rows.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field
from safetensors.numpy import load, save

from specclip_core.errors import SpecCLIPError
from specclip_core.spec import SpecModel
from specclip_core.util import atomic_write_bytes, atomic_write_text

OOD_JSON, OOD_WEIGHTS = "ood.json", "ood.safetensors"
OOD_COLUMNS = ("ood_knn_pct", "flag_knn", "ood_recon_chi2", "flag_recon", "ood_range_p", "flags")
"""The columns of one reference's scores (beside them: ``flag_range_<label>`` per label)."""
OOD_DESCRIPTIONS = {
    "ood_knn_pct": "percentile of the mean distance to the k nearest training inputs among the training inputs' own",
    "flag_knn": "k-NN distance above the training percentile threshold",
    "ood_recon_chi2": "reconstruction residual of the encoder's decoder: reduced chi-square over good pixels",
    "flag_recon": "reconstruction residual above the training percentile threshold",
    "ood_range_p": "probability that a label lies outside the training label range, given the prediction and its error",
    "flags": "raised flags, comma-separated (knn, recon, range_<label>); empty when none",
    "reason": "empty for a predicted row; why a rejected input has no values",
}
"""What each out-of-distribution column (and ``reason``) holds, for catalogue headers."""


class OODSettings(SpecModel):
    """How the heads stage sets out-of-distribution thresholds (see :mod:`specclip_core.heads.ood`)."""

    percentile: float = Field(99.0, gt=0, lt=100, description="training percentile above which a score is flagged")
    k: int = Field(10, ge=1, description="nearest training inputs whose mean distance is the k-NN score")
    reference: int = Field(10000, ge=20, description="training inputs kept (a seeded subsample when there are more)")
    components: int = Field(32, ge=1, description="principal components of the standardised inputs the distance is measured in")


def recon_chi2(rebuilt: np.ndarray | None, arrays: Mapping[str, np.ndarray]) -> np.ndarray | None:
    """Reduced chi-square over good pixels of each spectrum (``flux``, ``ivar``, ``mask``) against
    ``rebuilt``, its reconstruction by an encoder's decoder (None: no decoder, no score)."""
    import torch

    from specclip_core.anomaly.scores import chi_square

    if rebuilt is None:
        return None
    tensors = [torch.as_tensor(np.asarray(arrays[name])) for name in ("flux", "ivar", "mask")]
    return chi_square(tensors[0].float(), torch.as_tensor(rebuilt), tensors[1].float(), tensors[2].bool()).astype(np.float64)


def point_sigma(predicted: Mapping[str, np.ndarray], truth: Mapping[str, np.ndarray]) -> dict[str, float]:
    """A point head's robust sigma per label of ``truth`` on validation stars (finite ones only), the
    ``label_sigma`` its reference reads ``ood_range_p`` with."""
    from specclip_core.heads.metrics import robust_sigma

    sigma = {label: robust_sigma(predicted[label] - values) for label, values in truth.items()}
    return {label: value for label, value in sigma.items() if np.isfinite(value)}


def reference_rows(n: int, settings: OODSettings, seed: int = 0) -> np.ndarray:
    """The sorted training rows a reference keeps: all ``n``, or a seeded subsample of ``reference``."""
    return np.sort(np.random.default_rng(seed).permutation(n)[: settings.reference])


def _index(vectors: np.ndarray):
    import faiss

    index = faiss.IndexFlatL2(vectors.shape[1])
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


class OODReference:
    """Training inputs (projected), their own k-NN distances, reconstruction residuals, label ranges and
    (for a point head) the validation robust sigma of each label."""

    def __init__(self, settings: OODSettings, arrays: dict[str, np.ndarray], label_range: dict[str, tuple[float, float]], label_sigma: dict[str, float] | None = None):
        self.settings, self.arrays, self.label_range, self.label_sigma = settings, arrays, label_range, label_sigma or {}
        self._search = _index(arrays["reference"])

    @classmethod
    def fit(
        cls, inputs: np.ndarray, labels: dict[str, np.ndarray], recon_chi2: np.ndarray | None, settings: OODSettings, seed: int = 0, label_sigma: dict[str, float] | None = None
    ) -> OODReference:
        """From training ``inputs`` [N, D] (the :func:`reference_rows`), ``recon_chi2`` [N] of the same
        rows where the encoder has a decoder, the whole training set's ``labels`` (their ranges), and a
        point head's validation robust sigma per label (``label_sigma``)."""
        from sklearn.decomposition import PCA

        if len(inputs) <= settings.k:
            raise SpecCLIPError(f"out-of-distribution reference: {len(inputs)} training inputs, need more than k={settings.k}")
        kept = np.asarray(inputs, dtype=np.float64)
        mean, std = kept.mean(axis=0), kept.std(axis=0)
        std = np.where(std > 1e-8, std, 1.0)
        pca = PCA(n_components=min(settings.components, *kept.shape), random_state=seed).fit((kept - mean) / std)
        arrays = {"mean": mean, "std": std, "pca_mean": pca.mean_, "pca_components": pca.components_}
        arrays = {name: np.ascontiguousarray(value, dtype=np.float32) for name, value in arrays.items()}
        arrays["reference"] = np.ascontiguousarray(pca.transform((kept - mean) / std), dtype=np.float32)
        distances, _ = _index(arrays["reference"]).search(arrays["reference"], settings.k + 1)
        arrays["train_knn"] = np.sort(np.sqrt(np.maximum(distances[:, 1:], 0)).mean(axis=1)).astype(np.float32)
        if recon_chi2 is not None:
            chi2 = np.asarray(recon_chi2, dtype=np.float64)
            arrays["train_recon_chi2"] = np.sort(chi2[np.isfinite(chi2)]).astype(np.float32)
        label_range = {label: (float(np.nanmin(values)), float(np.nanmax(values))) for label, values in labels.items() if np.isfinite(values).any()}
        return cls(settings, arrays, label_range, label_sigma)

    def threshold(self, name: str) -> float:
        """The training ``percentile`` of ``train_knn`` or ``train_recon_chi2``."""
        return float(np.percentile(self.arrays[name], self.settings.percentile))

    def knn_distance(self, inputs: np.ndarray) -> np.ndarray:
        """Mean distance of each row of ``inputs`` to its ``k`` nearest training inputs."""
        a = self.arrays
        projected = ((np.asarray(inputs, dtype=np.float32) - a["mean"]) / a["std"] - a["pca_mean"]) @ a["pca_components"].T
        k = min(self.settings.k, len(a["reference"]))
        distances, _ = self._search.search(np.ascontiguousarray(projected, dtype=np.float32), k)
        return np.sqrt(np.maximum(distances, 0)).mean(axis=1)

    def columns(self, inputs: np.ndarray, predicted: dict[str, np.ndarray], recon_chi2: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """The catalogue's out-of-distribution columns for a batch (see the module docstring)."""
        from scipy.special import ndtr

        distance = self.knn_distance(inputs)
        out = {"ood_knn_pct": 100.0 * np.searchsorted(self.arrays["train_knn"], distance, side="right") / len(self.arrays["train_knn"])}
        out["flag_knn"] = distance > self.threshold("train_knn")
        if recon_chi2 is not None and "train_recon_chi2" in self.arrays:
            out["ood_recon_chi2"] = np.asarray(recon_chi2, dtype=np.float64)
            out["flag_recon"] = out["ood_recon_chi2"] > self.threshold("train_recon_chi2")
        inside, scored = np.ones(len(distance)), False
        for label, (low, high) in self.label_range.items():
            if label in predicted:
                out[f"flag_range_{label}"] = (predicted[label] < low) | (predicted[label] > high)
                sigma = predicted.get(f"{label}_err", self.label_sigma.get(label))
                if sigma is not None:
                    sigma = np.maximum(np.asarray(sigma, dtype=np.float64), 1e-12)
                    outside = ndtr((predicted[label] - high) / sigma) + ndtr((low - predicted[label]) / sigma)
                    inside, scored = inside * (1 - np.clip(np.nan_to_num(outside), 0, 1)), True
        if scored:
            out["ood_range_p"] = 1 - inside
        flagged = [(name[len("flag_") :], values) for name, values in out.items() if name.startswith("flag_")]
        out["flags"] = np.array([",".join(name for name, values in flagged if values[row]) for row in range(len(distance))], dtype=str)
        return out

    def save(self, head_dir: Path) -> None:
        head_dir = Path(head_dir)
        atomic_write_bytes(head_dir / OOD_WEIGHTS, save(self.arrays))
        described = {"settings": self.settings.model_dump(), "label_range": self.label_range, "label_sigma": self.label_sigma, "thresholds": {n: self.threshold(n) for n in ("train_knn", "train_recon_chi2") if n in self.arrays}}
        atomic_write_text(head_dir / OOD_JSON, json.dumps(described, indent=2))

    @classmethod
    def load(cls, head_dir: Path) -> OODReference | None:
        """The reference saved in ``head_dir``; None for a head saved without one."""
        head_dir = Path(head_dir)
        if not (head_dir / OOD_JSON).exists():
            return None
        described = json.loads((head_dir / OOD_JSON).read_text())
        if not (head_dir / OOD_WEIGHTS).exists():
            raise SpecCLIPError(f"{head_dir / OOD_WEIGHTS}: missing; {head_dir / OOD_JSON} names it")
        label_range = {label: (low, high) for label, (low, high) in described["label_range"].items()}
        return cls(OODSettings(**described["settings"]), load((head_dir / OOD_WEIGHTS).read_bytes()), label_range, described.get("label_sigma"))
