"""The masked spectrum transformer (paper section 2.1 and appendix D.1).

Tokens are embedded linearly, given learned positions, passed through pre-norm transformer blocks
and normalised. Hidden tokens (chunk masking, done by the ``masked_modeling`` objective) are set to
zero before embedding, as in appendix D eq. D3. A linear layer maps token embeddings back to token
values for pretraining. The pooled embedding is the mean over tokens.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from specclip_core.interfaces import Encoder, EncoderOutput
from specclip_core.nn.presets import apply_preset

PRESETS: dict[str, dict[str, Any]] = {
    "small": {"depth": 4, "width": 128, "heads": 4},
    "paper": {"depth": 6, "width": 768, "heads": 6},  # 42.7M parameters on 146 x 20-pixel tokens
}


class MaskedTransformerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    size: Literal["small", "paper"] = "small"
    depth: int = Field(None, ge=1, validate_default=False)
    width: int = Field(None, ge=8, validate_default=False)
    heads: int = Field(None, ge=1, validate_default=False)
    mlp_ratio: float = Field(4.0, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    n_tokens: int | None = Field(None, description="filled from the tokenizer")
    token_dim: int | None = Field(None, description="filled from the tokenizer")

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        return apply_preset(PRESETS, data)

    @model_validator(mode="after")
    def _heads_divide_width(self) -> MaskedTransformerConfig:
        if self.width % self.heads:
            raise ValueError(f"width {self.width} is not divisible by heads {self.heads}")
        return self


class SelfAttention(nn.Module):
    def __init__(self, width: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(b, t, c))


class Block(nn.Module):
    def __init__(self, width: int, heads: int, mlp_ratio: float, dropout: float):
        super().__init__()
        hidden = int(width * mlp_ratio)
        self.norm1, self.attn = nn.LayerNorm(width), SelfAttention(width, heads, dropout)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class MaskedTransformer(Encoder):
    def __init__(self, config: MaskedTransformerConfig):
        super().__init__()
        if config.n_tokens is None or config.token_dim is None:
            raise ValueError("MaskedTransformer needs n_tokens and token_dim (filled from the tokenizer)")
        self.config, self.embed_dim = config, config.width
        self.embed = nn.Linear(config.token_dim, config.width)
        self.position = nn.Parameter(torch.zeros(1, config.n_tokens, config.width))
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config.width, config.heads, config.mlp_ratio, config.dropout) for _ in range(config.depth))
        self.norm = nn.LayerNorm(config.width)
        self.to_tokens = nn.Linear(config.width, config.token_dim)
        nn.init.normal_(self.position, std=0.02)

    def forward(self, tokens: torch.Tensor, token_mask: torch.Tensor | None = None) -> EncoderOutput:
        if token_mask is not None:
            tokens = tokens.masked_fill(token_mask.unsqueeze(-1), 0.0)
        x = self.drop(self.embed(tokens) + self.position[:, : tokens.shape[1]])
        for block in self.blocks:
            x = block(x)
        x = self.norm(x)
        return EncoderOutput(tokens=x, pooled=x.mean(dim=1))

    def reconstruct(self, output: EncoderOutput) -> torch.Tensor:
        return self.to_tokens(output.tokens)
