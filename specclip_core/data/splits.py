"""Deterministic train / validation / test split by object id.

u = first 12 hex digits of sha256(str(id)) / 16**12; u < 0.81 train, u < 0.90 validation, else test.
The same id lands in the same split in every store, survey and run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Literal

import numpy as np

Split = Literal["train", "val", "test"]
SPLITS: tuple[Split, ...] = ("train", "val", "test")
TRAIN_BELOW, VAL_BELOW = 0.81, 0.90


def split_fraction(object_id: object) -> float:
    """The id's position u in [0, 1)."""
    return int(hashlib.sha256(str(object_id).encode()).hexdigest()[:12], 16) / 16**12


def split_of(object_id: object) -> Split:
    u = split_fraction(object_id)
    return "train" if u < TRAIN_BELOW else "val" if u < VAL_BELOW else "test"


def split_labels(ids: Iterable[object]) -> np.ndarray:
    """The split of each id, as an array of "train" / "val" / "test"."""
    return np.array([split_of(i) for i in ids], dtype="<U5")


def split_rows(ids: Iterable[object], split: Split | None) -> np.ndarray:
    """Row indices of ``ids`` that fall in ``split`` (all rows when ``split`` is None)."""
    ids = list(ids)
    if split is None:
        return np.arange(len(ids))
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    return np.flatnonzero(split_labels(ids) == split)


def hold_out(rows: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``rows`` split into those kept and a random ``fraction`` of them held out (in order, each;
    the draw fixed by ``seed``)."""
    held = np.zeros(len(rows), dtype=bool)
    held[np.random.default_rng(seed + 2).permutation(len(rows))[: round(fraction * len(rows))]] = True
    return rows[~held], rows[held]
