"""A modality's tokenizer and encoder as one module: preprocessed spectra in, embeddings out.

This is what pretraining trains and what heads, alignment and prediction load. It is saved as
``encoder.safetensors`` (weights) beside ``encoder.json`` (what to rebuild: modality, tokenizer and
encoder specs), never as a pickle.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from specclip_core.components import create_component, get_modality
from specclip_core.interfaces import Embedder, EncoderOutput
from specclip_core.train.checkpoint import load_weights, read_description, save_described


def _as_spec(spec: str | Mapping[str, Any]) -> dict[str, Any]:
    return {"name": spec} if isinstance(spec, str) else dict(spec)


class ModalityEncoder(nn.Module, Embedder):
    """A modality's tokenizer and encoder (an :class:`~specclip_core.interfaces.Embedder`: pooled embeddings)."""

    def __init__(self, modality: str, tokenizer: str | Mapping[str, Any] | None = None, encoder: str | Mapping[str, Any] | None = None):
        super().__init__()
        spec_of_modality = get_modality(modality)
        self.modality = spec_of_modality.name
        self.encoder_spec = _as_spec(encoder or spec_of_modality.default_encoder)
        self.tokenizer_spec = _as_spec(tokenizer or spec_of_modality.tokenizer_for(self.encoder_spec["name"]))
        self.tokenizer = create_component(
            "tokenizer", self.tokenizer_spec, n_pixels=spec_of_modality.n_pixels, stats_names=tuple(spec_of_modality.stats_names)
        )
        self.encoder = create_component(
            "encoder", self.encoder_spec, n_tokens=self.tokenizer.n_tokens, token_dim=self.tokenizer.token_dim
        )

    @property
    def embed_dim(self) -> int:
        return self.encoder.embed_dim

    def tokenize(self, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Tokens ``[B, T, D]`` of one modality's part of a batch (``flux`` and ``stats``)."""
        return self.tokenizer(inputs["flux"], inputs["stats"])

    def forward(self, inputs: Mapping[str, torch.Tensor], token_mask: torch.Tensor | None = None) -> EncoderOutput:
        return self.encoder(self.tokenize(inputs), token_mask)

    def describe(self) -> dict[str, Any]:
        from specclip_core import __version__

        return {
            "type": "modality_encoder",
            "modality": self.modality,
            "tokenizer": self.tokenizer_spec,
            "encoder": self.encoder_spec,
            "embed_dim": self.embed_dim,
            "n_parameters": sum(p.numel() for p in self.parameters()),
            "specclip_version": __version__,
        }

    def save(self, directory: str | Path) -> None:
        save_described(self, directory, "encoder", self.describe())

    @classmethod
    def load(cls, directory: str | Path, map_location: str | torch.device = "cpu") -> ModalityEncoder:
        described = read_description(directory, "encoder")
        model = cls(described["modality"], described["tokenizer"], described["encoder"])
        load_weights(model, Path(directory) / "encoder.safetensors", map_location)
        return model

    @torch.no_grad()
    def embed(self, flux: np.ndarray, stats: np.ndarray, batch_size: int = 512, device: str | torch.device = "cpu", pooled: bool = True) -> np.ndarray:
        """Pooled (or token) embeddings of preprocessed spectra, computed in batches in eval mode."""
        was_training = self.training
        self.eval().to(device)
        out = []
        for start in range(0, len(flux), batch_size):
            inputs = {
                "flux": torch.as_tensor(flux[start : start + batch_size], device=device),
                "stats": torch.as_tensor(stats[start : start + batch_size], device=device),
            }
            result = self(inputs)
            out.append((result.pooled if pooled else result.tokens).float().cpu().numpy())
        self.train(was_training)
        width = self.embed_dim
        return np.concatenate(out) if out else np.zeros((0, width), dtype=np.float32)

    @torch.no_grad()
    def reconstruct(self, flux: np.ndarray, stats: np.ndarray, batch_size: int = 512, device: str | torch.device = "cpu") -> np.ndarray | None:
        """The flux ``[N, L]`` the encoder's decoder rebuilds from each spectrum's embedding; None
        unless the encoder has a decoder (the MLP autoencoder) and the tokenizer gives the flux back."""
        return self.embed_and_reconstruct(flux, stats, batch_size, device)[1] if self.can_reconstruct else None

    @property
    def can_reconstruct(self) -> bool:
        """Whether the encoder has a decoder (the MLP autoencoder) and the tokenizer gives the flux back."""
        return hasattr(self.encoder, "decoder") and hasattr(self.tokenizer, "flux_of")

    @torch.no_grad()
    def embed_and_reconstruct(self, flux: np.ndarray, stats: np.ndarray, batch_size: int = 512, device: str | torch.device = "cpu") -> tuple[np.ndarray, np.ndarray | None]:
        """Pooled embeddings and (where :attr:`can_reconstruct`, else None) the reconstructed flux,
        from one pass of the encoder over each batch."""
        if not self.can_reconstruct:
            return self.embed(flux, stats, batch_size, device), None
        was_training = self.training
        self.eval().to(device)
        embedded, rebuilt = [], []
        for start in range(0, len(flux), batch_size):
            part_stats = torch.as_tensor(stats[start : start + batch_size], device=device)
            result = self({"flux": torch.as_tensor(flux[start : start + batch_size], device=device), "stats": part_stats})
            embedded.append(result.pooled.float().cpu().numpy())
            rebuilt.append(self.tokenizer.flux_of(self.encoder.reconstruct(result), part_stats).cpu().numpy())
        self.train(was_training)
        if not embedded:
            return np.zeros((0, self.embed_dim), dtype=np.float32), np.zeros((0, flux.shape[1]), dtype=np.float32)
        return np.concatenate(embedded), np.concatenate(rebuilt)
