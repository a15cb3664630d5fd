"""The MLP autoencoder ("OAE", paper appendix D.2).

Encoder: a linear projection of the whole input vector to ``hidden``, ``blocks`` residual MLP blocks
(pre-norm, ``hidden -> expansion * hidden -> hidden``) and a linear bottleneck. The decoder mirrors
it. The bottleneck is the embedding (one token). The paper size (~43M parameters for a 345-value
input) uses hidden 928, expansion 4, bottleneck 768.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from specclip_core.interfaces import Encoder, EncoderOutput
from specclip_core.nn.presets import apply_preset

PRESETS: dict[str, dict[str, Any]] = {
    "small": {"hidden": 256, "bottleneck": 256, "blocks": 2, "expansion": 2},
    "paper": {"hidden": 928, "bottleneck": 768, "blocks": 3, "expansion": 4},
}


class MLPAutoencoderConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    size: Literal["small", "paper"] = "small"
    hidden: int = Field(None, ge=8, validate_default=False)
    bottleneck: int = Field(None, ge=2, validate_default=False)
    blocks: int = Field(None, ge=0, validate_default=False)
    expansion: int = Field(None, ge=1, validate_default=False)
    dropout: float = Field(0.0, ge=0, lt=1)
    n_tokens: int | None = Field(None, description="filled from the tokenizer")
    token_dim: int | None = Field(None, description="filled from the tokenizer")

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        return apply_preset(PRESETS, data)


class ResidualMLP(nn.Module):
    """x + W2 GELU(W1 LayerNorm(x))."""

    def __init__(self, width: int, expansion: int, dropout: float = 0.0):
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(width), nn.Linear(width, expansion * width), nn.GELU(), nn.Dropout(dropout), nn.Linear(expansion * width, width)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


def mlp_stack(n_in: int, hidden: int, n_out: int, blocks: int, expansion: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(n_in, hidden),
        *(ResidualMLP(hidden, expansion, dropout) for _ in range(blocks)),
        nn.LayerNorm(hidden),
        nn.Linear(hidden, n_out),
    )


class MLPAutoencoder(Encoder):
    def __init__(self, config: MLPAutoencoderConfig):
        super().__init__()
        if config.n_tokens is None or config.token_dim is None:
            raise ValueError("MLPAutoencoder needs n_tokens and token_dim (filled from the tokenizer)")
        self.config, self.embed_dim = config, config.bottleneck
        self.n_tokens, self.token_dim = config.n_tokens, config.token_dim
        n_in = config.n_tokens * config.token_dim
        self.encoder = mlp_stack(n_in, config.hidden, config.bottleneck, config.blocks, config.expansion, config.dropout)
        self.decoder = mlp_stack(config.bottleneck, config.hidden, n_in, config.blocks, config.expansion, config.dropout)

    def forward(self, tokens: torch.Tensor, token_mask: torch.Tensor | None = None) -> EncoderOutput:
        if token_mask is not None:
            tokens = tokens.masked_fill(token_mask.unsqueeze(-1), 0.0)
        z = self.encoder(tokens.flatten(1))
        return EncoderOutput(tokens=z.unsqueeze(1), pooled=z)

    def reconstruct(self, output: EncoderOutput) -> torch.Tensor:
        return self.decoder(output.pooled).view(-1, self.n_tokens, self.token_dim)
