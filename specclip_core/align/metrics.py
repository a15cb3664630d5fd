"""Alignment metrics on held-out pairs (paper section 4.1, Table 2).

- mean cosine similarity of true pairs of shared embeddings, per pair of modalities;
- cross-modal retrieval: query one modality, search the same stars in the other among all held-out
  stars (faiss, inner product on unit vectors); top-1 and top-10 accuracy, both directions;
- cross-modal prediction: inverse-variance weighted MSE of the predicted normalised flux;
- of an ordered model, the retrieval accuracy of each trained prefix width of the shared embedding.
"""

from __future__ import annotations

from itertools import combinations, permutations
from typing import Any

import numpy as np
import torch

from specclip_core.align.model import AlignmentModel, pair_key
from specclip_core.align.objectives import ivar_weights
from specclip_core.data.store import SpectralStore
from specclip_core.retrieval.search import retrieval_accuracy, unit


@torch.no_grad()
def shared_embeddings(model: AlignmentModel, store: SpectralStore, rows: np.ndarray, batch_size: int = 512, device: str | torch.device = "cpu") -> dict[str, np.ndarray]:
    model.eval().to(device)
    out: dict[str, list[np.ndarray]] = {m: [] for m in model.modalities}
    for start in range(0, len(rows), batch_size):
        for m in model.modalities:
            part = store.read(m, rows[start : start + batch_size])
            inputs = {"flux": torch.as_tensor(part["flux"], device=device), "stats": torch.as_tensor(part["stats"], device=device)}
            out[m].append(model.embed(m, inputs).shared.float().cpu().numpy())
    return {m: np.concatenate(v) for m, v in out.items()}


@torch.no_grad()
def prediction_mse(model: AlignmentModel, store: SpectralStore, rows: np.ndarray, batch_size: int = 512, device: str | torch.device = "cpu") -> dict[str, float]:
    """Inverse-variance weighted MSE of cross-modal prediction, per direction."""
    if not len(model.predictors):
        return {}
    sums = {pair_key(s, t): 0.0 for s, t in permutations(model.modalities, 2)}
    count = 0
    model.eval().to(device)
    for start in range(0, len(rows), batch_size):
        batch = {m: {k: torch.as_tensor(v, device=device) for k, v in store.read(m, rows[start : start + batch_size]).items()} for m in model.modalities}
        embeddings = {m: model.embed(m, batch[m]) for m in model.modalities}
        for source, target in permutations(model.modalities, 2):
            predicted = model.predictors[pair_key(source, target)](embeddings[source].shared).float()
            weights = ivar_weights(batch[target])
            sums[pair_key(source, target)] += float((weights * (predicted - batch[target]["flux"]) ** 2).mean(dim=1).sum())
        count += len(rows[start : start + batch_size])
    return {key: value / max(count, 1) for key, value in sums.items()}


def alignment_metrics(model: AlignmentModel, store: SpectralStore, rows: np.ndarray, device: str | torch.device = "cpu") -> dict[str, Any]:
    embeddings = shared_embeddings(model, store, rows, device=device)
    out: dict[str, Any] = {"n_pairs": int(len(rows)), "cosine": {}, "retrieval": {}}
    for a, b in combinations(model.modalities, 2):
        out["cosine"][f"{a}~{b}"] = float(np.mean(np.sum(unit(embeddings[a]) * unit(embeddings[b]), axis=1)))
    for a, b in permutations(model.modalities, 2):
        out["retrieval"][pair_key(a, b)] = retrieval_accuracy(embeddings[a], embeddings[b])
    out["prediction_weighted_mse"] = prediction_mse(model, store, rows, device=device)
    if model.ordered is not None:
        out["retrieval_by_width"] = {
            str(w): {pair_key(a, b): retrieval_accuracy(embeddings[a][:, :w], embeddings[b][:, :w]) for a, b in permutations(model.modalities, 2)}
            for w in model.ordered["widths"]
        }
    return out
