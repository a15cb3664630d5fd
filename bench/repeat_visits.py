"""Repeat visits: is a LAMOST spectrum's nearest neighbour another visit of the same star? For every embedding and the raw spectra.

    python bench/repeat_visits.py STORE NAME=CATALOGUE ... [-o bench/results/repeat_visits.md]

STORE: the 220 LAMOST DR8 spectra of ../shared/data/lamost-dr8-repeats, ingested (the `ingest_dr8`
stage of the lamost-small spec). Each CATALOGUE: those spectra embedded by one run's stage
(``specclip embed RUN STORE -o CATALOGUE --stage STAGE``; the rows must be the store's). For each
spectrum in a group of repeats, its nearest other spectrum among all 220 (the product's
``same_group_nearest_neighbour``: cosine, the spectrum itself left out) is the same star or not.
The raw baseline is the store's preprocessed (continuum-normalised) flux, by cosine and by Euclidean
distance. Stars are told two ways: groups.csv's GroupID (172 of the 220 spectra are listed) and the
header sky positions within 3 arcsec (all 220).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import faiss
import numpy as np

from specclip_core.data.store import SpectralStore
from specclip_core.retrieval.catalogue import Catalogue
from specclip_core.retrieval.groups import group_names, size_histogram, sky_groups
from specclip_core.retrieval.search import same_group_nearest_neighbour

HERE = Path(__file__).resolve().parent


def euclidean_same_group(vectors: np.ndarray, groups: np.ndarray) -> dict[str, float]:
    """As ``same_group_nearest_neighbour`` with the Euclidean nearest neighbour."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    index = faiss.IndexFlatL2(vectors.shape[1])
    index.add(vectors)
    _, found = index.search(vectors, 2)
    nearest = np.where(found[:, 0] == np.arange(len(vectors)), found[:, 1], found[:, 0])
    names, counts = np.unique(groups[groups != ""], return_counts=True)
    repeated = (groups != "") & np.isin(groups, names[counts >= 2])
    return {"n_spectra": int(repeated.sum()), "fraction": float((groups[nearest][repeated] == groups[repeated]).mean())}


def chance(groups: np.ndarray) -> float:
    """The fraction a random nearest neighbour would reach: (group size - 1) / (N - 1), averaged over repeated spectra."""
    names, counts = np.unique(groups[groups != ""], return_counts=True)
    size = dict(zip(names, counts, strict=True))
    repeated = [size[g] for g in groups if g and size[g] >= 2]
    return float(np.mean([(s - 1) / (len(groups) - 1) for s in repeated]))


def describe(catalogue: Catalogue) -> str:
    m = catalogue.manifest
    return f"run `{m['run_name']}`, stage `{m['stage']}` ({m['embedder']}, part {m['part']}), {catalogue.width} wide"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store")
    parser.add_argument("catalogues", nargs="+", metavar="NAME=CATALOGUE")
    parser.add_argument("-o", "--output", default=str(HERE / "results" / "repeat_visits.md"))
    args = parser.parse_args()
    store = SpectralStore.open(args.store)
    labels = store.labels(["GroupID", "ra", "dec"])
    groupings = {
        "GroupID": group_names(labels["GroupID"]),
        'sky 3"': sky_groups(labels["ra"], labels["dec"], 3.0),
    }
    flux = store.read("lamost_lrs")["flux"]
    inputs = {}
    for item in args.catalogues:
        name, path = item.split("=", 1)
        catalogue = Catalogue.open(path)
        if not (catalogue.ids == store.ids).all():
            raise SystemExit(f"{path}: its rows are not the store's ({args.store}); embed the store itself")
        inputs[name] = (describe(catalogue), catalogue.embeddings())
    lines = [
        "# Repeat visits: is the nearest neighbour another visit of the same star?",
        "",
        f"Written by `bench/repeat_visits.py` on {time.strftime('%Y-%m-%d')}. Data: the {len(store)} **real** LAMOST DR8 "
        "spectra of ../shared/data/lamost-dr8-repeats, ingested by the lamost-small spec's `ingest_dr8` stage "
        f"(preprocessed: {flux.shape[1]} pixels, continuum-normalised). For every spectrum in a group of repeats: is its "
        f"nearest other spectrum among all {len(store)} a visit of the same star? Nearest by cosine for embeddings "
        "(the product's `same_group_nearest_neighbour`); the raw spectra by cosine and by Euclidean distance.",
        "",
        "| input | what | " + " | ".join(f"{g}: fraction (spectra)" for g in groupings) + " |",
        "|---|---|" + "---|" * len(groupings),
    ]
    for name, (what, vectors) in inputs.items():
        cells = [same_group_nearest_neighbour(vectors, groups) for groups in groupings.values()]
        lines.append(f"| {name} | {what} | " + " | ".join(f"{c['fraction']:.3f} ({c['n_spectra']})" for c in cells) + " |")
    cosine = [same_group_nearest_neighbour(flux, groups) for groups in groupings.values()]
    lines.append("| raw, cosine | preprocessed flux | " + " | ".join(f"{c['fraction']:.3f} ({c['n_spectra']})" for c in cosine) + " |")
    euclid = [euclidean_same_group(flux, groups) for groups in groupings.values()]
    lines.append("| raw, Euclidean | preprocessed flux | " + " | ".join(f"{c['fraction']:.3f} ({c['n_spectra']})" for c in euclid) + " |")
    lines.append("| chance | a random other spectrum | " + " | ".join(f"{chance(g):.3f}" for g in groupings.values()) + " |")
    lines += [
        "",
        "Groups (size: number of groups): " + "; ".join(f"{g} {size_histogram(v)}" for g, v in groupings.items()) + ".",
        f"Machine: {os.cpu_count()} cores.",
    ]
    Path(args.output).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
