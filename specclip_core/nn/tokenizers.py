"""Generic tokenizers: overlapping windows (one pixel per token is a window of 1) and the whole vector.

Both standardise the flux with the spectrum's own ``mean`` and ``std`` statistics when the modality
keeps them, and put the statistics first: as ``ceil(k / D)`` leading tokens for windows of D pixels
(one token for 20-pixel windows with two statistics; two tokens for one-pixel windows), or as the
first k entries of the single vector token. Statistics enter as asinh(value): linear near zero,
logarithmic for the rare spectra whose normalisation makes them huge, so those cannot dominate.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from specclip_core.interfaces import Tokenizer


class TokenizerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n_pixels: int | None = Field(None, description="filled from the modality")
    stats_names: tuple[str, ...] = Field((), description="filled from the modality")
    standardize: bool = Field(True, description="(flux - mean) / std with the spectrum's own statistics")


class WindowsConfig(TokenizerConfig):
    size: int = Field(20, ge=1, description="pixels per token")
    stride: int = Field(10, ge=1, description="pixels between token starts")


def _standardize(flux: torch.Tensor, stats: torch.Tensor, names: tuple[str, ...], enabled: bool) -> torch.Tensor:
    if not enabled or "mean" not in names or "std" not in names:
        return flux
    mean = stats[:, names.index("mean"), None]
    std = stats[:, names.index("std"), None].clamp_min(1e-6)
    return (flux - mean) / std


def _unstandardize(standard: torch.Tensor, stats: torch.Tensor, names: tuple[str, ...], enabled: bool) -> torch.Tensor:
    """The flux whose :func:`_standardize` form is ``standard``."""
    if not enabled or "mean" not in names or "std" not in names:
        return standard
    return standard * stats[:, names.index("std"), None].clamp_min(1e-6) + stats[:, names.index("mean"), None]


class WindowTokenizer(Tokenizer):
    """Windows of ``size`` pixels every ``stride`` pixels; the last window is padded to cover every pixel."""

    def __init__(self, config: WindowsConfig):
        if config.n_pixels is None:
            raise ValueError("WindowTokenizer needs n_pixels (filled from the modality)")
        self.config, self.names = config, tuple(config.stats_names)
        self.size, self.stride, self.n_pixels = config.size, config.stride, config.n_pixels
        self.n_windows = max(1, math.ceil(max(self.n_pixels - self.size, 0) / self.stride) + 1)
        self.padded = (self.n_windows - 1) * self.stride + self.size
        self.n_stats_tokens = math.ceil(len(self.names) / self.size) if self.names else 0
        self.n_tokens = self.n_windows + self.n_stats_tokens
        self.token_dim = self.size

    def stats_tokens(self) -> int:
        return self.n_stats_tokens

    def __call__(self, flux: torch.Tensor, stats: torch.Tensor) -> torch.Tensor:
        x = _standardize(flux, stats, self.names, self.config.standardize)
        x = F.pad(x, (0, self.padded - self.n_pixels))
        windows = x.unfold(1, self.size, self.stride)  # [B, n_windows, size]
        if not self.n_stats_tokens:
            return windows
        flat = F.pad(torch.asinh(stats.to(x.dtype)), (0, self.n_stats_tokens * self.size - stats.shape[1]))
        return torch.cat([flat.view(-1, self.n_stats_tokens, self.size), windows], dim=1)


class VectorTokenizer(Tokenizer):
    """The whole spectrum as one token: ``[stats..., standardised flux...]``."""

    def __init__(self, config: TokenizerConfig):
        if config.n_pixels is None:
            raise ValueError("VectorTokenizer needs n_pixels (filled from the modality)")
        self.config, self.names = config, tuple(config.stats_names)
        self.n_tokens, self.token_dim = 1, config.n_pixels + len(self.names)

    def __call__(self, flux: torch.Tensor, stats: torch.Tensor) -> torch.Tensor:
        x = _standardize(flux, stats, self.names, self.config.standardize)
        return torch.cat([torch.asinh(stats.to(x.dtype)), x], dim=1).unsqueeze(1)

    def flux_of(self, tokens: torch.Tensor, stats: torch.Tensor) -> torch.Tensor:
        """The flux ``[B, L]`` in tokens ``[B, 1, k + L]`` this tokenizer made (or a reconstruction of them)."""
        return _unstandardize(tokens[:, 0, len(self.names) :].float(), stats.float(), self.names, self.config.standardize)
