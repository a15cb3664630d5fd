"""Training objectives: callables ``objective(network, batch) -> {term name: loss tensor}``.

The loop sums ``objective.weight * term`` over every term of every objective. Built-ins here are the
pretraining objectives for a :class:`~specclip_core.nn.ModalityEncoder`: masked modelling with
chunk masking (paper appendix D.1, eqs. D2-D4) and plain reconstruction (the autoencoder's).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import torch
from pydantic import Field

from specclip_core.components import ComponentList
from specclip_core.interfaces import Objective, ObjectiveConfig


def chunk_mask(batch: int, n_tokens: int, skip: int, n_chunks: int, chunk: int, device: torch.device) -> torch.Tensor:
    """``[batch, n_tokens]`` bool: in each of ``n_chunks`` equal segments of the tokens after the first
    ``skip``, one contiguous run of ``chunk`` tokens starting uniformly at random within the segment."""
    usable = n_tokens - skip
    segment = usable // n_chunks
    if segment < 1:
        raise ValueError(f"cannot place {n_chunks} masked chunks in {usable} tokens")
    width = min(chunk, segment)
    offsets = torch.randint(0, segment - width + 1, (batch, n_chunks), device=device)
    starts = skip + torch.arange(n_chunks, device=device) * segment + offsets
    positions = starts.unsqueeze(-1) + torch.arange(width, device=device)
    mask = torch.zeros(batch, n_tokens, dtype=torch.bool, device=device)
    mask.scatter_(1, positions.flatten(1), True)
    return mask


class MaskedModelingConfig(ObjectiveConfig):
    n_chunks: int = Field(6, ge=1, description="segments, one masked chunk in each")
    chunk_tokens: int = Field(20, ge=1, description="tokens per masked chunk")


class MaskedModeling(Objective):
    """Mean squared error on the hidden tokens only."""

    config: MaskedModelingConfig

    def __call__(self, network: Any, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        tokens = network.tokenize(batch[network.modality])
        if tokens.shape[1] < 2:
            raise ValueError(f"masked_modeling needs several tokens per spectrum; the {network.modality} tokenizer gives one")
        mask = chunk_mask(tokens.shape[0], tokens.shape[1], network.tokenizer.stats_tokens(), self.config.n_chunks, self.config.chunk_tokens, tokens.device)
        predicted = network.encoder.reconstruct(network.encoder(tokens, mask))
        error = (predicted.float() - tokens.float()).pow(2).mean(dim=-1)
        return {"masked_mse": (error * mask).sum() / mask.sum()}


class ReconstructionConfig(ObjectiveConfig):
    loss: Literal["mse", "l1"] = "mse"
    noise_scale: float = Field(0.0, ge=0, description="denoising: add this many sigma (from each pixel's ivar) of noise to the input, in training only")


def noisy(inputs: Mapping[str, torch.Tensor], scale: float) -> dict[str, torch.Tensor]:
    """A copy of one modality's inputs with Gaussian noise of ``scale`` x each pixel's own sigma added to the flux."""
    ivar = inputs["ivar"].float()
    sigma = torch.where(ivar > 0, ivar.clamp_min(1e-12).rsqrt(), torch.zeros_like(ivar))
    return {**inputs, "flux": inputs["flux"] + scale * sigma * torch.randn_like(sigma)}


class Reconstruction(Objective):
    """Reconstruct every token from the encoding (the autoencoder's objective); optionally from a
    noisier copy of the spectrum (a denoising autoencoder), always against the spectrum as observed."""

    config: ReconstructionConfig

    def __call__(self, network: Any, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        inputs = batch[network.modality]
        tokens = network.tokenize(inputs)
        source = network.tokenize(noisy(inputs, self.config.noise_scale)) if self.config.noise_scale and network.training else tokens
        predicted = network.encoder.reconstruct(network.encoder(source)).float()
        difference = predicted - tokens.float()
        value = difference.abs().mean() if self.config.loss == "l1" else difference.pow(2).mean()
        return {f"reconstruction_{self.config.loss}": value}


components = ComponentList()
components.register("objective", "masked_modeling", MaskedModelingConfig, "masked MSE with chunk masking (app. D.1)")(MaskedModeling)
components.register("objective", "reconstruction", ReconstructionConfig, "reconstruct all tokens (autoencoder pretraining)")(Reconstruction)
