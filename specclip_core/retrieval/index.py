"""faiss indexes over an embedding catalogue, each with an index card.

An index is a directory: ``index.faiss`` (``faiss.write_index``) and ``card.json``. Every kind
searches unit vectors by cosine (inner product; ``ivfpq`` by the squared L2 distance, the same order): ``flat`` (``IndexFlatIP``, exact), ``ivfflat``
(``IndexIVFFlat``: ``nlist`` inverted lists of full vectors, ``nprobe`` lists searched), ``ivfpq``
(``IndexIVFPQ``: the same lists holding codes of ``m`` sub-quantizers of ``nbits`` bits, optionally
re-ranked by ``refine``) and ``hnsw`` (``IndexHNSWFlat``: ``hnsw_m`` links, ``ef_construction``,
``ef_search``). ``auto`` is ``flat`` below :data:`FLAT_BELOW` rows and ``hnsw`` above.

``ivfpq`` works in squared L2 distance: on unit vectors ``|q - x|^2 = 2 - 2 q.x``, the same order as
cosine (its scores are turned back into cosines). Real embeddings fill a narrow cone; with the
inner-product metric the lists' centroids are chosen by inner product, which favours long centroids
over near ones, so the residuals PQ encodes are large and its codes cannot order close neighbours
(recall@10 0.02-0.06); with L2 each vector goes to its nearest centroid and the codes hold small
residuals (bench/results/index_scale.md).
Trained kinds are trained on a seeded random sample of the catalogue. The card records size, kind, parameters, width, the
catalogue it indexes, build time, bytes and the recall@10 against exact search measured at build:
for a sample of the catalogue's own rows as queries, the fraction of the index's 10 nearest other
rows that are among the 10 exact nearest (ties within float32 precision count; the query itself is
left out of both).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from specclip_core.errors import CatalogueError
from specclip_core.retrieval.catalogue import ROW_CHUNK, Catalogue, CatalogueSet, manifest_digest
from specclip_core.retrieval.search import unit
from specclip_core.util import atomic_write_text

FLAT_BELOW = 100_000
KINDS = ("auto", "flat", "ivfflat", "ivfpq", "hnsw")
REFINES = ("none", "sq8", "flat")
"""ivfpq's re-ranking of ``k_factor`` x k PQ candidates: none, by 8-bit scalar codes (one byte a
dimension more per vector) or by the full vectors (faiss ``IndexRefine``)."""
L2_KINDS = ("ivfpq",)
L2_METRIC = "squared L2 on unit vectors (the order of cosine)"
INDEX_FILE = "index.faiss"
CARD = "card.json"
RECALL_K = 10
TIE = 1e-6
"""Cosines closer than this are ties for recall (float32 orders cosines near 1 only to about 1e-7)."""


@dataclass
class Index:
    """A loaded index: the faiss index, its card and the catalogue whose rows it returns."""

    faiss_index: Any
    card: dict[str, Any]
    catalogue: Catalogue | CatalogueSet
    parts: list[Any] = field(default_factory=list)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, catalogue rows) of the ``k`` nearest rows by cosine; rows are -1 where fewer were found."""
        if queries.shape[1] != self.card["width"]:
            raise CatalogueError(
                f"queries are {queries.shape[1]} wide, the index holds {self.card['width']}-wide embeddings ({self.catalogue.path})"
            )
        scores, rows = self.faiss_index.search(unit(queries), min(k, self.card["size"]))
        return (1 - scores / 2 if self.card["metric"] == L2_METRIC else scores), rows


def default_pq_m(width: int) -> int:
    """The most sub-quantizers with at least 8 dimensions each that divide ``width`` (1 at least)."""
    return max([m for m in range(1, width // 8 + 1) if width % m == 0] or [1])


def _parameters(
    kind: str,
    n: int,
    width: int,
    nlist: int | None,
    m: int | None,
    nbits: int,
    nprobe: int | None,
    hnsw_m: int,
    ef_construction: int,
    ef_search: int,
    refine: str = "none",
    k_factor: int = 10,
) -> dict[str, Any]:
    if kind == "flat":
        return {}
    if kind == "hnsw":
        return {"hnsw_m": hnsw_m, "ef_construction": ef_construction, "ef_search": ef_search}
    nlist = nlist or int(np.clip(4 * np.sqrt(n), 1, max(n // 39, 1)))
    nprobe = nprobe or min(nlist, max(8, nlist // 20))
    if kind == "ivfflat":
        return {"nlist": nlist, "nprobe": nprobe}
    m = m or default_pq_m(width)
    if width % m:
        raise CatalogueError(f"--m {m} must divide the embedding width {width}")
    if refine not in REFINES:
        raise CatalogueError(f"refine must be one of {list(REFINES)}, got {refine!r}")
    refined = {} if refine == "none" else {"refine": refine, "k_factor": k_factor}
    return {"nlist": nlist, "m": m, "nbits": nbits, "nprobe": nprobe} | refined


def _make(kind: str, width: int, parameters: dict[str, int]) -> Any:
    if kind == "flat":
        return faiss.IndexFlatIP(width)
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(width, parameters["hnsw_m"], faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = parameters["ef_construction"]
        index.hnsw.efSearch = parameters["ef_search"]
        return index
    if kind == "ivfflat":
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(width), width, parameters["nlist"], faiss.METRIC_INNER_PRODUCT)
        index.nprobe = parameters["nprobe"]
        return index
    index = faiss.IndexIVFPQ(faiss.IndexFlatL2(width), width, parameters["nlist"], parameters["m"], parameters["nbits"], faiss.METRIC_L2)
    index.nprobe = parameters["nprobe"]
    if "refine" not in parameters:
        return index
    codes = faiss.IndexFlatL2(width) if parameters["refine"] == "flat" else faiss.IndexScalarQuantizer(width, faiss.ScalarQuantizer.QT_8bit)
    refined = faiss.IndexRefine(index, codes)
    refined.k_factor = parameters["k_factor"]
    return refined


def _rows_in_blocks(catalogue: Catalogue):
    for start in range(0, len(catalogue), ROW_CHUNK):
        yield start, unit(catalogue.embeddings(slice(start, start + ROW_CHUNK)))


def exact_neighbours(catalogue: Catalogue, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(cosines, rows) of the exact ``k`` nearest catalogue rows, block by block (faiss ``ResultHeap``)."""
    heap = faiss.ResultHeap(len(queries), k, keep_max=True)
    for start, block in _rows_in_blocks(catalogue):
        flat = faiss.IndexFlatIP(block.shape[1])
        flat.add(block)
        scores, rows = flat.search(queries, min(k, len(block)))
        heap.add_result(
            np.ascontiguousarray(scores, dtype=np.float32), np.ascontiguousarray(np.where(rows >= 0, rows + start, -1), dtype=np.int64)
        )
    heap.finalize()
    return heap.D, heap.I


def recall_at_k(
    catalogue: Catalogue,
    queries: np.ndarray,
    query_rows: np.ndarray,
    found: np.ndarray,
    exact: tuple[np.ndarray, np.ndarray],
    k: int = RECALL_K,
    tie: float = TIE,
) -> float:
    """Mean over queries of the fraction of the index's first ``k`` rows (the query's own left out)
    that are among the exact ``k`` nearest: whose exact cosine reaches the ``k``-th exact cosine
    less ``tie`` (rows closer than float32 can order are ties, either of which is right)."""
    listed = np.unique(found[found >= 0])
    vectors = unit(catalogue.embeddings(listed))
    total = 0.0
    for number, (row, approx) in enumerate(zip(query_rows, found, strict=True)):
        scores, rows = exact[0][number], exact[1][number]
        truth = scores[(rows != row) & (rows >= 0)][:k]
        approx = approx[(approx != row) & (approx >= 0)][:k]
        if truth.size:
            cosines = vectors[np.searchsorted(listed, approx)] @ queries[number]
            total += float((cosines >= truth[-1] - tie).sum()) / truth.size
    return total / max(len(query_rows), 1)


def _sharded(parts: list[Any], width: int) -> Any:
    """One index over ``parts`` (faiss ``IndexShards``): rows numbered through the parts in order."""
    if len(parts) == 1:
        return parts[0]
    shards = faiss.IndexShards(width, False, True)
    for part in parts:
        shards.add_shard(part)
    return shards


def build_index(
    catalogue_path: str | Path | list[str | Path],
    output: str | Path,
    kind: str = "auto",
    nlist: int | None = None,
    m: int | None = None,
    nbits: int = 8,
    nprobe: int | None = None,
    hnsw_m: int = 32,
    ef_construction: int = 80,
    ef_search: int = 64,
    train_rows: int | None = None,
    refine: str = "none",
    k_factor: int = 10,
    recall_queries: int = 1000,
    seed: int = 0,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Build an index of the catalogue at ``catalogue_path`` (or of several, the shards of one
    catalogue: one faiss index each, trained once, searched together through ``IndexShards``) into
    the directory ``output``; return its card."""
    started = time.perf_counter()
    output = Path(output)
    if kind not in KINDS:
        raise CatalogueError(f"index kind must be one of {list(KINDS)}, got {kind!r}")
    if os.path.lexists(output) and not (overwrite and (output / CARD).is_file()):
        raise CatalogueError(
            f"{output}: already exists"
            + ("" if (output / CARD).is_file() else " and is not an index")
            + (" (pass --overwrite to replace it)" if not overwrite else "")
        )
    shards = [Catalogue.open(p) for p in ([catalogue_path] if isinstance(catalogue_path, (str, Path)) else catalogue_path)]
    catalogue = shards[0] if len(shards) == 1 else CatalogueSet(shards)
    n, width = len(catalogue), catalogue.width
    if n == 0:
        raise CatalogueError(f"{catalogue.path}: the catalogue is empty")
    kind = ("flat" if n < FLAT_BELOW else "hnsw") if kind == "auto" else kind
    parameters = _parameters(kind, n, width, nlist, m, nbits, nprobe, hnsw_m, ef_construction, ef_search, refine, k_factor)
    index = _make(kind, width, parameters)
    rng = np.random.default_rng(seed)
    trained_on = 0
    if not index.is_trained:
        codes = 2 ** parameters.get("nbits", 0)
        trained_on = min(n, train_rows or max(50 * parameters["nlist"], 40 * codes, 10_000))
        needed = max(parameters["nlist"], codes)
        if trained_on < needed:
            raise CatalogueError(
                f"{catalogue.path}: {trained_on} rows to train on, "
                f"but {kind} with {', '.join(f'{k} {v}' for k, v in parameters.items())} needs at least {needed}; "
                "lower --nlist / --nbits or use --kind flat"
            )
        index.train(unit(catalogue.embeddings(np.sort(rng.choice(n, trained_on, replace=False)))))
    parts = [index] if len(shards) == 1 else [faiss.clone_index(index) for _ in shards]
    for part, shard in zip(parts, shards, strict=True):
        for _, block in _rows_in_blocks(shard):
            part.add(block)
    index = _sharded(parts, width)
    build_seconds = time.perf_counter() - started
    query_rows = np.sort(rng.choice(n, min(recall_queries, n), replace=False))
    queries = unit(catalogue.embeddings(query_rows))
    k = min(RECALL_K + 1, n)
    exact = exact_neighbours(catalogue, queries, k)
    searched = time.perf_counter()
    _, found = index.search(queries, k)
    ms_per_query = 1000 * (time.perf_counter() - searched) / len(queries)
    partial = output.with_name(f".{output.name}.building")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    files = [INDEX_FILE] if len(parts) == 1 else [f"shard-{number}.faiss" for number in range(len(parts))]
    for part, name in zip(parts, files, strict=True):
        faiss.write_index(part, str(partial / name))
    manifest = catalogue.manifest
    card = {
        "kind": kind,
        "metric": L2_METRIC if kind in L2_KINDS else "inner product on unit vectors (cosine)",
        "size": n,
        "width": width,
        "parameters": parameters,
        "trained_on_rows": trained_on,
        "recall@10": recall_at_k(catalogue, queries, query_rows, found, exact) if n > 1 else None,
        "recall_queries": len(query_rows),
        "ms_per_query": ms_per_query,
        "threads": faiss.omp_get_max_threads(),
        "build_seconds": build_seconds,
        "index_bytes": sum((partial / name).stat().st_size for name in files),
        "faiss_version": faiss.__version__,
        "catalogue": {key: manifest.get(key) for key in ("run", "run_name", "stage", "modality", "part", "prefix")},
        "shards": [
            {"path": str(shard.path.absolute()), "rows": len(shard), "manifest_digest": manifest_digest(shard.manifest), "file": name}
            for shard, name in zip(shards, files, strict=True)
        ],
    }
    atomic_write_text(partial / CARD, json.dumps(card, indent=2))
    if output.exists():
        shutil.rmtree(output)
    os.replace(partial, output)
    return card


def load_index(path: str | Path) -> Index:
    """An index built by :func:`build_index`, with its catalogue (an error when that changed since)."""
    path = Path(path)
    if not (path / CARD).is_file():
        raise CatalogueError(f"{path}: no index here (expected {CARD} and the faiss files written by 'specclip index build')")
    card = json.loads((path / CARD).read_text())
    shards, parts = [], []
    for entry in card["shards"]:
        shard = Catalogue.open(entry["path"])
        if len(shard) != entry["rows"] or manifest_digest(shard.manifest) != entry["manifest_digest"]:
            raise CatalogueError(
                f"{path}: its catalogue {shard.path} changed since the index was built "
                f"({len(shard)} rows now, {entry['rows']} then); rebuild the index"
            )
        if not (path / entry["file"]).is_file():
            raise CatalogueError(f"{path}: {entry['file']} is missing; rebuild the index")
        shards.append(shard)
        parts.append(faiss.read_index(str(path / entry["file"])))
    catalogue = shards[0] if len(shards) == 1 else CatalogueSet(shards)
    return Index(_sharded(parts, card["width"]), card, catalogue, parts)
