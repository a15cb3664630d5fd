"""Cosine-similarity search with faiss (exact inner product on unit vectors)."""

from __future__ import annotations

import faiss
import numpy as np


def unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32, as faiss wants)."""
    x = np.asarray(x, dtype=np.float32)
    return np.ascontiguousarray(x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12))


def cosine_search(queries: np.ndarray, database: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(similarities, indices) of the ``k`` most similar database rows for each query row."""
    index = faiss.IndexFlatIP(database.shape[1])
    index.add(unit(database))
    return index.search(unit(queries), k)


def retrieval_accuracy(queries: np.ndarray, database: np.ndarray, ks: tuple[int, ...] = (1, 10)) -> dict[str, float]:
    """Fraction of queries i whose own row i is among the top-k of ``database`` by cosine similarity."""
    _, found = cosine_search(queries, database, max(ks))
    truth = np.arange(len(queries))[:, None]
    return {f"top{k}": float((found[:, :k] == truth).any(axis=1).mean()) for k in ks}


def same_group_nearest_neighbour(vectors: np.ndarray, groups: np.ndarray) -> dict[str, float]:
    """Among rows whose group has at least two members, the fraction whose nearest other row
    (cosine, over all rows) is in the same group."""
    groups = np.asarray(groups).astype(str)
    valid = groups != ""
    names, counts = np.unique(groups[valid], return_counts=True)
    repeated = valid & np.isin(groups, names[counts >= 2])
    _, found = cosine_search(vectors, vectors, 2)
    self_first = found[:, 0] == np.arange(len(vectors))
    nearest = np.where(self_first, found[:, 1], found[:, 0])
    hits = groups[nearest][repeated] == groups[repeated]
    return {"n_spectra": int(repeated.sum()), "n_groups": int((counts >= 2).sum()), "fraction": float(hits.mean()) if hits.size else float("nan")}
