"""Search an index (see :mod:`.index`) with queries given by spectrum file, by id or by catalogue row.

Files are embedded with the run and stage of the index's catalogue (:mod:`.embed`); ids and rows are
looked up in a catalogue (the index's own, or ``--from`` another). A query of another modality than
the index's is cross-modal: both must come from the same align stage, in its shared (aligned) space.
The hits table has, per query and rank, the query's id, modality and source, the neighbour's id,
cosine (exact, from the catalogue's vectors), its labels and its source.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from specclip_core.components import get_modality
from specclip_core.data.store import SpectralStore, is_store
from specclip_core.data.stream import SpectraStream
from specclip_core.errors import CatalogueError, SpecCLIPError
from specclip_core.interfaces import SIMULATED
from specclip_core.retrieval.catalogue import Catalogue
from specclip_core.retrieval.index import Index
from specclip_core.retrieval.search import unit

BY = ("auto", "file", "id", "row")


@dataclass
class Queries:
    """Query vectors of one modality with each one's id and source (file or store)."""

    ids: np.ndarray
    vectors: np.ndarray
    sources: np.ndarray
    modality: str
    manifest: dict[str, Any]


def check_comparable(index_manifest: dict[str, Any], query_manifest: dict[str, Any], where: str) -> None:
    """An error unless queries described by ``query_manifest`` live in the index's embedding space."""
    same_stage = query_manifest.get("stage_key") == index_manifest.get("stage_key")
    widths = [(m.get("prefix") or {}).get("width") for m in (query_manifest, index_manifest)]
    if same_stage and widths[0] != widths[1]:
        raise CatalogueError(
            f"{where}: the queries keep {f'the first {widths[0]}' if widths[0] else 'all'} dimensions of the embedding, "
            f"the index {f'the first {widths[1]}' if widths[1] else 'all'}; embed both with the same --width"
        )
    if query_manifest["modality"] == index_manifest["modality"]:
        if not same_stage or query_manifest["part"] != index_manifest["part"]:
            raise CatalogueError(
                f"{where}: embedded by stage {query_manifest['stage']!r} ({query_manifest['part']}) of {query_manifest['run']}, "
                f"the index by {index_manifest['stage']!r} ({index_manifest['part']}) of {index_manifest['run']}; "
                "embed both with the same run, stage and part"
            )
        return
    aligned = "shared" in query_manifest.get("parts", {}) and "shared" in index_manifest.get("parts", {})
    if not (same_stage and aligned):
        raise CatalogueError(
            f"{where}: cross-modal search "
            f"({query_manifest['modality']} -> {index_manifest['modality']}) needs both embedded by one align stage; "
            f"the queries come from stage {query_manifest['stage']!r}, the index from {index_manifest['stage']!r}"
        )
    split = "private" in index_manifest["parts"]
    if (
        query_manifest["part"] != index_manifest["part"]
        or index_manifest["part"] == "private"
        or (split and index_manifest["part"] == "full")
    ):
        raise CatalogueError(
            f"{where}: cross-modal search compares the shared (aligned) parts; "
            f"the index holds the {index_manifest['part']!r} part{' of a split model' if split else ''} "
            f"and the queries the {query_manifest['part']!r} part "
            "(embed both with --part shared)"
        )


def from_catalogue(catalogue: Catalogue, ids: list[str] | None = None, rows: list[int] | None = None) -> Queries:
    """Queries that are rows of a catalogue, by id (every row holding it) or by row number."""
    if rows is not None:
        bad = [r for r in rows if not 0 <= r < len(catalogue)]
        if bad:
            raise CatalogueError(f"{catalogue.path}: no row {bad[0]} (rows are 0..{len(catalogue) - 1})")
        chosen = np.asarray(rows, dtype=np.int64)
    else:
        chosen = np.concatenate(list(catalogue.rows_of(list(ids or [])).values()))
    return Queries(
        catalogue.ids_at(chosen), catalogue.embeddings(chosen), catalogue.sources_at(chosen), catalogue.modality, catalogue.manifest
    )


def from_files(paths: list[str], index_manifest: dict[str, Any], modality: str | None = None) -> Queries:
    """Spectrum files embedded by the stage and part that embedded the index's catalogue (their own modality's embedder)."""
    from specclip_core.retrieval.embed import choose_embedder, embed_vectors
    from specclip_core.train.distributed import resolve_device

    missing = [p for p in paths if not Path(p).exists()]
    if missing:
        raise SpecCLIPError(
            f"{', '.join(missing)}: no such file (queries by file are spectrum files or directories; "
            "use --by id or --by row for catalogue rows)"
        )
    width = (index_manifest.get("prefix") or {}).get("width")
    chosen = choose_embedder(index_manifest["run"], modality, index_manifest["stage"], index_manifest["part"], paths, width)
    manifest = {
        "run": index_manifest["run"],
        "stage": chosen.stage,
        "stage_key": chosen.run.manifest(chosen.stage).get("key"),
        "modality": chosen.modality,
        "part": chosen.part,
        "parts": chosen.parts,
        "prefix": chosen.prefix,
    }
    check_comparable(index_manifest, manifest, ", ".join(paths))
    stream = SpectraStream(paths, get_modality(chosen.modality), progress=False)
    ids, vectors, sources = [], [], []
    names = np.array([str(p.absolute()) for p in stream.files])
    for batch in stream:
        ids.append(batch.spectra.ids)
        vectors.append(embed_vectors(chosen, batch.spectra, resolve_device("auto")))
        sources.append(names[batch.files])
    if not ids:
        reasons = "; ".join(f"{file}: {reason}" for file, _, reason, _ in stream.problems[:3]) or "no spectrum files found"
        raise SpecCLIPError(f"no {chosen.modality} spectrum read from {', '.join(paths)} ({reasons})")
    return Queries(np.concatenate(ids), np.concatenate(vectors), np.concatenate(sources), chosen.modality, manifest)


def resolve_queries(
    index: Index, queries: list[str], by: str = "auto", from_path: str | None = None, modality: str | None = None
) -> Queries:
    """The queries, read as ``by`` says (``auto``: files when every query is an existing path, else ids)."""
    if by not in BY:
        raise SpecCLIPError(f"--by must be one of {list(BY)}, got {by!r}")
    if by == "auto":
        by = "file" if all(Path(q).exists() for q in queries) else "id"
    index_manifest = index.catalogue.manifest
    if by == "file":
        return from_files(queries, index_manifest, modality)
    catalogue = Catalogue.open(from_path) if from_path else index.catalogue
    if by == "row":
        try:
            rows = [int(q) for q in queries]
        except ValueError:
            raise SpecCLIPError(f"--by row takes row numbers, got {queries}") from None
        found = from_catalogue(catalogue, rows=rows)
    else:
        found = from_catalogue(catalogue, ids=queries)
    check_comparable(index_manifest, found.manifest, str(catalogue.path))
    return found


def search_hits(index: Index, queries: Queries, k: int = 10) -> list[dict[str, Any]]:
    """One dict per (query, rank): the hits table's rows, nearest first by exact cosine."""
    if k < 1:
        raise SpecCLIPError(f"-k must be at least 1, got {k}")
    _, found = index.search(queries.vectors, k)
    catalogue = index.catalogue
    listed = np.unique(found[found >= 0])  # every neighbour's row, read once
    vectors, ids, sources = unit(catalogue.embeddings(listed)), catalogue.ids_at(listed), catalogue.sources_at(listed)
    labels = catalogue.labels(listed)
    query_units = unit(queries.vectors)
    table = []
    for number, rows in enumerate(found):
        at = np.searchsorted(listed, rows[rows >= 0])
        cosines = vectors[at] @ query_units[number]
        order = np.argsort(-cosines, kind="stable")
        for rank, (where, cosine) in enumerate(zip(at[order], cosines[order], strict=True), start=1):
            table.append(
                {
                    "query_id": queries.ids[number],
                    "query_modality": queries.modality,
                    "query_source": queries.sources[number],
                    "rank": rank,
                    "neighbour_id": ids[where],
                    "modality": catalogue.modality,
                    "cosine": float(cosine),
                    "row": int(listed[where]),
                }
                | {column: values[where] for column, values in labels.items()}
                | {"source": sources[where]}
            )
    return table


def write_hits(path: str | Path, table: list[dict[str, Any]]) -> None:
    """The hits table as CSV (cosines to 6 decimals, other numbers to 6 significant digits)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        columns = list(table[0]) if table else ["query_id", "rank", "neighbour_id", "cosine", "source"]
        writer.writerow(columns)
        for entry in table:
            writer.writerow([_format(column, entry[column]) for column in columns])


def _format(column: str, value: Any) -> str:
    if column == "cosine":
        return f"{value:.6f}"
    if isinstance(value, (float, np.floating)):
        return f"{value:.6g}"
    return str(value)


def spectrum_of(source: str, sid: str, modality: str) -> tuple[np.ndarray, np.ndarray, bool] | None:
    """(wavelength, preprocessed flux, simulated) of spectrum ``sid`` from its source store or file
    (simulated as the store or the file marks it); None when it is not there."""
    if is_store(source):
        store = SpectralStore.open(source)
        if modality not in store.modalities:
            return None
        rows = np.flatnonzero(store.ids == sid)
        if not rows.size:
            return None
        spectra = store.spectra(modality, rows=rows[:1], labels=False)
        return spectra.wavelength, spectra.flux[0], bool(store.simulated_rows(modality, rows[:1])[0])
    if not Path(source).is_file():
        return None
    for batch in SpectraStream([source], get_modality(modality), progress=False):
        rows = np.flatnonzero(batch.spectra.ids == sid)
        if rows.size:
            flags = batch.spectra.meta.get(SIMULATED, np.zeros(len(batch.spectra), bool))
            return batch.spectra.wavelength, batch.spectra.flux[rows[0]], bool(flags[rows[0]])
    return None


def neighbour_panels(queries: Queries, table: list[dict[str, Any]], index: Index, n_queries: int = 4, n_neighbours: int = 3) -> list:
    """What :func:`~specclip_core.report.neighbours.plot_neighbours` draws for the first ``n_queries``
    queries; an error naming the sources when no spectrum can be read back."""
    from specclip_core.report.neighbours import NeighbourPanel

    panels, missing = [], []
    catalogue_ids = index.catalogue.ids
    for number in range(min(n_queries, len(queries.ids))):
        sid, source = str(queries.ids[number]), str(queries.sources[number])
        hits = [entry for entry in table if entry["query_id"] == sid and entry["query_source"] == source][:n_neighbours]
        spectrum = spectrum_of(source, sid, queries.modality)
        if spectrum is None:
            missing.append(source)
        counterpart = None
        if queries.modality != index.catalogue.modality and sid in catalogue_ids:
            row = int(np.flatnonzero(catalogue_ids == sid)[0])
            counterpart = spectrum_of(str(index.catalogue.sources_at(np.array([row]))[0]), sid, index.catalogue.modality)
        neighbours = []
        for entry in hits:
            found = spectrum_of(str(entry["source"]), str(entry["neighbour_id"]), index.catalogue.modality)
            if found is None:
                missing.append(str(entry["source"]))
            else:
                neighbours.append((str(entry["neighbour_id"]), entry["cosine"], found))
        panels.append(NeighbourPanel(sid, queries.modality, index.catalogue.modality, spectrum, counterpart, neighbours))
    if missing and not any(p.spectrum is not None or p.neighbours for p in panels):
        raise SpecCLIPError(f"no spectrum to plot: the sources {sorted(set(missing))[:5]} are gone or no longer hold these ids")
    return panels
