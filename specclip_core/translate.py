"""Translate spectra from one instrument to another with a run's cross-modal decoder (``specclip translate``).

Each input spectrum (files in any format a reader of its modality understands, or a store) is
embedded by its branch of an align stage, and the stage's ``source -> target`` decoder predicts the
target modality's preprocessed (normalised) flux on the target's model grid. The FITS file holds::

    PRIMARY     header: MODEL, SOURCE, TARGET, TRAINED, SIMTRAIN, VERSIONS, CREATED
    WAVELENGTH  (L,) the target modality's grid, Angstrom
    FLUX        (N, L) predicted normalised flux, one row per input spectrum
    SPECTRA     table: ID (the source spectrum's id), SOURCE (its file or store)
    MODELCARD   one-row table, column JSON: run, stage, what the model was trained on, its held-out
                prediction error, parameters, versions

Translations are model predictions, never observations; a model trained on SIMULATED spectra says so
in TRAINED and SIMTRAIN. The plot shows a few translations, each against the star's observed target
spectrum where one is at hand (a store input holding both modalities, or ``observed`` inputs whose
spectra carry the same ids).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from specclip_core.saved_alignment import SavedAlignment, load_alignment
from specclip_core.components import get_modality, plugin_versions
from specclip_core.data.store import SpectralStore, is_store
from specclip_core.data.stream import DEFAULT_CHUNK, SpectraStream
from specclip_core.errors import SpecCLIPError
from specclip_core.interfaces import SIMULATED
from specclip_core.predict import PredictInputs, input_modalities

HDU_NAMES = ("WAVELENGTH", "FLUX", "SPECTRA", "MODELCARD")


@dataclass
class TranslateReport:
    output: str
    source: str
    target: str
    stage: str
    n_rows: int = 0
    plot: str | None = None
    n_observed: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0


@torch.no_grad()
def translate_flux(alignment: SavedAlignment, source: str, target: str, flux: np.ndarray, stats: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """The ``target`` normalised flux the stage's decoder predicts from preprocessed ``source`` spectra."""
    model, out = alignment.model, []
    for start in range(0, len(flux), batch_size):
        inputs = {"flux": torch.as_tensor(flux[start : start + batch_size]), "stats": torch.as_tensor(stats[start : start + batch_size])}
        out.append(alignment.predictor(source, target)(model.embed(source, inputs).shared).float().numpy())
    return np.concatenate(out) if out else np.zeros((0, get_modality(target).n_pixels), dtype=np.float32)


def _source_modality(paths: list[str], alignment_modalities: list[str], target: str, given: str | None) -> str:
    if given is not None:
        return get_modality(given).name
    found = sorted((input_modalities(paths) & set(alignment_modalities)) - {target})
    if len(found) != 1:
        raise SpecCLIPError(
            f"{', '.join(paths)}: cannot tell which modality to translate from (the inputs hold {found or 'none the run aligns'}); pass --from"
        )
    return found[0]


def model_card(alignment: SavedAlignment, source: str, target: str) -> dict[str, Any]:
    """What a translation file says about the model that made it."""
    run = alignment.run
    aligned = alignment.metrics().get("aligned", {})
    return {
        "run": str(run.path.absolute()),
        "run_name": run.name(),
        "stage": alignment.stage,
        "stage_key": run.manifest(alignment.stage).get("key"),
        "source": source,
        "target": target,
        "trained_on": alignment.trained_on(),
        "simulated_training_modalities": alignment.simulated,
        "held_out_pairs": aligned.get("n_pairs"),
        "held_out_prediction_weighted_mse": aligned.get("prediction_weighted_mse", {}).get(f"{source}->{target}"),
        "n_parameters": alignment.model.describe()["n_parameters"],
        "versions": plugin_versions(),
    }


def _observed(paths: list[str], target: str, wanted: set[str], limit: int) -> dict[str, tuple[np.ndarray, np.ndarray, bool]]:
    """Up to ``limit`` observed ``target`` spectra (flux, mask, simulated) whose ids are in ``wanted``,
    from stores holding ``target`` and from files (simulated as the store or the file marks it)."""
    found: dict[str, tuple[np.ndarray, np.ndarray, bool]] = {}
    for path in paths:
        if len(found) >= limit:
            break
        if is_store(path):
            store = SpectralStore.open(path)
            if target not in store.modalities:
                continue
            rows = np.flatnonzero(np.isin(store.ids, sorted(wanted - set(found))))[: limit - len(found)]
            spectra, simulated = store.spectra(target, rows=rows, labels=False), store.simulated_rows(target, rows)
            found |= {str(sid): (spectra.flux[i], spectra.mask[i], bool(simulated[i])) for i, sid in enumerate(spectra.ids)}
            continue
        for batch in SpectraStream([path], get_modality(target), progress=False):
            flags = batch.spectra.meta.get(SIMULATED, np.zeros(len(batch.spectra), bool))
            for i in np.flatnonzero(np.isin(batch.spectra.ids, sorted(wanted - set(found))))[: limit - len(found)]:
                found[str(batch.spectra.ids[i])] = (batch.spectra.flux[i], batch.spectra.mask[i], bool(flags[i]))
    return found


def write_translations(path: Path, wavelength: np.ndarray, flux: np.ndarray, ids: np.ndarray, sources: np.ndarray, card: dict[str, Any]) -> None:
    from astropy.io import fits

    primary = fits.PrimaryHDU()
    header = primary.header
    header["MODEL"] = (f"specclip run {card['run_name']}, stage {card['stage']}", "the model that translated")
    header["SOURCE"] = (card["source"], "modality of the input spectra")
    header["TARGET"] = (card["target"], "modality of the predicted spectra")
    header["TRAINED"] = (card["trained_on"], "training spectra, per modality")
    header["SIMTRAIN"] = (bool(card["simulated_training_modalities"]), "trained on simulated spectra")
    header["PREDICTD"] = (True, "FLUX holds model predictions, not observations")
    header["VERSIONS"] = card["versions"]
    header["CREATED"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    grid = fits.ImageHDU(np.asarray(wavelength, dtype=np.float64), name="WAVELENGTH")
    grid.header["BUNIT"] = "Angstrom"
    predicted = fits.ImageHDU(np.asarray(flux, dtype=np.float32), name="FLUX")
    predicted.header["BUNIT"] = ("", f"normalised flux, as {card['target']} preprocessing gives")
    table = fits.BinTableHDU.from_columns(
        [fits.Column("ID", format=f"{max(1, max((len(s) for s in ids), default=1))}A", array=np.asarray(ids, dtype=str)),
         fits.Column("SOURCE", format=f"{max(1, max((len(s) for s in sources), default=1))}A", array=np.asarray(sources, dtype=str))],
        name="SPECTRA",
    )
    text = json.dumps(card, sort_keys=True)
    card_hdu = fits.BinTableHDU.from_columns([fits.Column("JSON", format=f"{len(text)}A", array=np.array([text]))], name="MODELCARD")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    fits.HDUList([primary, grid, predicted, table, card_hdu]).writeto(partial, overwrite=True)
    partial.replace(path)


def translate_files(
    run_dir: str | Path,
    paths: list[str],
    to: str,
    output: str | Path,
    source: str | None = None,
    stage: str | None = None,
    observed: list[str] | None = None,
    plot: str | Path | None = None,
    examples: int = 4,
    chunk: int = DEFAULT_CHUNK,
    progress: bool = True,
) -> TranslateReport:
    """Translate the spectra of ``paths`` into modality ``to``; write the FITS file ``output`` and,
    with ``plot``, a figure of ``examples`` translations against observed spectra where there are any."""
    started = time.perf_counter()
    output = Path(output)
    if output.suffix.lower() not in (".fits", ".fit"):
        raise SpecCLIPError(f"{output}: translations are written as FITS; give a path ending in .fits")
    target = get_modality(to).name
    alignment = load_alignment(run_dir, stage, source and get_modality(source).name, target)
    source = _source_modality(paths, alignment.model.modalities, target, source)
    inputs = PredictInputs(paths, source, chunk, progress)
    ids, sources, flux, files = [], [], [], []
    for spectra, names, rows_files in inputs:
        ids.append(spectra.ids)
        sources.append(names)
        files.append(rows_files)
        flux.append(translate_flux(alignment, source, target, spectra.flux, spectra.stats))
    if not ids:
        first = "; ".join(f"{where}: {reason}" for where, reason in inputs.rejected[:3]) or "no input files found"
        raise SpecCLIPError(f"no {source} spectrum read from {', '.join(map(str, paths))} ({len(inputs.rejected)} inputs rejected; {first})")
    keep = ~np.isin(np.concatenate(files), sorted(inputs.failed))
    ids_all, sources_all, flux_all = np.concatenate(ids)[keep], np.concatenate(sources)[keep], np.concatenate(flux)[keep]
    wavelength = np.asarray(get_modality(target).wavelength, dtype=np.float64)
    write_translations(output, wavelength, flux_all, ids_all, sources_all, model_card(alignment, source, target))
    report = TranslateReport(str(output), source, target, alignment.stage, len(ids_all), rejected=inputs.rejected)
    if plot is not None and examples > 0:
        seen = _observed([p for p in paths if is_store(p)] + list(observed or []), target, set(ids_all), examples)
        report.n_observed = len(seen)
        report.plot = str(_plot(Path(plot), alignment, source, target, wavelength, ids_all, flux_all, seen, examples))
    report.seconds = time.perf_counter() - started
    return report


def _plot(path: Path, alignment: SavedAlignment, source: str, target: str, wavelength, ids, flux, seen, examples: int) -> Path:
    from specclip_core.report.plots import plot_translations

    rows = [int(np.flatnonzero(ids == sid)[0]) for sid in seen] or list(range(min(examples, len(ids))))
    simulated = set(alignment.simulated)

    def name(modality: str) -> str:
        return f"{modality} (model trained on SIMULATED spectra)" if modality in simulated else modality

    panels = []
    for row in rows[:examples]:
        observed = seen.get(str(ids[row]))
        note = " (no observed spectrum)" if observed is None else " (observed spectrum SIMULATED)" if observed[2] else ""
        panels.append(
            {
                "wavelength": wavelength,
                "truth": None if observed is None else observed[0],
                "mask": None if observed is None else observed[1],
                "predicted": flux[row],
                "label": f"{ids[row]}: {name(source)} -> {name(target)}{note}",
            }
        )
    title = f"specclip translate: {source} -> {target} with {alignment.run.name()}/{alignment.stage}; predictions, " + (
        "observed in grey" if seen else "no observed target spectrum given"
    )
    return plot_translations(panels, path, title=title)
