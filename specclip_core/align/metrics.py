"""Alignment metrics on held-out pairs (paper section 4.1, Table 2).

- mean cosine similarity of true pairs of shared embeddings, per pair of modalities;
- cross-modal retrieval: query one modality, search the same stars in the other among all held-out
  stars (faiss, inner product on unit vectors); top-1 and top-10 accuracy, both directions;
- cross-modal prediction: inverse-variance weighted MSE of the predicted normalised flux;
- of an ordered model, the retrieval accuracy of each trained prefix width of the shared embedding.

Each pair of modalities is measured on the held-out rows that hold both (a row whose spectrum of a
modality is fully masked did not observe it; ``n_by_pair`` counts them); with every row holding every
modality, that is every held-out row.
"""

from __future__ import annotations

from itertools import combinations, permutations
from typing import Any

import numpy as np
import torch

from specclip_core.align.model import AlignmentModel, pair_key
from specclip_core.align.objectives import ivar_weights, observed
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
    """Inverse-variance weighted MSE of cross-modal prediction, per direction, over the rows that hold
    both modalities."""
    if not len(model.predictors):
        return {}
    sums = {pair_key(s, t): 0.0 for s, t in permutations(model.modalities, 2)}
    counts = dict.fromkeys(sums, 0)
    model.eval().to(device)
    for start in range(0, len(rows), batch_size):
        batch = {m: {k: torch.as_tensor(v, device=device) for k, v in store.read(m, rows[start : start + batch_size]).items()} for m in model.modalities}
        embeddings = {m: model.embed(m, batch[m]) for m in model.modalities}
        for source, target in permutations(model.modalities, 2):
            predicted = model.predictors[pair_key(source, target)](embeddings[source].shared).float()
            weights = ivar_weights(batch[target])
            both = observed(batch[source]) & observed(batch[target])
            sums[pair_key(source, target)] += float((weights * (predicted - batch[target]["flux"]) ** 2).mean(dim=1)[both].sum())
            counts[pair_key(source, target)] += int(both.sum())
    return {key: value / max(counts[key], 1) for key, value in sums.items()}


def pair_rows(store: SpectralStore, modalities: list[str], rows: np.ndarray) -> dict[tuple[str, str], np.ndarray]:
    """For each ordered pair of modalities, the positions in ``rows`` of the rows that hold both."""
    seen = {m: store.observed(m, rows) for m in modalities}
    return {(a, b): np.flatnonzero(seen[a] & seen[b]) for a, b in permutations(modalities, 2)}


def alignment_metrics(model: AlignmentModel, store: SpectralStore, rows: np.ndarray, device: str | torch.device = "cpu") -> dict[str, Any]:
    embeddings = shared_embeddings(model, store, rows, device=device)
    both = pair_rows(store, model.modalities, rows)
    out: dict[str, Any] = {"n_pairs": int(len(rows)), "n_by_pair": {}, "cosine": {}, "retrieval": {}}
    for a, b in combinations(model.modalities, 2):
        held = both[a, b]
        out["n_by_pair"][f"{a}~{b}"] = int(len(held))
        out["cosine"][f"{a}~{b}"] = float(np.mean(np.sum(unit(embeddings[a][held]) * unit(embeddings[b][held]), axis=1))) if len(held) else None
    for (a, b), held in both.items():
        out["retrieval"][pair_key(a, b)] = retrieval_accuracy(embeddings[a][held], embeddings[b][held]) if len(held) else {"top1": None, "top10": None}
    out["prediction_weighted_mse"] = prediction_mse(model, store, rows, device=device)
    if model.ordered is not None:
        out["retrieval_by_width"] = {
            str(w): {pair_key(a, b): retrieval_accuracy(embeddings[a][held, :w], embeddings[b][held, :w]) for (a, b), held in both.items()}
            for w in model.ordered["widths"]
        }
    return out
