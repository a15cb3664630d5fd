"""The ``neighbours`` stage: do repeat observations of one object sit next to each other?

For every spectrum in a group of repeats, is its nearest neighbour by cosine similarity, among all
spectra of the store, another observation of the same object? Measured on embeddings of a needed
stage's encoder and on the preprocessed spectra.

The groups come either from a label column naming the object (``group``), or from the sky
positions (``sky_match_arcsec`` with the ``ra`` / ``dec`` label columns, in degrees): spectra closer
than that separation are linked, and the connected components of those links (friends of friends)
are the objects. Spectra without a finite position, or with a missing group name, belong to no group
(they still count as candidate neighbours).
"""

from __future__ import annotations

import json
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from specclip_core.components import get_modality
from specclip_core.heads.inputs import embed_rows
from specclip_core.interfaces import Stage
from specclip_core.nn.embedders import load_embedder
from specclip_core.retrieval.groups import group_names, size_histogram, sky_groups
from specclip_core.retrieval.search import same_group_nearest_neighbour
from specclip_core.runner import StageContext
from specclip_core.spec import ModalityName, SpecModel
from specclip_core.util import atomic_write_text


class NeighboursConfig(SpecModel):
    """Repeat observations: is each one's cosine nearest neighbour another observation of the same object?"""

    modality: ModalityName = Field(description="the modality whose spectra (and embeddings) are compared")
    group: str | None = Field(None, description="label column naming the object each spectrum belongs to (missing = no group)")
    sky_match_arcsec: float | None = Field(
        None, gt=0, description="instead of 'group': spectra within this separation on the sky (friends of friends) are one object"
    )
    ra: str = Field("ra", description="label column of right ascension in degrees (with sky_match_arcsec)")
    dec: str = Field("dec", description="label column of declination in degrees (with sky_match_arcsec)")
    inputs: list[Literal["embedding", "spectra"]] = Field(default_factory=lambda: ["embedding", "spectra"], min_length=1, description="what to compare: embeddings of a needed stage's encoder, the preprocessed spectra")

    @model_validator(mode="after")
    def _one_grouping(self) -> NeighboursConfig:
        if (self.group is None) == (self.sky_match_arcsec is None):
            raise ValueError("give exactly one of 'group' (a label column) or 'sky_match_arcsec' (group by sky position)")
        return self


class NeighboursStage(Stage):
    """Fraction of repeat observations whose cosine nearest neighbour is the same object."""

    requires_data = True

    def labels_read(self) -> dict[str, list[str]]:
        config = self.config
        return {"group": [config.group]} if config.group is not None else {"ra": [config.ra], "dec": [config.dec]}

    def run(self, context: StageContext) -> dict[str, Any]:
        config: NeighboursConfig = context.config
        modality = get_modality(config.modality).name
        store = context.store()
        rows = np.arange(len(store))
        if config.sky_match_arcsec is not None:
            table = store.labels([config.ra, config.dec])
            groups = sky_groups(table[config.ra], table[config.dec], config.sky_match_arcsec)
            grouping = f"sky position: {config.ra}/{config.dec} within {config.sky_match_arcsec:g} arcsec (friends of friends)"
        else:
            groups = group_names(store.labels([config.group])[config.group])
            grouping = f"label column {config.group!r}"
        results: dict[str, Any] = {}
        for kind in config.inputs:
            if kind == "embedding":
                vectors = embed_rows(load_embedder(context.find_encoder(modality)), store, rows, progress=context.progress)
            else:
                vectors = store.read(modality, rows)["flux"]
            results[kind] = same_group_nearest_neighbour(vectors, groups)
        lines = ["| input | spectra in repeat groups | groups | nearest neighbour is the same object |", "|---|---|---|---|"]
        lines += [f"| {kind} | {r['n_spectra']} | {r['n_groups']} | {r['fraction']:.3f} |" for kind, r in results.items()]
        sizes, ungrouped = size_histogram(groups), int((groups == "").sum())
        footer = (
            f"\n\nCosine nearest neighbour among all {len(store)} spectra of the store. Objects by {grouping}; "
            f"group sizes (size: number of groups) {sizes}; {ungrouped} spectra in no group.\n"
        )
        atomic_write_text(context.out_dir / "table.md", "\n".join(lines) + footer)
        summary = {**results, "grouping": grouping, "group_sizes": sizes, "n_without_group": ungrouped}
        atomic_write_text(context.out_dir / "metrics.json", json.dumps(summary, indent=2))
        atomic_write_text(context.out_dir / "groups.json", json.dumps(dict(zip(store.ids.tolist(), groups.tolist()))))
        return summary
