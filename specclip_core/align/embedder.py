"""One modality's branch of a trained alignment model as an embedder: encoder, then projection.

Saved as ``encoders/<modality>/encoder.json`` (type ``aligned``) beside the stage's ``model/``; its
embedding is the full projected embedding (shared and private parts) that heads read.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from specclip_core.align.model import AlignmentModel
from specclip_core.interfaces import Embedder
from specclip_core.util import atomic_write_text

MODEL_DIR = "model"


class AlignedEmbedder(Embedder):
    """One modality's branch of an alignment model; embeds into the aligned space."""

    def __init__(self, model: AlignmentModel, modality: str):
        self.model, self.modality = model, modality
        projection = model.projections[modality]
        self.embed_dim = projection.shared_dim + projection.private_dim

    @property
    def parts(self) -> dict[str, int]:
        """The width of each part :meth:`embed` gives: ``full``, ``shared`` and (CLIP-split) ``private``."""
        projection = self.model.projections[self.modality]
        parts = {"full": self.embed_dim, "shared": projection.shared_dim}
        return parts | ({"private": projection.private_dim} if projection.private_dim else {})

    @property
    def ordered_widths(self) -> list[int] | None:
        """The prefix widths of the shared part the model was trained on (an ordered embedding), else None."""
        return None if self.model.ordered is None else list(self.model.ordered["widths"])

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        atomic_write_text(directory / "encoder.json", json.dumps({"type": "aligned", "modality": self.modality, "model": f"../../{MODEL_DIR}", "embed_dim": self.embed_dim}))

    @classmethod
    def load(cls, directory: str | Path, map_location: str = "cpu") -> AlignedEmbedder:
        directory = Path(directory)
        described = json.loads((directory / "encoder.json").read_text())
        model = AlignmentModel.load((directory / described["model"]).resolve(), map_location)
        return cls(model.eval(), described["modality"])

    @torch.no_grad()
    def embed(self, flux: np.ndarray, stats: np.ndarray, batch_size: int = 512, device: str | torch.device = "cpu", part: str = "full") -> np.ndarray:
        """Projected embeddings: ``full`` (shared + private), ``shared`` or ``private``."""
        self.model.eval().to(device)
        out = []
        for start in range(0, len(flux), batch_size):
            inputs = {"flux": torch.as_tensor(flux[start : start + batch_size], device=device), "stats": torch.as_tensor(stats[start : start + batch_size], device=device)}
            embedding = self.model.embed(self.modality, inputs)
            out.append(getattr(embedding, part).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.embed_dim), dtype=np.float32)
