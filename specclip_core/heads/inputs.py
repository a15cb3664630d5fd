"""What heads read: embeddings from a trained encoder, or the preprocessed spectra themselves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from specclip_core.util import progress_bar

if TYPE_CHECKING:
    from specclip_core.data.store import SpectralStore


def standardiser(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and standard deviation (NaN ignored; 1 where a column is constant), float32."""
    mean, std = np.nanmean(values, axis=0), np.nanstd(values, axis=0)
    return mean.astype(np.float32), np.where(std > 1e-8, std, 1.0).astype(np.float32)


PIXEL_ERRORS = ("none", "sigma", "inverse_sigma")
"""What a head may read of each pixel's flux error besides the embedding or spectra: nothing, the
error ``1 / sqrt(ivar)`` or its inverse ``sqrt(ivar)`` (0 where the pixel is unusable, either way)."""


def spectra_inputs(arrays: Mapping[str, np.ndarray]) -> np.ndarray:
    """A preprocessed spectrum as a head input: its statistics followed by its flux."""
    return np.concatenate([arrays["stats"], arrays["flux"]], axis=1).astype(np.float32)


def pixel_errors(arrays: Mapping[str, np.ndarray], kind: str = "sigma") -> np.ndarray:
    """Each pixel's flux error ``1 / sqrt(ivar)`` (``sigma``) or ``sqrt(ivar)`` (``inverse_sigma``),
    0 where the pixel is masked or has no ivar, float32."""
    if kind not in PIXEL_ERRORS[1:]:
        raise ValueError(f"unknown pixel errors {kind!r}; expected one of {PIXEL_ERRORS[1:]}")
    ivar, mask = np.nan_to_num(np.asarray(arrays["ivar"], dtype=np.float64)), np.asarray(arrays["mask"], dtype=bool)
    usable = (ivar > 0) & ~mask
    root = np.sqrt(np.where(usable, ivar, 1.0))
    return np.where(usable, 1.0 / root if kind == "sigma" else root, 0.0).astype(np.float32)


def spectra_input_errors(arrays: Mapping[str, np.ndarray], width: int) -> np.ndarray:
    """Each column's 1-sigma error for a head input of ``width`` columns that starts with the spectra
    inputs of ``arrays`` (:func:`spectra_inputs`): the flux pixels' :func:`pixel_errors`, 0 for the
    statistics and for every column after the flux (appended pixel errors or modalities)."""
    n_stats = arrays["stats"].shape[1]
    flux = pixel_errors(arrays)
    errors = np.zeros((len(flux), width), dtype=np.float32)
    errors[:, n_stats : n_stats + flux.shape[1]] = flux
    return errors


def with_errors(values: np.ndarray, arrays: Mapping[str, np.ndarray], kind: str = "sigma") -> np.ndarray:
    """``values`` (embeddings or spectra inputs) followed by the spectra's :func:`pixel_errors` of ``kind``."""
    return np.concatenate([values, pixel_errors(arrays, kind)], axis=1).astype(np.float32)


def embed_rows(encoder: Any, store: SpectralStore, rows: np.ndarray, batch_size: int = 512, progress: bool = True, device: str = "auto") -> np.ndarray:
    """Embeddings of ``rows`` of ``store`` by an embedder (see :mod:`specclip_core.nn.embedders`)."""
    from specclip_core.train.distributed import resolve_device

    device = resolve_device(device)
    out = []
    with progress_bar(len(rows), f"embedding {encoder.modality}", "spectrum", disable=not progress) as bar:
        for start in range(0, len(rows), 8192):
            part = store.read(encoder.modality, rows[start : start + 8192])
            out.append(encoder.embed(part["flux"], part["stats"], batch_size=batch_size, device=device))
            bar.update(len(out[-1]))
    return np.concatenate(out) if out else np.zeros((0, encoder.embed_dim), dtype=np.float32)


def head_inputs(
    kind: str,
    store: SpectralStore,
    modality: str,
    rows: np.ndarray,
    encoder: Any | None,
    progress: bool = True,
    errors: str = "none",
    other_modalities: Sequence[str] = (),
) -> np.ndarray:
    """A head's inputs for ``rows``: the spectra inputs (``kind`` ``spectra``) or the encoder's
    embeddings (``embedding``) of ``modality``; followed by its pixel errors of kind ``errors``
    unless ``none`` (:data:`PIXEL_ERRORS`), then by the spectra inputs of each of ``other_modalities``."""
    arrays = store.read(modality, rows) if kind == "spectra" or errors != "none" else None
    if kind == "spectra":
        values = spectra_inputs(arrays)
    elif encoder is None:
        raise ValueError("embedding inputs need an encoder")
    else:
        values = embed_rows(encoder, store, rows, progress=progress)
    if errors != "none":
        values = with_errors(values, arrays, errors)
    parts = [values] + [spectra_inputs(store.read(other, rows)) for other in other_modalities]
    return np.concatenate(parts, axis=1).astype(np.float32)
