"""The contracts of the networks (torch modules): :class:`Encoder`, :class:`Projection`,
:class:`Decoder` and what an encoder gives, :class:`EncoderOutput`.

Read them as ``specclip_core.interfaces.Encoder`` and so on: that module hands them out on first
use, so that reading and preprocessing spectra (readers, modalities, predict's reader processes)
never imports torch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class EncoderOutput:
    """Token embeddings ``[B, T, E]`` and one pooled embedding per spectrum ``[B, E]``."""

    tokens: torch.Tensor
    pooled: torch.Tensor


class Encoder(nn.Module, ABC):
    """Maps tokens ``[B, T, D]`` to embeddings; can map its output back to tokens for pretraining."""

    embed_dim: int

    @abstractmethod
    def forward(self, tokens: torch.Tensor, token_mask: torch.Tensor | None = None) -> EncoderOutput:
        """Encode. ``token_mask`` ``[B, T]`` is True where a token is hidden from the encoder."""

    @abstractmethod
    def reconstruct(self, output: EncoderOutput) -> torch.Tensor:
        """Tokens ``[B, T, D]`` predicted from an encoding (the pretraining decoder)."""


class Projection(nn.Module, ABC):
    """Maps an encoder's output into the aligned space: ``shared`` ``[B, S]`` and ``private`` ``[B, P]``."""

    shared_dim: int
    private_dim: int = 0

    @abstractmethod
    def forward(self, output: EncoderOutput) -> tuple[torch.Tensor, torch.Tensor | None]: ...


class Decoder(nn.Module, ABC):
    """Maps an embedding ``[B, E]`` to a spectrum ``[B, L]``."""

    @abstractmethod
    def forward(self, embedding: torch.Tensor) -> torch.Tensor: ...
