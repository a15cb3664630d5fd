"""Apply a finished run's encoder and heads to new spectra and write a catalogue.

Inputs are files in any format a registered reader of the heads' modality understands (files or
directories), or spectral stores. Unreadable files and spectra rejected by preprocessing are listed,
never fatal; inputs that give no spectrum at all are an error saying why. The catalogue (CSV, ECSV
or FITS, see :mod:`specclip_core.catalog`) has one row per spectrum: ``id``, the source file, and
one column per predicted label with its unit and precision; its header names the model (run and
stages), says whether each head was trained on real or SIMULATED spectra (``TRAINED``,
``SIMTRAIN``) and gives the versions.
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from specclip_core.catalog import LabelColumn, catalog_format, write_catalog
from specclip_core.components import get_modality, plugin_infos, readers_for
from specclip_core.data.ingest import choose_reader, expand_paths, preprocess_robustly, read_checked
from specclip_core.data.store import SpectralStore
from specclip_core.errors import ReaderError, SpecCLIPError
from specclip_core.heads.inputs import spectra_inputs
from specclip_core.heads.saved import head_labels, load_head
from specclip_core.interfaces import Spectra
from specclip_core.nn.embedders import load_embedder
from specclip_core.rundir import HeadInputs, RunDir, encoder_dir


@dataclass
class PredictReport:
    output: str
    n_rows: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    seconds: float = 0.0


def input_modalities(paths: list[str]) -> set[str]:
    """Modalities the inputs hold: a store's modalities, or those whose readers recognise the files."""
    readers = list(readers_for())
    found: set[str] = set()
    for item in paths:
        path = Path(item)
        if (path / "zarr.json").exists():
            found |= set(SpectralStore.open(path).modalities)
            continue
        for file in expand_paths([path], readers)[:20]:
            try:
                found.add(choose_reader(file, readers).modality)
            except ReaderError:
                continue
    return found


def choose_heads(run_dir: Path, requested: list[str] | None, modalities: set[str] | None = None) -> dict[str, HeadInputs]:
    """The heads stages to apply: those ``requested``, or else the last heads stage on embeddings in the
    run's spec (the last on spectra where there is none) among those that read one of ``modalities``."""
    run = RunDir(run_dir)
    available = run.finished_heads()
    if not available:
        raise SpecCLIPError(f"{run_dir}: no finished heads stage (run the spec first)")
    if requested:
        unknown = [name for name in requested if name not in available]
        if unknown:
            raise SpecCLIPError(f"{run_dir}: no finished heads stage {unknown}; available: {sorted(available)}")
        chosen = {name: available[name] for name in requested}
    else:
        usable = {n: i for n, i in available.items() if not modalities or i.modality in modalities}
        if not usable:
            read = {i.modality for i in available.values()}
            raise SpecCLIPError(f"{run_dir}: its heads read {sorted(read)}, but the inputs hold {sorted(modalities or [])}")
        on_embeddings = [n for n, i in usable.items() if i.input == "embedding"] or list(usable)
        chosen = {on_embeddings[-1]: usable[on_embeddings[-1]]}
    modalities = {info.modality for info in chosen.values()}
    if len(modalities) > 1:
        raise SpecCLIPError(f"heads stages {sorted(chosen)} read different modalities {sorted(modalities)}; pick one with --heads")
    labels: dict[str, str] = {}
    for name in chosen:
        for label in head_labels(run.head(name)):
            if label in labels:
                raise SpecCLIPError(f"label {label!r} is predicted by both {labels[label]!r} and {name!r}; pick with --heads")
            labels[label] = name
    return chosen


def load_inputs(paths: list[str], modality: str, progress: bool) -> tuple[Spectra | None, list[tuple[str, str]], np.ndarray]:
    """Preprocessed spectra from files and stores, the rejected (path or id, reason) and each row's source."""
    parts, rejected, sources = [], [], []
    files = []
    for item in paths:
        path = Path(item)
        if (path / "zarr.json").exists():
            store = SpectralStore.open(path)
            spectra = store.spectra(modality, labels=False)
            parts.append(spectra)
            sources.append(np.full(len(spectra), path.name))
        else:
            files.append(item)
    if files:
        good, bad, unrecognised = read_checked(files, modality, progress=progress)
        rejected += [(p.file, p.reason) for p in bad] + [(path, "no reader of the modality takes this file") for path in unrecognised]
        spec = get_modality(modality)
        for path, raw in good:
            done, refused = preprocess_robustly(spec, raw, progress=False)
            rejected += [(f"{path}:{sid}", reason) for sid, reason in refused]
            if done is not None:
                parts.append(done)
                sources.append(np.full(len(done), Path(path).name))
    if not parts:
        return None, rejected, np.array([], dtype=str)
    merged = Spectra.concatenate([Spectra(p.wavelength, p.flux, p.ivar, p.mask, p.ids, {}, p.stats) for p in parts])
    return merged, rejected, np.concatenate(sources)


def _versions() -> str:
    seen = {f"{i.distribution}=={i.version}" for i in plugin_infos() if i.version}
    return ", ".join(sorted(seen))


def predict_catalog(run_dir: str | Path, paths: list[str], output: str | Path, heads: list[str] | None = None, progress: bool = True) -> PredictReport:
    started = time.perf_counter()
    run_dir, output = Path(run_dir), Path(output)
    catalog_format(output)  # before reading anything
    if output.is_dir():
        raise SpecCLIPError(f"{output}: is a directory; -o takes the path of a catalogue file (.csv, .ecsv or .fits)")
    run = RunDir(run_dir)
    chosen = choose_heads(run_dir, heads, None if heads else input_modalities(paths))
    modality = next(iter(chosen.values())).modality
    spectra, rejected, sources = load_inputs(paths, modality, progress)
    if spectra is None:
        first = "; ".join(f"{where}: {reason}" for where, reason in rejected[:3]) or "no input files found"
        raise SpecCLIPError(f"no {modality} spectrum read from {', '.join(map(str, paths))} ({len(rejected)} inputs rejected; {first})")
    report = PredictReport(str(output), rejected=rejected)
    columns: dict[str, np.ndarray] = {"id": spectra.ids, "source": sources}
    described: dict[str, LabelColumn] = {}
    encoders: dict[str, Any] = {}
    for name, info in chosen.items():
        if info.input == "embedding":
            stage = info.encoder_stage
            if stage not in encoders:
                encoders[stage] = load_embedder(encoder_dir(run.stage(stage), modality))
            inputs = _embed(encoders[stage], spectra, progress)
        else:
            inputs = spectra_inputs({"flux": spectra.flux, "stats": spectra.stats})
        for label, values in load_head(run.head(name)).predict(inputs).items():
            columns[label] = values
            described[label] = LabelColumn(name, info.simulated, info.modality, info.units.get(label, ""), info.test_sigma.get(label))
    report.n_rows = len(spectra)
    report.columns = list(columns)
    header = {
        "MODEL": f"specclip run {run.name()}, heads {'+'.join(chosen)}",
        "MODALITY": modality,
        "TRAINED": "; ".join(f"{name} on {'SIMULATED' if info.simulated else 'real'} {info.modality} spectra" for name, info in chosen.items()),
        "SIMTRAIN": any(info.simulated for info in chosen.values()),
        "VERSIONS": _versions(),
        "CREATED": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    write_catalog(output, columns, header, described)
    if rejected:
        with open(output.with_name(output.name + ".rejected.csv"), "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["input", "reason"])
            writer.writerows(rejected)
    report.seconds = time.perf_counter() - started
    return report


def _embed(encoder: Any, spectra: Spectra, progress: bool) -> np.ndarray:
    from specclip_core.train.distributed import resolve_device

    return encoder.embed(spectra.flux, spectra.stats, device=resolve_device("auto"))
