"""Alignment objectives over an :class:`~specclip_core.align.model.AlignmentModel` and a paired batch.

``infonce``: symmetric InfoNCE for every pair of modalities on L2-normalised shared embeddings,
logits = logit_scale * cosine similarity (paper eqs. 2-3). ``reconstruction_l1``: in-modal decoders
reconstruct each modality's standardised spectrum, (flux - mean) / std, from the whole projected
embedding (eq. 4). ``cross_prediction``: cross-modal decoders predict the other modality's
normalised flux from the shared embedding, squared error weighted by that spectrum's inverse
variance (footnote 4), normalised per spectrum so that the weights average to one.

Stars not seen in every modality: a row whose spectrum of a modality has every pixel masked did not
observe that modality (:func:`observed`). Its flux and statistics are set to zero before encoding
(so nothing undefined reaches a gradient), and each term leaves it out: InfoNCE of a pair runs over
the rows that hold both modalities (a pair with fewer than two such rows in a batch adds nothing),
reconstruction over unmasked pixels (none, for such a row), prediction over the rows that hold the
source and the target. A batch where every row holds every modality is computed exactly as before.

Ordered embeddings (the align stage's ``ordered``): every term is the mean of the same term over
the model's prefix widths ``w``: InfoNCE on the first ``w`` shared dimensions (re-normalised, i.e. the
cosine of the prefix), and, unless ``ordered.decoders`` is off, the decoders reading the shared part
with the dimensions from ``w`` on set to zero (the private part untouched). This is the
information-ordered bottleneck (IOB: a bottleneck whose leading latents carry the most information,
truncatable at any width) trained as a fixed nested set of widths, averaged at every step, rather than
IOB's one width drawn per batch: the encoder runs once per batch and each extra width costs one
small InfoNCE and decoder pass on the embedding already computed, so every listed width (the full one
included) gets a gradient at every step, with none of the variance of sampling, which matters for
the few hundred steps a CPU alignment takes. Widths between the listed ones are not trained directly.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import combinations, permutations
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import Field

from specclip_core.align.model import AlignmentModel, Embedding, pair_key, prefix
from specclip_core.components import ComponentList, get_modality
from specclip_core.interfaces import Objective, ObjectiveConfig


def info_nce(a: torch.Tensor, b: torch.Tensor, logit_scale: torch.Tensor | float) -> torch.Tensor:
    """Symmetric InfoNCE: mean of cross-entropy over rows (a -> b) and over columns (b -> a)."""
    a, b = F.normalize(a.float(), dim=-1), F.normalize(b.float(), dim=-1)
    logits = logit_scale * a @ b.T
    target = torch.arange(len(a), device=a.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def standardised(inputs: Mapping[str, torch.Tensor], stats_names: tuple[str, ...]) -> torch.Tensor:
    flux = inputs["flux"].float()
    if "mean" in stats_names and "std" in stats_names:
        mean = inputs["stats"][:, stats_names.index("mean"), None]
        std = inputs["stats"][:, stats_names.index("std"), None].clamp_min(1e-6)
        return (flux - mean) / std
    return flux


def unstandardised(standard: torch.Tensor, stats: torch.Tensor, stats_names: tuple[str, ...]) -> torch.Tensor:
    """The normalised flux whose :func:`standardised` form is ``standard`` (a reconstruction's)."""
    if "mean" in stats_names and "std" in stats_names:
        mean = stats[:, stats_names.index("mean"), None]
        std = stats[:, stats_names.index("std"), None].clamp_min(1e-6)
        return standard * std + mean
    return standard


def ivar_weights(inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Inverse variance scaled to mean one over each spectrum's good pixels (zero where masked)."""
    ivar = torch.where(inputs["mask"], torch.zeros_like(inputs["ivar"]), inputs["ivar"]).float()
    mean = ivar.sum(dim=1, keepdim=True) / (~inputs["mask"]).sum(dim=1, keepdim=True).clamp_min(1)
    return ivar / mean.clamp_min(1e-12)


def observed(inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Per row of one modality's part of a batch, whether it holds a spectrum (a pixel not masked)."""
    return (~inputs["mask"]).any(dim=1)


def both_observed(batch: Mapping[str, Any], a: str, b: str) -> torch.Tensor | None:
    """The rows that hold modalities ``a`` and ``b``; None when every row does."""
    rows = batch["_observed"][a] & batch["_observed"][b]
    return None if bool(rows.all()) else rows


def on_rows(x: torch.Tensor, rows: torch.Tensor | None) -> torch.Tensor:
    return x if rows is None else x[rows]


def embed_all(network: AlignmentModel, batch: dict[str, Any]) -> dict[str, Embedding]:
    """Embeddings of every modality, computed once per batch and shared by the objectives; rows that
    did not observe a modality get zero flux and statistics there first (``batch["_observed"]``)."""
    cache = batch.get("_embeddings")
    if cache is None:
        batch["_observed"] = {m: observed(batch[m]) for m in network.modalities}
        for m in network.modalities:
            seen = batch["_observed"][m]
            if not bool(seen.all()):
                batch[m] = {**batch[m], **{k: torch.where(seen[:, None], batch[m][k], torch.zeros_like(batch[m][k])) for k in ("flux", "stats")}}
        cache = {m: network.embed(m, batch[m]) for m in network.modalities}
        batch["_embeddings"] = cache
    return cache


def nothing(embeddings: Mapping[str, Embedding]) -> torch.Tensor:
    """A zero loss that keeps the graph (for a batch in which no row holds what a term needs)."""
    return sum(e.shared.sum() for e in embeddings.values()) * 0.0


class InfoNCE(Objective):
    def __call__(self, network: AlignmentModel, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        embeddings = embed_all(network, batch)
        terms = []
        for a, b in combinations(network.modalities, 2):
            rows = both_observed(batch, a, b)
            if rows is not None and int(rows.sum()) < 2:
                continue
            shared_a, shared_b = on_rows(embeddings[a].shared, rows), on_rows(embeddings[b].shared, rows)
            terms.append(torch.stack([info_nce(shared_a[:, :w], shared_b[:, :w], network.logit_scale) for w in network.prefix_widths()]).mean())
        return {"infonce": torch.stack(terms).sum() if terms else nothing(embeddings)}


class ReconstructionL1(Objective):
    def __call__(self, network: AlignmentModel, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        embeddings = embed_all(network, batch)
        out = {}
        for m in network.modalities:
            target = standardised(batch[m], tuple(get_modality(m).stats_names))
            good = ~batch[m]["mask"]
            losses = []
            for width in network.prefix_widths(decoders=True):
                embedding = Embedding(prefix(embeddings[m].shared, width), embeddings[m].private)
                predicted = network.reconstructors[m](embedding.full).float()
                losses.append(((predicted - target).abs() * good).sum() / good.sum().clamp_min(1))
            out[f"recon_{m}"] = torch.stack(losses).mean()
        return out


class CrossPrediction(Objective):
    def __call__(self, network: AlignmentModel, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        embeddings = embed_all(network, batch)
        out = {}
        for source, target in permutations(network.modalities, 2):
            rows = both_observed(batch, source, target)
            if rows is not None and not bool(rows.any()):
                out[f"predict_{source}_to_{target}"] = nothing(embeddings)
                continue
            weights = ivar_weights(batch[target])
            losses = []
            for width in network.prefix_widths(decoders=True):
                predicted = network.predictors[pair_key(source, target)](prefix(embeddings[source].shared, width)).float()
                losses.append(on_rows(weights * (predicted - batch[target]["flux"].float()) ** 2, rows).mean())
            out[f"predict_{source}_to_{target}"] = torch.stack(losses).mean()
        return out


class AlignObjectiveConfig(ObjectiveConfig):
    weight: float = Field(1.0, ge=0)


components = ComponentList()
components.register("objective", "infonce", AlignObjectiveConfig, "symmetric InfoNCE over every pair of modalities (eqs. 2-3)")(InfoNCE)
components.register("objective", "reconstruction_l1", AlignObjectiveConfig, "in-modal L1 reconstruction of standardised spectra (eq. 4)")(ReconstructionL1)
components.register("objective", "cross_prediction", AlignObjectiveConfig, "inverse-variance weighted cross-modal prediction (eq. 5, footnote 4)")(CrossPrediction)
