"""Apply a finished run's encoder and heads to new spectra and write a catalogue.

Inputs are files in any format a registered reader of the heads' modality understands (files or
directories), or spectral stores. Unreadable files and spectra rejected by preprocessing are listed,
never fatal; inputs that give no spectrum at all are an error saying why. The catalogue (CSV, ECSV
or FITS, see :mod:`specclip_core.catalog`) has one row per spectrum: ``id``, the source file, and
one column per predicted label with its unit and precision (and, for a head that gives uncertainties,
``<label>_err``, ``_lo`` and ``_hi``: half the central 68% interval and its bounds), the
out-of-distribution columns of :mod:`specclip_core.heads.ood` (``ood_knn_pct``, ``flag_knn``,
``ood_recon_chi2``, ``flag_recon``, ``ood_range_p``, ``flag_range_<label>``, ``flags``) for heads saved with a
reference, and ``reason``: empty for a predicted row, why not for a row of a rejected input (every
rejected file and spectrum has one, its values left empty). Its header names the model (``MODEL``,
and ``MODELSHA``: for a named model the sha256 of its card, for a run the heads stage's key), says whether each head was trained on real or
SIMULATED spectra (``TRAINED``, ``SIMTRAIN``) and gives the versions.

On request (``samples``) the posterior samples of every head that gives them are written beside the
catalogue, in ``OUTPUT.samples.fits``: one row per predicted spectrum (``id``, ``source``) and one
vector column of that many samples per label, with its unit.
"""

from __future__ import annotations

import csv
import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from specclip_core.catalog import LabelColumn, catalog_format, with_rejected_rows, write_catalog, write_fits_table
from specclip_core.components import get_modality, plugin_versions, readers_for
from specclip_core.data.stream import DEFAULT_CHUNK, SpectraStream, choose_reader, expand_paths
from specclip_core.errors import ReaderError, SpecCLIPError
from specclip_core.heads.inputs import spectra_inputs, with_errors
from specclip_core.heads.ood import OOD_COLUMNS, OOD_DESCRIPTIONS, OODReference, recon_chi2
from specclip_core.heads.saved import head_labels, load_head
from specclip_core.interfaces import UNCERTAINTY_SUFFIXES, Spectra
from specclip_core.model_card import card_digest, is_model_dir, verify_model
from specclip_core.nn.embedders import load_embedder
from specclip_core.rundir import HeadInputs, RunDir, encoder_dir
from specclip_core.threads import available_cpus


@dataclass
class PredictReport:
    output: str
    n_rows: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    seconds: float = 0.0
    samples_output: str | None = None


SNIFFED_FILES = 20
"""Files sniffed (the first of the inputs) to tell which modality they hold, when no head is named."""


def input_modalities(paths: list[str]) -> set[str]:
    """Modalities the inputs hold: a store's modalities, or those whose readers recognise the first
    :data:`SNIFFED_FILES` files."""
    from specclip_core.data.store import SpectralStore

    readers = list(readers_for())
    found: set[str] = set()
    sniffed: list[Path] = []
    for item in paths:
        path = Path(item)
        if (path / "zarr.json").exists():
            found |= set(SpectralStore.open(path).modalities)
        elif len(sniffed) < SNIFFED_FILES:
            sniffed += expand_paths([path], readers)[: SNIFFED_FILES - len(sniffed)]
    for file in sniffed:
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


class PredictInputs:
    """The spectra to predict, preprocessed, in chunks of about ``chunk``: stores by rows, files
    through a :class:`~specclip_core.data.stream.SpectraStream`. Iterating gives (spectra, each
    row's source name, each row's file index; -1 for a store's rows); afterwards :attr:`rejected`
    lists (input, reason) and :attr:`failed` the files rejected after some rows were given."""

    def __init__(self, paths: list[str], modality: str, chunk: int = DEFAULT_CHUNK, progress: bool = True, workers: int = 1):
        self.modality, self.chunk = modality, chunk
        self.stores = [Path(p) for p in paths if (Path(p) / "zarr.json").exists()]
        files = [p for p in paths if not (Path(p) / "zarr.json").exists()]
        self.stream = SpectraStream(files, get_modality(modality), chunk=chunk, progress=progress, workers=workers) if files else None

    def __iter__(self) -> Iterator[tuple[Spectra, np.ndarray, np.ndarray]]:
        from specclip_core.data.store import SpectralStore

        for path in self.stores:
            store = SpectralStore.open(path)
            for start in range(0, len(store), self.chunk):
                spectra = store.spectra(self.modality, rows=slice(start, start + self.chunk), labels=False)
                yield spectra, np.full(len(spectra), path.name), np.full(len(spectra), -1)
        if self.stream is not None:
            names = np.array([path.name for path in self.stream.files] or [""])
            for batch in self.stream:
                yield batch.spectra, names[batch.files], batch.files

    def start(self) -> None:
        """Set the files' reader processes reading now (see :meth:`SpectraStream.start`)."""
        if self.stream is not None:
            self.stream.start()

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()

    @property
    def rejected(self) -> list[tuple[str, str]]:
        return [] if self.stream is None else self.stream.rejected

    @property
    def rejected_rows(self) -> list[tuple[str, str, str]]:
        """(id, source file name, reason) of every rejected file (id empty) and spectrum."""
        if self.stream is None:
            return []
        rows = [(sid, Path(file).name, reason) for file, sid, reason, _ in self.stream.problems]
        return rows + [("", Path(path).name, "no reader of the modality takes this file") for path in self.stream.unrecognised]

    @property
    def failed(self) -> set[int]:
        return set() if self.stream is None else self.stream.failed


def predict_catalog(
    run_dir: str | Path,
    paths: list[str],
    output: str | Path,
    heads: list[str] | None = None,
    progress: bool = True,
    chunk: int = DEFAULT_CHUNK,
    workers: int | None = None,
    samples: int = 0,
) -> PredictReport:
    """Apply a run's heads (or a model directory's, its files checked against its card first) to the
    spectra of ``paths`` (files, directories, stores), ``chunk`` spectra at a time, and write the
    catalogue at ``output`` (plus ``OUTPUT.rejected.csv`` when inputs were rejected, and with
    ``samples`` > 0 that many posterior samples per spectrum and label in ``OUTPUT.samples.fits``).
    Files are read by ``workers`` processes (default: one per CPU this process may use)."""
    started = time.perf_counter()
    run_dir, output = Path(run_dir), Path(output)
    catalog_format(output)  # before reading anything
    if output.is_dir():
        raise SpecCLIPError(f"{output}: is a directory; -o takes the path of a catalogue file (.csv, .ecsv or .fits)")
    run = RunDir(run_dir)
    card = verify_model(run_dir) if is_model_dir(run_dir) else None  # every file checked before anything is loaded
    named = heads or (card.heads if card else None)
    chosen = choose_heads(run_dir, named, None if named else input_modalities(paths))
    modality = next(iter(chosen.values())).modality
    joined = {name: info.with_modalities for name, info in chosen.items() if info.with_modalities}
    if joined:
        name, others = next(iter(joined.items()))
        raise SpecCLIPError(f"heads stage {name!r} reads {modality} together with {others}; predict reads one modality per input file, so it cannot apply it")
    inputs = PredictInputs(paths, modality, chunk, progress, workers or available_cpus())
    inputs.start()  # the readers work while the models load
    try:
        models = {name: load_head(run.head(name)) for name in chosen}
        encoders = {info.encoder_stage: load_embedder(encoder_dir(run.stage(info.encoder_stage), modality)) for info in chosen.values() if info.input == "embedding"}
        references = {name: OODReference.load(run.head(name)) for name in chosen}
        if samples and not any(getattr(models[name], "gives_samples", False) for name in chosen):
            raise SpecCLIPError(f"--samples: the heads {sorted(chosen)} give point estimates only, no posterior samples (an npe head, or an mlp head with uncertainty: gaussian, gives them)")
        scored = {info.encoder_stage for name, info in chosen.items() if info.input == "embedding" and references[name] is not None}
        drawn: dict[str, list[np.ndarray]] = {}
        parts: dict[str, list[np.ndarray]] = {"id": [], "source": []}
        files: list[np.ndarray] = []
        for spectra, sources, rows_files in inputs:
            parts["id"].append(spectra.ids)
            parts["source"].append(sources)
            files.append(rows_files)
            embedded: dict[str, np.ndarray] = {}
            rebuilt: dict[str, np.ndarray | None] = {}
            for name, info in chosen.items():
                if info.input == "embedding":
                    if info.encoder_stage not in embedded:
                        embedded[info.encoder_stage], rebuilt[info.encoder_stage] = _embed(encoders[info.encoder_stage], spectra, info.encoder_stage in scored)
                    values = embedded[info.encoder_stage]
                else:
                    values = spectra_inputs({"flux": spectra.flux, "stats": spectra.stats})
                if info.errors_input != "none":
                    values = with_errors(values, {"ivar": spectra.ivar, "mask": spectra.mask}, info.errors_input)
                predicted, sampled = models[name].predict_samples(values, samples, recalibrated=True) if samples else (models[name].predict(values), None)
                for label, column in predicted.items():
                    parts.setdefault(label, []).append(column)
                for label, column in (sampled or {}).items():
                    drawn.setdefault(label, []).append(column.astype(np.float32))
                if references[name] is not None:
                    chi2 = recon_chi2(rebuilt.get(info.encoder_stage) if info.input == "embedding" else None, {"flux": spectra.flux, "ivar": spectra.ivar, "mask": spectra.mask})
                    flagged = references[name].columns(values, predicted, chi2)
                    for column_name, column in flagged.items():
                        parts.setdefault(_ood_name(column_name, name, len(chosen)), []).append(column)
    finally:
        inputs.close()
    rejected = inputs.rejected
    if not parts["id"]:
        first = "; ".join(f"{where}: {reason}" for where, reason in rejected[:3]) or "no input files found"
        raise SpecCLIPError(f"no {modality} spectrum read from {', '.join(map(str, paths))} ({len(rejected)} inputs rejected; {first})")
    keep = ~np.isin(np.concatenate(files), sorted(inputs.failed))  # rows of a file that failed part-way are dropped
    columns = with_rejected_rows({name: np.concatenate(values)[keep] for name, values in parts.items()}, inputs.rejected_rows)
    described: dict[str, LabelColumn] = {}
    for name, info in chosen.items():
        for label in head_labels(run.head(name)):
            column = LabelColumn(name, info.simulated, info.modality, info.units.get(label, ""), info.test_sigma.get(label))
            for suffix in ("", *UNCERTAINTY_SUFFIXES):
                if suffix == "" or f"{label}{suffix}" in columns:
                    described[f"{label}{suffix}"] = column
    report = PredictReport(str(output), n_rows=len(columns["id"]), rejected=rejected, columns=list(columns))
    header = {
        "MODEL": f"{card.name} (specclip model)" if card else f"specclip run {run.name()}, heads {'+'.join(chosen)}",
        "MODELSHA": card_digest(run_dir) if card else model_sha(run, list(chosen)),
        "MODALITY": modality,
        "TRAINED": "; ".join(run.trained_on(name) for name in chosen),
        "SIMTRAIN": any(info.simulated for info in chosen.values()),
        "VERSIONS": plugin_versions(),
        "CREATED": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    write_catalog(output, columns, header, described, column_descriptions(columns))
    if drawn:
        report.samples_output = str(write_samples(output, {n: np.concatenate(v)[keep] for n, v in parts.items() if n in ("id", "source")}, {label: np.concatenate(v)[keep] for label, v in drawn.items()}, described, header))
    if rejected:
        with open(output.with_name(output.name + ".rejected.csv"), "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["input", "reason"])
            writer.writerows(rejected)
    report.seconds = time.perf_counter() - started
    return report


def write_samples(output: Path, rows: dict[str, np.ndarray], drawn: dict[str, np.ndarray], described: dict[str, LabelColumn], header: dict[str, Any]) -> Path:
    """``OUTPUT.samples.fits``: ``id``, ``source`` and per label a vector column of its samples."""
    from astropy.table import Table

    path = output.with_name(output.name + ".samples.fits")
    table = Table({"id": rows["id"].astype(str), "source": rows["source"].astype(str), **drawn})
    kept = {key: value for key, value in header.items() if key in ("MODEL", "MODELSHA", "MODALITY", "SIMTRAIN")}
    write_fits_table(path, table, {**kept, "NSAMPLES": int(next(iter(drawn.values())).shape[1])}, {label: described[label] for label in drawn})
    return path


def column_descriptions(columns: dict[str, np.ndarray]) -> dict[str, str]:
    """Descriptions of the out-of-distribution columns and ``reason`` present in ``columns``."""
    out = {}
    for name in columns:
        base = next((c for c in OOD_DESCRIPTIONS if name == c or name.startswith(f"{c}_")), None)
        if base is not None:
            out[name] = OOD_DESCRIPTIONS[base]
        elif name.startswith("flag_range_"):
            out[name] = f"predicted {name[len('flag_range_') :]} outside the training label range"
    return out


def model_sha(run: RunDir, stages: list[str]) -> str:
    """The heads stage's key (a sha256 of everything its result depends on), or for several stages the
    sha256 of their keys joined by commas."""
    keys = [run.manifest(stage)["key"] for stage in stages]
    return keys[0] if len(keys) == 1 else hashlib.sha256(",".join(keys).encode()).hexdigest()


def _ood_name(column: str, stage: str, n_stages: int) -> str:
    """An out-of-distribution column's name: as is for one heads stage, ``<column>_<stage>`` for the
    scores of several (label range flags keep their name: labels are unique across stages)."""
    return f"{column}_{stage}" if n_stages > 1 and column in OOD_COLUMNS else column


def _embed(encoder: Any, spectra: Spectra, reconstruct: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """The spectra's embeddings and, with ``reconstruct`` where the encoder has a decoder, their
    reconstructed flux (for ``ood_recon_chi2``) from the same pass of the encoder."""
    from specclip_core.train.distributed import resolve_device

    device = resolve_device("auto")
    if reconstruct and getattr(encoder, "can_reconstruct", False):
        return encoder.embed_and_reconstruct(spectra.flux, spectra.stats, device=device)
    return encoder.embed(spectra.flux, spectra.stats, device=device), None
