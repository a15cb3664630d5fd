"""The alignment model: one class for any number of modalities (paper sections 2.3-2.4).

Per modality: a pretrained :class:`~specclip_core.nn.ModalityEncoder` (frozen or fine-tuned), a
projection into the aligned space (optionally split into shared and private parts), and, when the
spec asks for them, an in-modal reconstruction decoder (reads shared + private). Per ordered pair of
modalities, when asked, a cross-modal decoder (reads the shared part only). CLIP, CLIP-r, CLIP-p,
CLIP-pr and CLIP-split are settings of this one class.

Ordered embeddings (``ordered``): the objectives train every listed prefix width of the shared part
as an embedding of its own (see :mod:`specclip_core.align.objectives`), so the shared embedding
truncates to any of them without retraining; the widths are part of the model's description.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import permutations
from pathlib import Path
from typing import Any

import torch
from torch import nn

from specclip_core.components import create_component, get_modality
from specclip_core.nn.modality_encoder import ModalityEncoder
from specclip_core.train.checkpoint import load_weights, read_description, save_described


@dataclass
class Embedding:
    """A modality's projected embedding: ``shared`` ``[B, S]`` and ``private`` ``[B, P]`` or None."""

    shared: torch.Tensor
    private: torch.Tensor | None

    @property
    def full(self) -> torch.Tensor:
        return self.shared if self.private is None else torch.cat([self.shared, self.private], dim=1)


def pair_key(source: str, target: str) -> str:
    return f"{source}->{target}"


def prefix(x: torch.Tensor, width: int) -> torch.Tensor:
    """``x`` ``[B, S]`` with every dimension from ``width`` on set to zero (what a decoder reads of a
    ``width``-wide prefix)."""
    if width >= x.shape[1]:
        return x
    return torch.cat([x[:, :width], torch.zeros_like(x[:, width:])], dim=1)


class AlignmentModel(nn.Module):
    def __init__(
        self,
        encoders: Mapping[str, ModalityEncoder],
        projections: Mapping[str, Mapping[str, Any]],
        reconstruction: Mapping[str, Any] | None = None,
        prediction: Mapping[str, Any] | None = None,
        freeze_encoders: bool = True,
        logit_scale: float = 15.5,
        learn_logit_scale: bool = False,
        ordered: Mapping[str, Any] | None = None,
    ):
        super().__init__()
        if len(encoders) < 2:
            raise ValueError(f"alignment needs at least two modalities, got {list(encoders)}")
        self.modalities = list(encoders)
        self.encoders = nn.ModuleDict(encoders)
        self.projection_specs = {m: dict(projections[m]) for m in self.modalities}
        self.projections = nn.ModuleDict(
            {m: create_component("projection", self.projection_specs[m], in_dim=encoders[m].embed_dim) for m in self.modalities}
        )
        self.freeze_encoders = freeze_encoders
        if freeze_encoders:
            for encoder in self.encoders.values():
                encoder.requires_grad_(False)
        shared = {self.projections[m].shared_dim for m in self.modalities}
        if len(shared) != 1:
            raise ValueError(f"every modality must project to the same shared width; got {shared}")
        self.shared_dim = shared.pop()
        self.reconstruction_spec = dict(reconstruction) if reconstruction is not None else None
        self.prediction_spec = dict(prediction) if prediction is not None else None
        self.reconstructors = nn.ModuleDict()
        if reconstruction is not None:
            for m in self.modalities:
                width = self.projections[m].shared_dim + self.projections[m].private_dim
                self.reconstructors[m] = create_component("decoder", reconstruction, in_dim=width, out_dim=get_modality(m).n_pixels)
        self.predictors = nn.ModuleDict()
        if prediction is not None:
            for source, target in permutations(self.modalities, 2):
                width = self.projections[source].shared_dim
                self.predictors[pair_key(source, target)] = create_component("decoder", prediction, in_dim=width, out_dim=get_modality(target).n_pixels)
        self.log_logit_scale = nn.Parameter(torch.tensor(math.log(logit_scale)), requires_grad=learn_logit_scale)
        self.ordered = self._ordered(ordered, self.shared_dim)

    @staticmethod
    def _ordered(ordered: Mapping[str, Any] | None, shared_dim: int) -> dict[str, Any] | None:
        """The trained prefix widths (the full shared width always among them) and whether the decoders
        learn from each prefix too; None for a plain embedding."""
        if ordered is None:
            return None
        widths = sorted({int(w) for w in ordered["widths"]} | {shared_dim})
        if widths[0] < 1 or widths[-1] > shared_dim:
            raise ValueError(f"ordered widths must lie in 1..{shared_dim} (the shared width), got {list(ordered['widths'])}")
        return {"widths": widths, "decoders": bool(ordered.get("decoders", True))}

    def prefix_widths(self, decoders: bool = False) -> list[int]:
        """The widths of the shared part the objectives train: every ordered width, or (plain, or
        ``decoders`` when the ordered decoders are off) the full shared width alone."""
        if self.ordered is None or (decoders and not self.ordered["decoders"]):
            return [self.shared_dim]
        return list(self.ordered["widths"])

    @property
    def logit_scale(self) -> torch.Tensor:
        return self.log_logit_scale.exp()

    def train(self, mode: bool = True) -> AlignmentModel:
        super().train(mode)
        if self.freeze_encoders:
            self.encoders.eval()
        return self

    def embed(self, modality: str, inputs: Mapping[str, torch.Tensor]) -> Embedding:
        """Project one modality's part of a batch (``flux``, ``stats``) into the aligned space."""
        if self.freeze_encoders:
            with torch.no_grad():
                encoded = self.encoders[modality](inputs)
        else:
            encoded = self.encoders[modality](inputs)
        return Embedding(*self.projections[modality](encoded))

    def describe(self) -> dict[str, Any]:
        from specclip_core import __version__

        return {
            "modalities": self.modalities,
            "projections": self.projection_specs,
            "reconstruction": self.reconstruction_spec,
            "prediction": self.prediction_spec,
            "freeze_encoders": self.freeze_encoders,
            "logit_scale": float(self.logit_scale),
            "learn_logit_scale": bool(self.log_logit_scale.requires_grad),
            "ordered": self.ordered,
            "encoders": {m: self.encoders[m].describe() for m in self.modalities},
            "n_parameters": sum(p.numel() for p in self.parameters()),
            "n_trainable": sum(p.numel() for p in self.parameters() if p.requires_grad),
            "specclip_version": __version__,
        }

    def save(self, directory: str | Path) -> None:
        save_described(self, directory, "model", self.describe())

    @classmethod
    def load(cls, directory: str | Path, map_location: str | torch.device = "cpu") -> AlignmentModel:
        directory = Path(directory)
        described = read_description(directory, "model")
        encoders = {m: ModalityEncoder(m, d["tokenizer"], d["encoder"]) for m, d in described["encoders"].items()}
        model = cls(
            encoders,
            described["projections"],
            described["reconstruction"],
            described["prediction"],
            described["freeze_encoders"],
            described["logit_scale"],
            described["learn_logit_scale"],
            described.get("ordered"),
        )
        load_weights(model, directory / "model.safetensors", map_location)
        return model
