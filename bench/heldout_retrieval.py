"""Held-out retrieval on a paired run: cross-modal top-1/top-10 and the label agreement of in-modal neighbours.

    python bench/heldout_retrieval.py DIR [-o docs/results/heldout_retrieval.json]

DIR holds the test-split catalogues ``specclip embed`` wrote from a run's paired store::

    specclip embed RUN STORE -o DIR/xp_aligned.zarr     --modality gaia_xp    --stage align --part shared --split test
    specclip embed RUN STORE -o DIR/lam_aligned.zarr    --modality lamost_lrs --stage align --part shared --split test
    specclip embed RUN STORE -o DIR/xp_pretrained.zarr  --modality gaia_xp    --stage pretrain_xp     --split test
    specclip embed RUN STORE -o DIR/lam_pretrained.zarr --modality lamost_lrs --stage pretrain_lamost --split test

With ``all_xp_aligned.zarr`` and ``all_lam_aligned.zarr`` (the same without ``--split``) the
cross-modal queries are also searched among all the store's stars. Every search is the product's: a flat (exact) index of a catalogue (``build_index``) searched by
``Index.search``. Cross-modal: each test star's spectrum in one modality queried among all test stars
of the other (aligned space); a hit is the star's own spectrum. In-modal: each test star's 10 nearest
other test stars in the same modality (its own row left out), by pretrained and aligned embeddings and,
as a baseline, by the preprocessed spectra themselves (Euclidean distance on the store's flux); the
median absolute label differences between query and neighbours, against those of random pairs.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import faiss
import numpy as np

from specclip_core.data.store import SpectralStore
from specclip_core.retrieval.catalogue import Catalogue
from specclip_core.retrieval.index import build_index, load_index

LABELS = ("teff", "logg", "fe_h")
MODALITIES = {"xp": "gaia_xp", "lam": "lamost_lrs"}


def searched(catalogue: Path, queries: np.ndarray, k: int, work: Path) -> np.ndarray:
    """Rows of the ``k`` nearest catalogue rows of each query (exact cosine, the product's flat index)."""
    target = work / f"{catalogue.stem}.index"
    if not target.exists():
        build_index(catalogue, target, kind="flat", recall_queries=10)
    return load_index(target).search(queries, k)[1]


def cross_modal(directory: Path, work: Path) -> list[dict]:
    """Test queries among the other modality's test stars, and (when DIR has ``all_*_aligned.zarr``) among all its stars."""
    rows = []
    for among in ("", "all_"):
        for query, target in (("xp", "lam"), ("lam", "xp")):
            path = directory / f"{among}{target}_aligned.zarr"
            if not path.exists():
                continue
            queries, database = Catalogue.open(directory / f"{query}_aligned.zarr"), Catalogue.open(path)
            found = searched(path, queries.embeddings(), 10, work)
            partner = database.ids[found] == queries.ids[:, None]
            rows.append(
                {
                    "query": MODALITIES[query],
                    "target": MODALITIES[target],
                    "n": len(queries),
                    "database": len(database),
                    "top1": float(partner[:, 0].mean()),
                    "top10": float(partner.any(axis=1).mean()),
                    "chance_top10": 10 / len(database),
                }
            )
    return rows


def agreement(labels: dict[str, np.ndarray], neighbours: np.ndarray) -> dict[str, float]:
    """Median |label difference| between each query row and its neighbour rows (pairs with a missing label left out)."""
    out = {}
    for name in LABELS:
        values = labels[name].astype(float)
        difference = np.abs(values[neighbours] - values[:, None])
        out[name] = float(np.nanmedian(difference))
    return out


def in_modal(directory: Path, work: Path) -> list[dict]:
    rows = []
    rng = np.random.default_rng(0)
    for short, modality in MODALITIES.items():
        aligned = Catalogue.open(directory / f"{short}_aligned.zarr")
        labels = aligned.labels()
        n = len(aligned)
        random_rows = np.array([rng.choice(np.delete(np.arange(n), i), 10, replace=False) for i in range(n)])
        rows.append({"modality": modality, "by": "random pairs", **agreement(labels, random_rows)})
        store = SpectralStore.open(aligned.manifest["inputs"][0]["path"])
        order = {i: r for r, i in enumerate(store.ids)}
        flux = store.spectra(modality, rows=np.array([order[i] for i in aligned.ids]), labels=False).flux
        flux = np.ascontiguousarray(np.nan_to_num(flux), dtype=np.float32)
        raw = faiss.IndexFlatL2(flux.shape[1])
        raw.add(flux)
        _, found = raw.search(flux, 11)
        rows.append({"modality": modality, "by": "preprocessed spectra (Euclidean)", **agreement(labels, drop_self(found))})
        for kind in ("pretrained", "aligned"):
            path = directory / f"{short}_{kind}.zarr"
            catalogue = Catalogue.open(path)
            assert (catalogue.ids == aligned.ids).all()
            found = searched(path, catalogue.embeddings(), 11, work)
            stage = catalogue.manifest["stage"]
            rows.append({"modality": modality, "by": f"{kind} embedding (stage {stage}, cosine)", **agreement(labels, drop_self(found))})
    return rows


def drop_self(found: np.ndarray) -> np.ndarray:
    """The 10 nearest other rows of each row, from its 11 nearest."""
    own = np.arange(len(found))[:, None]
    return np.array([row[row != i][:10] for row, i in zip(found, own[:, 0], strict=True)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory")
    parser.add_argument("-o", "--output", default="docs/results/heldout_retrieval.json")
    args = parser.parse_args()
    directory = Path(args.directory)
    with tempfile.TemporaryDirectory(prefix="heldout-") as work:
        result = {"cross_modal": cross_modal(directory, Path(work)), "in_modal": in_modal(directory, Path(work))}
    Path(args.output).write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
