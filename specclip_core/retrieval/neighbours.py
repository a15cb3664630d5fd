"""The ``neighbours`` stage: do repeat observations of one object sit next to each other?

For every spectrum in a group of repeats (a label column naming the object), is its nearest
neighbour by cosine similarity, among all spectra of the store, another observation of the same
object? Measured on embeddings of a needed stage's encoder and on the preprocessed spectra.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from specclip_core.components import get_modality
from specclip_core.heads.inputs import embed_rows
from specclip_core.heads.stages import find_encoder
from specclip_core.nn.embedders import load_embedder
from specclip_core.retrieval.search import same_group_nearest_neighbour
from specclip_core.runs.runner import StageContext
from specclip_core.spec import ModalityName, SpecModel
from specclip_core.util import atomic_write_text


class NeighboursConfig(SpecModel):
    requires_data: ClassVar[bool] = True
    modality: ModalityName
    group: str = Field(description="label column naming the object each spectrum belongs to (missing = no group)")
    inputs: list[Literal["embedding", "spectra"]] = Field(default_factory=lambda: ["embedding", "spectra"], min_length=1)


def _group_names(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values)
    if values.dtype.kind == "f":
        return np.where(np.isfinite(values), np.char.mod("%.0f", np.nan_to_num(values)), "")
    return values.astype(str)


def run_neighbours(context: StageContext) -> dict[str, Any]:
    config: NeighboursConfig = context.config
    modality = get_modality(config.modality).name
    store = context.store()
    rows = np.arange(len(store))
    groups = _group_names(store.labels([config.group])[config.group])
    results: dict[str, Any] = {}
    for kind in config.inputs:
        if kind == "embedding":
            vectors = embed_rows(load_embedder(find_encoder(context, modality)), store, rows, progress=context.progress)
        else:
            vectors = store.read(modality, rows)["flux"]
        results[kind] = same_group_nearest_neighbour(vectors, groups)
    lines = ["| input | spectra in repeat groups | groups | nearest neighbour is the same object |", "|---|---|---|---|"]
    lines += [f"| {kind} | {r['n_spectra']} | {r['n_groups']} | {r['fraction']:.3f} |" for kind, r in results.items()]
    atomic_write_text(context.out_dir / "table.md", "\n".join(lines) + f"\n\nCosine nearest neighbour among all {len(store)} spectra of the store.\n")
    atomic_write_text(context.out_dir / "metrics.json", json.dumps(results, indent=2))
    return results
