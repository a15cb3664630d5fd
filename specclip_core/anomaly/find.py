"""``specclip anomalies``: score every spectrum of the inputs under an align stage, rank, draw the strangest.

Inputs are stores (a row may hold several of the model's modalities: a star seen by several
instruments; a modality whose pixels are all masked counts as absent) or files of one modality.
The reference is a seeded sample of the training split of the store the stage trained on: the same
scores there give each score's percentile (see :mod:`.rank`) and the neighbourhoods for the density
score. The table (CSV, ECSV or FITS) is sorted by ``combined``; ``row`` is a star's row in its store
(-1 for a file's spectrum); the gallery shows the top stars with their reconstructions and translations.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from specclip_core.saved_alignment import SavedAlignment, load_alignment
from specclip_core.anomaly.rank import Reference, combined_score
from specclip_core.anomaly.scores import DensityReference, batch_scores, score_names
from specclip_core.catalog import catalog_format, write_catalog
from specclip_core.components import plugin_versions
from specclip_core.data.splits import split_rows
from specclip_core.data.store import SpectralStore, is_store
from specclip_core.data.stream import DEFAULT_CHUNK
from specclip_core.errors import SpecCLIPError
from specclip_core.interfaces import SIMULATED
from specclip_core.predict import PredictInputs, input_modalities
from specclip_core.util import progress_bar

REFERENCE_ROWS = 5000
SEED = 0


@dataclass
class Batch:
    """Stars scored together: per modality its arrays and ``present``; ids, sources, rows, simulated flags."""

    arrays: dict[str, dict[str, np.ndarray]]
    ids: np.ndarray
    source: np.ndarray
    row: np.ndarray
    simulated: dict[str, np.ndarray]


@dataclass
class AnomalyReport:
    output: str
    stage: str
    n_rows: int = 0
    scores: list[str] = field(default_factory=list)
    reference_rows: int = 0
    gallery: str | None = None
    top: list[tuple[str, float, str]] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0


def store_batches(store: SpectralStore, modalities: list[str], rows: np.ndarray, chunk: int) -> Iterator[Batch]:
    """``rows`` of a store in batches of ``chunk``, with every one of ``modalities`` the store holds."""
    held = [m for m in modalities if m in store.modalities]
    source = str(store.path.absolute())
    for start in range(0, len(rows), chunk):
        part = rows[start : start + chunk]
        arrays = {}
        for m in held:
            values = store.read(m, part)
            arrays[m] = values | {"present": ~values["mask"].all(axis=1)}
        simulated = {m: store.simulated_rows(m, part) for m in held}
        yield Batch(arrays, store.ids[part] if len(store) else np.array([], str), np.full(len(part), source), part, simulated)


def file_batches(inputs: PredictInputs, modality: str) -> Iterator[Batch]:
    """The files' spectra of ``modality``, as :class:`Batch` es whose ``row`` is each one's file index."""
    for spectra, sources, files in inputs:
        arrays = {modality: {"flux": spectra.flux, "ivar": spectra.ivar, "mask": spectra.mask, "stats": spectra.stats, "present": np.ones(len(spectra), bool)}}
        flags = spectra.meta.get(SIMULATED, np.zeros(len(spectra), bool)).astype(bool)
        yield Batch(arrays, spectra.ids, sources, -1 - np.asarray(files), {modality: flags})


def training_reference(alignment: SavedAlignment, n_rows: int, chunk: int = 1024, progress: bool = True) -> tuple[Reference, DensityReference, int]:
    """Scores on a seeded sample of ``n_rows`` of the training split (all of it when smaller)."""
    store = alignment.training_store()
    missing = [m for m in alignment.model.modalities if m not in store.modalities]
    if missing:
        raise SpecCLIPError(f"{store.path}: the training store of stage {alignment.stage!r} lacks {missing}")
    train = split_rows(store.ids, "train")
    if not len(train):
        raise SpecCLIPError(f"{store.path}: no training rows to compare with")
    rows = np.sort(np.random.default_rng(SEED).choice(train, size=min(n_rows, len(train)), replace=False))
    parts: dict[str, list[np.ndarray]] = {}
    shared: dict[str, list[np.ndarray]] = {m: [] for m in alignment.model.modalities}
    with progress_bar(len(rows), "scoring the training reference", "spectrum", disable=not progress) as bar:
        for batch in store_batches(store, alignment.model.modalities, rows, chunk):
            scores, embeddings = batch_scores(alignment.model, batch.arrays, None)
            for name, values in scores.items():
                parts.setdefault(name, []).append(values)
            for m, values in embeddings.items():
                shared[m].append(values[batch.arrays[m]["present"]])
            bar.update(len(batch.ids))
    density = DensityReference({m: np.concatenate(v) for m, v in shared.items()})
    scores = {name: np.concatenate(v) for name, v in parts.items()}
    for m in alignment.model.modalities:
        scores[f"density_{m}"] = density.score(m, np.concatenate(shared[m]), exclude_self=True)
    return Reference(scores), density, len(rows)


def _inputs(paths: list[str], modalities: list[str], chunk: int, progress: bool) -> tuple[Iterator[Batch], PredictInputs | None]:
    stores = [p for p in paths if is_store(p)]
    files = [p for p in paths if not is_store(p)]
    inputs = None

    def batches() -> Iterator[Batch]:
        for path in stores:
            store = SpectralStore.open(path)
            if not set(store.modalities) & set(modalities):
                raise SpecCLIPError(f"{path}: holds {store.modalities}, none of the modalities the align stage knows ({modalities})")
            with progress_bar(len(store), f"scoring {Path(path).name}", "spectrum", disable=not progress) as bar:
                for batch in store_batches(store, modalities, np.arange(len(store)), chunk):
                    yield batch
                    bar.update(len(batch.ids))
        if inputs is not None:
            yield from file_batches(inputs, modality)

    if files:
        found = sorted(input_modalities(files) & set(modalities))
        if len(found) != 1:
            raise SpecCLIPError(
                f"{', '.join(files)}: files must hold one of the modalities the align stage knows ({modalities}); they hold {found or 'none'}"
                " (give each modality's files in a separate call, or a store pairing them)"
            )
        modality = found[0]
        inputs = PredictInputs(files, modality, chunk, progress)
    return batches(), inputs


def find_anomalies(
    run_dir: str | Path,
    paths: list[str],
    output: str | Path,
    stage: str | None = None,
    reference_rows: int = REFERENCE_ROWS,
    top: int = 20,
    gallery: str | Path | None = None,
    chunk: int = DEFAULT_CHUNK,
    progress: bool = True,
) -> AnomalyReport:
    """Score and rank the spectra of ``paths``; write the table ``output`` and, with ``gallery``, the top ``top``."""
    started = time.perf_counter()
    output = Path(output)
    catalog_format(output)
    alignment = load_alignment(run_dir, stage)
    model = alignment.model
    batches, inputs = _inputs(paths, model.modalities, chunk, progress)
    reference, density, n_reference = training_reference(alignment, reference_rows, progress=progress)
    names = score_names(model)
    columns: dict[str, list[np.ndarray]] = {}
    best: list[dict[str, Any]] = []
    for batch in batches:
        scores, _ = batch_scores(model, batch.arrays, density)
        combined, excess, most = combined_score(reference, scores)
        n = len(batch.ids)
        held = [m for m in model.modalities if m in batch.arrays]
        present = {m: batch.arrays[m]["present"] for m in held}
        block = {
            "id": batch.ids,
            "source": batch.source,
            "row": batch.row,
            "modalities": np.array(["+".join(m for m in held if present[m][i]) for i in range(n)]),
            "simulated": np.array(["+".join(m for m in held if present[m][i] and batch.simulated[m][i]) for i in range(n)]),
            "combined": np.round(combined, 3),
            "excess": np.round(excess, 3),
            "most_unusual": np.array(reference.names, dtype=object)[most] if reference.names else np.full(n, ""),
        }
        block |= {name: scores[name].astype(np.float32) for name in names}
        block |= {f"pct_{name}": np.round(reference.percentile(name, scores[name]), 2) for name in names}
        for key, values in block.items():
            columns.setdefault(key, []).append(np.asarray(values))
        best = _keep_best(best, batch, combined, excess, held, top)
    if not columns:
        rejected = inputs.rejected if inputs else []
        first = "; ".join(f"{where}: {reason}" for where, reason in rejected[:3]) or "no input spectra found"
        raise SpecCLIPError(f"no spectrum scored from {', '.join(map(str, paths))} ({len(rejected)} inputs rejected; {first})")
    table = {key: np.concatenate(values) for key, values in columns.items()}
    if inputs is not None and inputs.failed:  # rows of a file that failed part-way are dropped
        keep = ~np.isin(table["row"], [-1 - f for f in sorted(inputs.failed)])
        table = {key: values[keep] for key, values in table.items()}
    table["row"] = np.where(table["row"] < 0, -1, table["row"])
    order = np.lexsort((-table["excess"], -table["combined"]))
    table = {"rank": np.arange(1, len(order) + 1)} | {key: values[order] for key, values in table.items()}
    header = {
        "MODEL": f"specclip run {alignment.run.name()}, stage {alignment.stage}",
        "TRAINED": alignment.trained_on(),
        "SIMTRAIN": bool(alignment.simulated),
        "REFERENCE": f"{n_reference} rows of the training split; pct_* = per cent of them below",
        "COMBINED": "-log10 Fisher-combined tail probability of the available scores",
        "VERSIONS": plugin_versions(),
        "CREATED": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    write_catalog(output, table, header, {})
    report = AnomalyReport(str(output), alignment.stage, len(order), names, n_reference, rejected=inputs.rejected if inputs else [])
    report.top = [(str(table["id"][i]), float(table["combined"][i]), str(table["most_unusual"][i])) for i in range(min(top, len(order)))]
    if gallery is not None and best:
        from specclip_core.report.gallery import gallery_panels, plot_gallery

        title = f"specclip anomalies: the {len(best)} strangest of {len(order)} under {alignment.run.name()}/{alignment.stage} (trained on {alignment.trained_on()})"
        report.gallery = str(plot_gallery(gallery_panels(alignment, best), Path(gallery), title))
    report.seconds = time.perf_counter() - started
    return report


def _keep_best(best: list[dict[str, Any]], batch: Batch, combined: np.ndarray, excess: np.ndarray, held: list[str], top: int) -> list[dict[str, Any]]:
    """The ``top`` strangest stars so far, with their spectra (for the gallery)."""
    if top <= 0:
        return best
    order = np.lexsort((-excess, -combined))[:top]
    for i in order:
        best.append(
            {
                "id": str(batch.ids[i]),
                "combined": float(combined[i]),
                "excess": float(excess[i]),
                "arrays": {m: {k: v[i : i + 1] for k, v in batch.arrays[m].items()} for m in held if batch.arrays[m]["present"][i]},
                "simulated": {m: bool(batch.simulated[m][i]) for m in held},
            }
        )
    best.sort(key=lambda entry: (-entry["combined"], -entry["excess"]))
    return best[:top]
