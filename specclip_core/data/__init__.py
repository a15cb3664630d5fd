"""Spectral stores, datasets, splits, readers and dataset cards."""

from specclip_core.data.dataset import ArrayDataset, StoreDataset, iterate_batches, to_device
from specclip_core.data.splits import split_fraction, split_of, split_rows
from specclip_core.data.store import ModalityLayout, SpectralStore

__all__ = [
    "ArrayDataset",
    "ModalityLayout",
    "SpectralStore",
    "StoreDataset",
    "iterate_batches",
    "split_fraction",
    "split_of",
    "split_rows",
    "to_device",
]
