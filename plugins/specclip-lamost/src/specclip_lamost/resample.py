"""Linear interpolation of spectra from their native grid onto another grid, carrying the mask."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Interpolation:
    """Where each target pixel falls on the source grid: between source pixels ``left`` and
    ``left + 1`` at fraction ``weight`` (0 = on ``left``); ``outside`` marks target pixels beyond
    the source grid."""

    left: np.ndarray
    weight: np.ndarray
    outside: np.ndarray

    @classmethod
    def between(cls, source: np.ndarray, target: np.ndarray) -> Interpolation:
        """The interpolation from the increasing grid ``source`` onto ``target``."""
        position = np.interp(target, source, np.arange(source.size, dtype=np.float64))
        outside = (target < source[0]) | (target > source[-1])
        left = np.clip(np.floor(position).astype(np.int64), 0, source.size - 2)
        return cls(left, position - left, outside)

    def values(self, data: np.ndarray) -> np.ndarray:
        """Linearly interpolated rows of ``data`` (N, L_source) -> (N, L_target)."""
        return (1.0 - self.weight) * data[:, self.left] + self.weight * data[:, self.left + 1]

    def bad(self, bad: np.ndarray) -> np.ndarray:
        """A target pixel is bad when a source pixel it draws on (with weight > 0) is bad, or it
        lies outside the source grid."""
        touches_left = bad[:, self.left] & (self.weight < 1.0)
        touches_right = bad[:, self.left + 1] & (self.weight > 0.0)
        return touches_left | touches_right | self.outside

    def ivar(self, ivar: np.ndarray, bad: np.ndarray) -> np.ndarray:
        """Inverse variance on the target grid: the variance is interpolated like the flux (the
        per-pixel noise level is kept; interpolation does not create information). Bad pixels get 0."""
        variance = np.where(bad, 0.0, 1.0 / np.where(bad, 1.0, ivar))
        out_bad = self.bad(bad)
        return np.where(out_bad, 0.0, 1.0 / np.where(out_bad, 1.0, self.values(variance)))
