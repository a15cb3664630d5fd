"""Torch-side access to a store: a Dataset returning batches keyed by modality name, and a batch iterator.

A batch is::

    {"ids": array of str, "rows": LongTensor[B],
     "<modality>": {"flux": [B, L], "ivar": [B, L], "mask": [B, L] bool, "stats": [B, k]},
     "labels": {"<column>": [B] float32}}
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from specclip_core.data.splits import Split, split_rows
from specclip_core.data.store import SpectralStore

IN_MEMORY_LIMIT_BYTES = 4 * 1024**3


class StoreDataset(torch.utils.data.Dataset):
    """Rows of a store (optionally one split of it), read as batches keyed by modality name.

    ``in_memory`` (default: when the selected rows fit in 4 GiB) reads the rows once; otherwise each
    batch is read from the store.
    """

    def __init__(
        self,
        store: SpectralStore | str | Path,
        modalities: Sequence[str] | None = None,
        split: Split | None = None,
        labels: Sequence[str] = (),
        rows: np.ndarray | None = None,
        in_memory: bool | None = None,
    ):
        self.store = store if isinstance(store, SpectralStore) else SpectralStore.open(store)
        self.modalities = list(modalities) if modalities is not None else self.store.modalities
        for modality in self.modalities:
            self.store.wavelength(modality)  # raises a clear error for a modality not in the store
        self.label_names = list(labels)
        self.store.labels(self.label_names, rows=slice(0, 0))  # validates the column names
        ids = self.store.ids
        selected = split_rows(ids, split)
        if rows is not None:
            selected = np.intersect1d(selected, np.asarray(rows, dtype=np.int64))
        self.rows = selected
        self.ids = ids[selected]
        if in_memory is None:
            row_bytes = sum(9 * self.store.wavelength(m).size for m in self.modalities)
            in_memory = row_bytes * len(selected) <= IN_MEMORY_LIMIT_BYTES
        self._cache: dict[str, Any] | None = None
        if in_memory:
            self._cache = {m: self.store.read(m, self.rows) for m in self.modalities}
            self._cache["labels"] = self.store.labels(self.label_names, rows=self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitems__(self, indices: Sequence[int]) -> dict[str, Any]:
        indices = np.asarray(indices, dtype=np.int64)
        batch: dict[str, Any] = {"ids": self.ids[indices], "rows": torch.from_numpy(self.rows[indices])}
        for modality in self.modalities:
            arrays = self._cache[modality] if self._cache else self.store.read(modality, self.rows[indices])
            if self._cache:
                arrays = {name: values[indices] for name, values in arrays.items()}
            batch[modality] = {name: torch.from_numpy(np.ascontiguousarray(values)) for name, values in arrays.items()}
        labels = (
            {k: v[indices] for k, v in self._cache["labels"].items()}
            if self._cache
            else self.store.labels(self.label_names, rows=self.rows[indices])
        )
        batch["labels"] = {k: torch.from_numpy(v.astype(np.float32)) for k, v in labels.items()}
        return batch

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.__getitems__([index])

    def label_array(self, column: str) -> np.ndarray:
        """All values of one label over this dataset's rows."""
        return self.store.labels([column], rows=self.rows)[column]


class ArrayDataset:
    """In-memory rows batched like :class:`StoreDataset`: ``{"ids", "rows", "inputs": [B, D], "targets": [B, k]}``,
    with ``"errors": [B, D]`` when the inputs' errors are given and ``"weights": [B]`` when the rows' loss
    weights are.

    Used for heads, which train on embeddings or spectra already in memory. NaN targets are missing.
    """

    def __init__(self, inputs: np.ndarray, targets: np.ndarray, ids: Sequence[str], errors: np.ndarray | None = None, weights: np.ndarray | None = None):
        self.inputs = torch.as_tensor(np.asarray(inputs, dtype=np.float32))
        self.targets = torch.as_tensor(np.asarray(targets, dtype=np.float32).reshape(len(self.inputs), -1))
        self.ids = np.asarray(ids).astype(str)
        self.errors = None if errors is None else torch.as_tensor(np.asarray(errors, dtype=np.float32))
        self.weights = None if weights is None else torch.as_tensor(np.asarray(weights, dtype=np.float32).reshape(-1))
        if len(self.ids) != len(self.inputs):
            raise ValueError(f"ArrayDataset: {len(self.ids)} ids for {len(self.inputs)} rows")
        if self.errors is not None and self.errors.shape != self.inputs.shape:
            raise ValueError(f"ArrayDataset: errors of shape {tuple(self.errors.shape)} for inputs of shape {tuple(self.inputs.shape)}")
        if self.weights is not None and len(self.weights) != len(self.inputs):
            raise ValueError(f"ArrayDataset: {len(self.weights)} weights for {len(self.inputs)} rows")

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitems__(self, indices: Sequence[int]) -> dict[str, Any]:
        index = torch.as_tensor(np.asarray(indices, dtype=np.int64))
        batch = {"ids": self.ids[index.numpy()], "rows": index, "inputs": self.inputs[index], "targets": self.targets[index]}
        if self.errors is not None:
            batch["errors"] = self.errors[index]
        if self.weights is not None:
            batch["weights"] = self.weights[index]
        return batch


def epoch_order(n: int, seed: int, epoch: int, shuffle: bool = True) -> np.ndarray:
    """The order rows are visited in one epoch: a permutation fixed by (seed, epoch)."""
    if not shuffle:
        return np.arange(n)
    return np.random.default_rng([seed, epoch]).permutation(n)


def iterate_batches(
    dataset: StoreDataset | ArrayDataset,
    batch_size: int,
    *,
    shuffle: bool = False,
    seed: int = 0,
    epoch: int = 0,
    rank: int = 0,
    world_size: int = 1,
    drop_last: bool = False,
    max_batches: int | None = None,
) -> Iterator[dict[str, Any]]:
    """Batches of ``dataset``. Under DDP every rank gets the same number of batches from its own shard."""
    order = epoch_order(len(dataset), seed, epoch, shuffle)
    if world_size > 1:
        per_rank = len(order) // world_size
        order = order[rank::world_size][:per_rank]
    n_batches = len(order) // batch_size if drop_last else -(-len(order) // batch_size)
    if max_batches is not None:
        n_batches = min(n_batches, max_batches)
    for b in range(n_batches):
        yield dataset.__getitems__(order[b * batch_size : (b + 1) * batch_size])


def count_batches(n_rows: int, batch_size: int, world_size: int = 1, drop_last: bool = False, max_batches: int | None = None) -> int:
    per_rank = n_rows // world_size if world_size > 1 else n_rows
    n = per_rank // batch_size if drop_last else -(-per_rank // batch_size)
    return n if max_batches is None else min(n, max_batches)


def to_device(batch: Any, device: torch.device) -> Any:
    """Move every tensor of a (nested) batch to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch
