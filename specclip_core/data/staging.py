"""Preprocessed spectra kept on disk while an ingest reads its inputs.

Ingest cannot write its store as it reads: which copy of a duplicated id to keep, which files fail
after some of their rows were read, and the kinds of the label columns are known only at the end.
:class:`Staging` appends each chunk's arrays to flat files in a scratch directory and keeps only the
per-row bookkeeping in memory (ids, meta, file, S/N, masked pixels); the store is then written from
it in chunks.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from specclip_core.interfaces import Spectra

_ARRAYS = {"flux": np.float32, "ivar": np.float32, "mask": np.bool_, "stats": np.float32}


def signal_to_noise(spectra: Spectra) -> np.ndarray:
    """Median of |flux| * sqrt(ivar) over each spectrum's good pixels (0 where none)."""
    with np.errstate(invalid="ignore", over="ignore"):
        values = np.where(spectra.mask, np.nan, np.abs(spectra.flux.astype(np.float64)) * np.sqrt(np.clip(spectra.ivar, 0, None)))
    out = np.zeros(len(spectra))
    rows = ~np.isnan(values).all(axis=1)
    out[rows] = np.nanmedian(values[rows], axis=1)
    return np.nan_to_num(out, nan=0.0, posinf=0.0)


class Staging:
    """Append-only spectra on one grid in ``directory`` (which the caller creates and removes)."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.wavelength: np.ndarray | None = None
        self.n_stats: int | None = None
        self.ids: list[np.ndarray] = []
        self.files: list[np.ndarray] = []
        self.snr: list[np.ndarray] = []
        self.masked: list[np.ndarray] = []
        self._meta: list[dict[str, np.ndarray]] = []
        self._handles = {name: open(self.directory / f"{name}.bin", "wb") for name in _ARRAYS}
        self.n_rows = 0

    def append(self, spectra: Spectra, files: np.ndarray) -> None:
        """Add preprocessed ``spectra``; ``files`` gives each row's file index."""
        if self.wavelength is None:
            self.wavelength = spectra.wavelength
            self.n_stats = None if spectra.stats is None else spectra.stats.shape[1]
        elif spectra.wavelength.shape != self.wavelength.shape or not np.allclose(spectra.wavelength, self.wavelength):
            raise ValueError("preprocessing gave spectra on two different grids")
        if (spectra.stats is None) != (self.n_stats is None):
            raise ValueError("preprocessing gave statistics for some spectra and not for others")
        for name, dtype in _ARRAYS.items():
            values = getattr(spectra, name)
            if values is not None:
                self._handles[name].write(np.ascontiguousarray(values, dtype=dtype).tobytes())
        self.ids.append(spectra.ids)
        self.files.append(np.asarray(files, dtype=np.int64))
        self.snr.append(signal_to_noise(spectra))
        self.masked.append(spectra.mask.sum(axis=1))
        self._meta.append(spectra.meta)
        self.n_rows += len(spectra)

    def column(self, name: str) -> np.ndarray:
        """A per-row bookkeeping column (``ids``, ``files``, ``snr``, ``masked``) for every row."""
        parts = getattr(self, name)
        return np.concatenate(parts) if parts else np.array([])

    def meta(self) -> dict[str, np.ndarray]:
        """Meta columns that every chunk has, for every row."""
        if not self._meta:
            return {}
        keys = [key for key in self._meta[0] if all(key in part for part in self._meta)]
        return {key: np.concatenate([part[key] for part in self._meta]) for key in keys}

    def chunks(self, rows: np.ndarray, meta: dict[str, np.ndarray], size: int) -> Iterator[Spectra]:
        """The spectra at ``rows`` (sorted indices) in pieces of ``size``, with ``meta`` (already
        restricted to ``rows``) as their meta."""
        for handle in self._handles.values():
            handle.flush()
        length = self.wavelength.size
        arrays = {}
        for name, dtype in _ARRAYS.items():
            width = self.n_stats if name == "stats" else length
            if width is None:
                continue
            path = self.directory / f"{name}.bin"
            arrays[name] = np.memmap(path, dtype=dtype, mode="r", shape=(self.n_rows, width)) if self.n_rows and width else np.zeros((self.n_rows, width), dtype)
        ids = self.column("ids")
        for start in range(0, len(rows), size):
            picked = rows[start : start + size]
            yield Spectra(
                self.wavelength,
                arrays["flux"][picked],
                arrays["ivar"][picked],
                arrays["mask"][picked],
                ids[picked],
                {key: values[start : start + size] for key, values in meta.items()},
                arrays["stats"][picked] if "stats" in arrays else None,
            )

    def close(self) -> None:
        for handle in self._handles.values():
            handle.close()
