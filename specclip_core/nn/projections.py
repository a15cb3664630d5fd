"""Projections from an encoder's output into the aligned space (paper appendix E.1).

``cross_attention``: a learned query attends over the token embeddings (4 heads), followed by a
residual MLP; for token sequences (masked transformer). ``mlp``: a linear map and an MLP, then a
residual MLP block; for one vector (MLP autoencoder). Both can split into a shared part (used for
contrastive alignment and cross-modal prediction) and a private part (kept for reconstruction):
two independent branches, as CLIP-split does; ``private_dim: 0`` gives a single branch.
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from specclip_core.interfaces import EncoderOutput, Projection
from specclip_core.nn.autoencoder import ResidualMLP


class ProjectionConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    shared_dim: int = Field(768, ge=2, description="width of the aligned (shared) embedding")
    private_dim: int = Field(0, ge=0, description="width of the private embedding (0: no split)")
    in_dim: int | None = Field(None, description="filled from the encoder")


class CrossAttentionConfig(ProjectionConfig):
    heads: int = Field(4, ge=1)
    mlp_ratio: float = Field(4.0, gt=0)


class CrossAttentionBranch(nn.Module):
    """One learned query attends over the tokens; LayerNorm; residual MLP. Returns ``[B, dim]``."""

    def __init__(self, in_dim: int, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.query = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.attention = nn.MultiheadAttention(dim, heads, kdim=in_dim, vdim=in_dim, batch_first=True)
        self.norm = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        attended, _ = self.attention(self.query.expand(tokens.shape[0], -1, -1), tokens, tokens, need_weights=False)
        x = self.norm(attended.squeeze(1))
        return x + self.mlp(x)


class CrossAttentionProjection(Projection):
    def __init__(self, config: CrossAttentionConfig):
        super().__init__()
        if config.in_dim is None:
            raise ValueError("cross_attention projection needs in_dim (filled from the encoder)")
        self.shared_dim, self.private_dim = config.shared_dim, config.private_dim
        self.shared = CrossAttentionBranch(config.in_dim, config.shared_dim, config.heads, config.mlp_ratio)
        self.private = CrossAttentionBranch(config.in_dim, config.private_dim, config.heads, config.mlp_ratio) if config.private_dim else None

    def forward(self, output: EncoderOutput) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.shared(output.tokens), self.private(output.tokens) if self.private is not None else None


class MLPProjectionConfig(ProjectionConfig):
    hidden: int = Field(1160, ge=2, description="width of the MLP between the input and the output")
    expansion: int = Field(4, ge=1, description="residual block width multiplier")


class MLPBranch(nn.Module):
    """Linear -> GELU -> Linear to ``dim``, then a residual MLP block. Returns ``[B, dim]``."""

    def __init__(self, in_dim: int, dim: int, hidden: int, expansion: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, dim), ResidualMLP(dim, expansion))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class MLPProjection(Projection):
    def __init__(self, config: MLPProjectionConfig):
        super().__init__()
        if config.in_dim is None:
            raise ValueError("mlp projection needs in_dim (filled from the encoder)")
        self.shared_dim, self.private_dim = config.shared_dim, config.private_dim
        self.shared = MLPBranch(config.in_dim, config.shared_dim, config.hidden, config.expansion)
        self.private = MLPBranch(config.in_dim, config.private_dim, config.hidden, config.expansion) if config.private_dim else None

    def forward(self, output: EncoderOutput) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.shared(output.pooled), self.private(output.pooled) if self.private is not None else None
