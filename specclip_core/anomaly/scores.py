"""Per-spectrum anomaly scores under a trained alignment model (paper sections 5-6).

For a batch of stars, each seen in some of the model's modalities:

- ``recon_<m>``: the in-modal reconstruction residual, a reduced chi-square: the mean over good pixels
  of ivar x (flux - reconstruction)^2, the reconstruction read from the whole embedding by the
  stage's in-modal decoder (needs ``reconstruction`` in the align stage);
- ``cross_<s>_to_<t>``: the same chi-square for the prediction of ``t``'s spectrum from ``s``'s shared
  embedding (needs ``prediction``; stars seen in both);
- ``disagree_<a>_<b>``: 1 - cosine of the star's two shared embeddings (a cross-match error or a
  composite spectrum pulls them apart);
- ``density_<m>``: 1 - the mean cosine to the ``k`` nearest training embeddings of ``m`` (few
  neighbours: a spectrum unlike the training set).
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import combinations, permutations

import numpy as np
import torch

from specclip_core.align.model import AlignmentModel, pair_key
from specclip_core.align.objectives import unstandardised
from specclip_core.components import get_modality
from specclip_core.retrieval.search import unit

DENSITY_K = 10


def score_names(model: AlignmentModel) -> list[str]:
    """Every score the model can give, in a fixed order."""
    names = [f"recon_{m}" for m in model.modalities if m in model.reconstructors]
    names += [f"cross_{s}_to_{t}" for s, t in permutations(model.modalities, 2) if pair_key(s, t) in model.predictors]
    names += [f"disagree_{a}_{b}" for a, b in combinations(model.modalities, 2)]
    return names + [f"density_{m}" for m in model.modalities]


def chi_square(flux: torch.Tensor, predicted: torch.Tensor, ivar: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
    """Reduced chi-square over each spectrum's good pixels."""
    good = ~mask
    terms = torch.where(good, ivar * (flux - predicted) ** 2, torch.zeros_like(flux))
    return (terms.sum(dim=1) / good.sum(dim=1).clamp_min(1)).numpy()


class DensityReference:
    """Unit shared embeddings of the training set per modality, searched exactly (faiss inner product)."""

    def __init__(self, embeddings: Mapping[str, np.ndarray], k: int = DENSITY_K):
        import faiss

        self.k = k
        self.indexes = {}
        for modality, vectors in embeddings.items():
            index = faiss.IndexFlatIP(vectors.shape[1])
            index.add(unit(np.ascontiguousarray(vectors, dtype=np.float32)))
            self.indexes[modality] = index

    def score(self, modality: str, shared: np.ndarray, exclude_self: bool = False) -> np.ndarray:
        index = self.indexes[modality]
        k = min(self.k + exclude_self, index.ntotal)
        cosines, _ = index.search(unit(np.ascontiguousarray(shared, dtype=np.float32)), k)
        return 1.0 - cosines[:, int(exclude_self) :].mean(axis=1)


@torch.no_grad()
def model_spectra(model: AlignmentModel, tensors: Mapping[str, Mapping[str, torch.Tensor]]) -> tuple[dict, dict[str, tuple[str, str, torch.Tensor]]]:
    """(embeddings, spectra) of a batch; ``spectra[name] = (source, target, normalised flux)``:
    ``recon_<m>`` reconstructs each modality given, ``cross_<s>_to_<t>`` predicts each other one given."""
    embeddings = {m: model.embed(m, tensors[m]) for m in tensors}
    spectra = {}
    for m in tensors:
        if m in model.reconstructors:
            standard = model.reconstructors[m](embeddings[m].full).float()
            spectra[f"recon_{m}"] = (m, m, unstandardised(standard, tensors[m]["stats"].float(), tuple(get_modality(m).stats_names)))
    for s, t in permutations(list(tensors), 2):
        if pair_key(s, t) in model.predictors:
            spectra[f"cross_{s}_to_{t}"] = (s, t, model.predictors[pair_key(s, t)](embeddings[s].shared).float())
    return embeddings, spectra


@torch.no_grad()
def batch_scores(
    model: AlignmentModel, batch: Mapping[str, Mapping[str, np.ndarray]], density: DensityReference | None, exclude_self: bool = False
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(scores, shared embeddings) of one batch. ``batch[m]`` holds ``flux``, ``ivar``, ``mask``,
    ``stats`` and ``present`` (True where the star has an ``m`` spectrum) for the modalities it has;
    a score a star cannot have is NaN. ``exclude_self``: the batch is part of ``density``'s reference."""
    model.eval()
    n = len(next(iter(batch.values()))["flux"])
    tensors = {m: {k: torch.as_tensor(v) for k, v in arrays.items() if k != "present"} for m, arrays in batch.items()}
    present = {m: np.asarray(arrays["present"], bool) for m, arrays in batch.items()}
    embeddings, spectra = model_spectra(model, tensors)
    shared = {m: embeddings[m].shared.float().numpy() for m in batch}
    scores = {name: np.full(n, np.nan) for name in score_names(model)}
    for name, (source, target, predicted) in spectra.items():
        t = tensors[target]
        values = chi_square(t["flux"].float(), predicted, t["ivar"].float(), t["mask"])
        scores[name] = np.where(present[source] & present[target], values, np.nan)
    for a, b in combinations(model.modalities, 2):
        if a in batch and b in batch:
            cosine = np.sum(unit(shared[a]) * unit(shared[b]), axis=1)
            scores[f"disagree_{a}_{b}"] = np.where(present[a] & present[b], 1.0 - cosine, np.nan)
    if density is not None:
        for m in batch:
            scores[f"density_{m}"] = np.where(present[m], density.score(m, shared[m], exclude_self), np.nan)
    return scores, shared
