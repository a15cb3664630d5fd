"""MLP decoders from an embedding to a spectrum (paper appendix E.2): ``[in, m1*in, m2*in, ..., out]``.

In-modal reconstruction decoders read the whole projected embedding (shared and private parts
concatenated); cross-modal decoders read the shared part only.
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from specclip_core.interfaces import Decoder


class MLPDecoderConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    multipliers: list[float] = Field(default_factory=lambda: [4.0, 2.0, 1.0], min_length=1, description="hidden widths as multiples of the input width")
    in_dim: int | None = Field(None, description="filled from the projection")
    out_dim: int | None = Field(None, description="filled from the target modality")


class MLPDecoder(Decoder):
    def __init__(self, config: MLPDecoderConfig):
        super().__init__()
        if config.in_dim is None or config.out_dim is None:
            raise ValueError("mlp_decoder needs in_dim and out_dim (filled when the model is built)")
        layers: list[nn.Module] = []
        width = config.in_dim
        for multiplier in config.multipliers:
            hidden = max(2, int(round(multiplier * config.in_dim)))
            layers += [nn.Linear(width, hidden), nn.GELU()]
            width = hidden
        self.net = nn.Sequential(*layers, nn.Linear(width, config.out_dim))

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.net(embedding)
