"""A paired store: real spectra of one dataset plus simulated spectra of the same stars in another modality.

``simulate_paired("lamost_lrs", like="apogee-xp")`` takes every star of the apogee-xp store (real
Gaia XP spectra with APOGEE labels), simulates its LAMOST-like spectrum from those labels
(:class:`~specclip_sim.observe.NativeObserver`: emulator, instrument, native files, the LAMOST
reader, the lamost_lrs preprocessing) and writes ONE store with both modalities, keyed by the
source's ids (Gaia source ids): the real rows copied unchanged, the simulated rows, every source
label, and per star the simulation's inputs and flags:

=========================  =====  ==============================================================
column                     kind   meaning
=========================  =====  ==============================================================
(every source label)              unchanged; a missing [Fe/H] or A_K stays missing here
``rv``                     float  simulated heliocentric radial velocity (km/s)
``sim_snr``                float  simulated S/N (per pixel, median over the calibration's S/N band)
``sim_fe_h``, ``sim_a_k``  float  [Fe/H] given to and A_K applied by the simulator (imputed where
                                  flagged; A_K clipped to 0..5 mag, see SimulationSettings.max_a_k)
``fe_h_imputed``           int    1: [Fe/H] was missing and was imputed (see :mod:`specclip_sim.impute`)
``a_k_imputed``            int    1: A_K was missing (NaN) or a sentinel (< -1 mag) and was imputed
``emulator_teff`` ...      float  labels the emulator used after clipping into its range
``emulator_clipped``       int    1: the labels were clipped into the emulator's range
``emulator_covered``       int    1: inside the emulator's training-grid coverage (0: extrapolated)
``emulator_capped_fraction`` float fraction of pixels whose emulated flux was clipped to [0, 1]
``emulator_model``         str    which emulator model made the spectrum
``simulated_<modality>``   int    1 for the simulated modality, 0 for each real one
=========================  =====  ==============================================================

The store's attributes (``meta``) say which modality is simulated and how (``simulated``), which
are real (``real_modalities``), where the real rows come from (``source``), the missing-label policy
and its numbers (``missing_labels``), rejected stars, counts and timings. Stars are kept in the
source's row order.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, Literal

import numpy as np

from specclip_core.api import ModalityLayout, SpecCLIPError, SpectralStore, cache_dir, fetch_dataset, get_modality, get_registry
from specclip_sim.calibration import Calibration
from specclip_sim.emulator import Emulator
from specclip_sim.impute import colour_features, impute_by_neighbours, impute_by_regression
from specclip_sim.observe import NativeObserver, default_workers

Missing = Literal["impute", "drop"]
DEFAULT_COLUMNS = {"teff": "teff", "logg": "logg", "feh": "fe_h", "a_k": "ak_targ"}
"""Simulator input -> source label column (the apogee-xp dataset's names). An ``snr`` entry, when
given, names the column of each star's S/N (default: drawn from the calibration's S/N values)."""
A_K_SENTINEL = -1.0
"""A_K below this (mag) is a missing-value sentinel, not measurement noise (apogee-xp has values near -83)."""
FORMAT = "specclip-sim paired store v1"


@dataclass
class PairedReport:
    store: str
    modality: str
    real_modalities: list[str]
    n_source: int
    n_written: int = 0
    n_dropped: int = 0
    n_rejected: int = 0
    n_fe_h_imputed: int = 0
    n_a_k_imputed: int = 0
    reused: bool = False
    seconds: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        if self.reused:
            return f"reused {self.store}: {self.n_written} stars, {self.modality} simulated (same inputs and settings)"
        steps = ", ".join(f"{k} {v:.1f} s" for k, v in self.seconds.items())
        return (
            f"wrote {self.n_written} stars to {self.store}: {', '.join(self.real_modalities)} real, {self.modality} SIMULATED\n"
            f"source rows {self.n_source}; dropped {self.n_dropped} (missing labels); rejected by preprocessing {self.n_rejected}; "
            f"imputed [Fe/H] {self.n_fe_h_imputed}, A_K {self.n_a_k_imputed}\n"
            f"time: {steps}"
        )


def source_store_path(like: str, progress: bool = True) -> tuple[Path, str]:
    """(store path, short name) of ``like``: a store path, or a registered dataset (fetched when needed)."""
    path = Path(like)
    if (path / "zarr.json").is_file():
        return path, path.stem if path.stem != "store" else path.parent.name
    if like in get_registry().names("dataset"):
        return fetch_dataset(like, progress=progress), like
    raise SpecCLIPError(f"--like {like!r} is neither a store nor a registered dataset (datasets: {', '.join(get_registry().names('dataset'))})")


def default_output(name: str, modality: str, seed: int, limit: int | None) -> Path:
    suffix = f"-first{limit}" if limit is not None else ""
    return cache_dir() / "simulated" / f"{name}+{modality}-seed{seed}{suffix}" / "store.zarr"


def simulation_inputs(
    labels: Mapping[str, np.ndarray], columns: Mapping[str, str], missing: Missing, seed: int
) -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, np.ndarray], dict[str, Any]]:
    """Simulator inputs for every source row, the rows kept, the imputation flags and a record of the policy."""
    absent = [c for c in columns.values() if c not in labels]
    if absent:
        raise SpecCLIPError(f"the source store has no label column(s) {absent} (simulator input -> column: {dict(columns)})")
    teff = np.asarray(labels[columns["teff"]], dtype=np.float64)
    logg = np.asarray(labels[columns["logg"]], dtype=np.float64)
    feh = np.asarray(labels[columns["feh"]], dtype=np.float64)
    a_k = np.asarray(labels[columns["a_k"]], dtype=np.float64)
    n = len(teff)
    unusable = ~np.isfinite(teff) | ~np.isfinite(logg) | (teff <= 0)
    feh_missing = ~np.isfinite(feh)
    a_k_missing = ~np.isfinite(a_k) | (a_k < A_K_SENTINEL)
    record: dict[str, Any] = {
        "policy": missing,
        "columns": dict(columns),
        "no_teff_or_logg": int(unusable.sum()),
        "fe_h_missing": int(feh_missing.sum()),
        "a_k_missing": int((~np.isfinite(a_k)).sum()),
        "a_k_sentinel": int((np.isfinite(a_k) & (a_k < A_K_SENTINEL)).sum()),
    }
    if missing == "drop":
        keep = ~unusable & ~feh_missing & ~a_k_missing
        flags = {"fe_h_imputed": np.zeros(n, np.int64), "a_k_imputed": np.zeros(n, np.int64)}
        record["dropped"] = int((~keep).sum())
        return {"teff": teff, "logg": logg, "feh": feh, "a_k": a_k}, keep, flags, record
    keep = ~unusable
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 7_919]))
    features = np.stack([np.log10(np.where(keep, teff, 1.0)), np.where(keep, logg, 0.0)], axis=1)
    feh_in = np.where(keep, feh, np.nan)
    if (feh_missing & keep).any():
        filled, imputed = impute_by_neighbours(feh_in, features, rng)
        imputed &= keep  # rows dropped for lack of Teff/logg are not imputed
        feh = np.where(imputed, filled, feh)
    else:
        imputed = np.zeros(n, bool)
    record["fe_h_imputed"] = {
        "n": int(imputed.sum()),
        "method": "random draw from the measured [Fe/H] of the 50 nearest stars in standardised (log10 Teff, logg)",
    }
    colours, names = colour_features(labels, np.where(keep, teff, 5000.0), np.where(keep, logg, 3.0))
    a_k_filled, accuracy = impute_by_regression(a_k, colours, a_k_missing & keep, seed=seed)
    record["a_k_imputed"] = {"n": int((a_k_missing & keep).sum()), "features": names, **accuracy}
    flags = {"fe_h_imputed": imputed.astype(np.int64), "a_k_imputed": (a_k_missing & keep).astype(np.int64)}
    record["dropped"] = int((~keep).sum())
    return {"teff": teff, "logg": logg, "feh": feh, "a_k": np.where(a_k_missing & keep, a_k_filled, a_k)}, keep, flags, record


def _key(**parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


def is_chained(label_columns: Mapping[str, str]) -> bool:
    """Whether a source store is itself a paired store (its stars already have a simulated ``rv``)."""
    return "rv" in label_columns and "sim_fe_h" in label_columns and "sim_a_k" in label_columns


def added_columns(real_modalities: list[str], target: str, label_columns: Mapping[str, str] | None = None) -> dict[str, str]:
    """Column -> kind of the label columns a paired store adds to its source's (see the module docstring).
    A chained simulation (the source is a paired store) adds only ``sim_snr_<target>`` and
    ``simulated_<target>``: the star's rv and simulator inputs are the source's."""
    if label_columns is not None and is_chained(label_columns):
        return {f"sim_snr_{target}": "float", f"simulated_{target}": "int"}
    return {
        "rv": "float", "sim_snr": "float", "sim_fe_h": "float", "sim_a_k": "float", "fe_h_imputed": "int", "a_k_imputed": "int",
        "emulator_teff": "float", "emulator_logg": "float", "emulator_fe_h": "float", "emulator_clipped": "int",
        "emulator_covered": "int", "emulator_capped_fraction": "float", "emulator_model": "str",
        **{f"simulated_{m}": "int" for m in (*real_modalities, target)},
    }


def simulate_paired(
    modality: str = "lamost_lrs",
    like: str = "apogee-xp",
    output: str | Path | None = None,
    *,
    seed: int = 0,
    limit: int | None = None,
    missing: Missing = "impute",
    columns: Mapping[str, str] | None = None,
    resolving_power: float | None = None,
    calibration: Calibration | Literal["auto"] | None = "auto",
    emulator: Emulator | None = None,
    chunk_size: int = 1024,
    workers: int | None = None,
    progress: bool = True,
    overwrite: bool = False,
    workdir: str | Path | None = None,
) -> PairedReport:
    """Write a store pairing the real spectra of ``like`` with simulated ``modality`` spectra of the
    same stars; see the module docstring for its columns. Returns a report (``report.store`` is the
    path). An existing store made from the same inputs and settings is reused unless ``overwrite``."""
    started = time.perf_counter()
    for name, value in (("limit", limit), ("chunk_size", chunk_size), ("workers", workers)):
        if value is not None and int(value) < 1:
            raise SpecCLIPError(f"{name} must be at least 1, got {value}")
    columns = dict(DEFAULT_COLUMNS if columns is None else columns)
    target = get_modality(modality).name
    source_path, source_name = source_store_path(like, progress)
    source = SpectralStore.open(source_path)
    if target in source.modalities:
        raise SpecCLIPError(f"{source_path} already holds {target}; pick a modality it lacks")
    real_modalities = source.modalities
    output = Path(output) if output is not None else default_output(source_name, target, seed, limit)
    workers = default_workers() if workers is None else max(1, int(workers))

    observer = NativeObserver(target, resolving_power=resolving_power, calibration=calibration, emulator=emulator)
    described = asdict(observer.describe())
    n_source = len(source) if limit is None else min(int(limit), len(source))
    try:
        version = importlib_metadata.version("specclip-sim")
    except importlib_metadata.PackageNotFoundError:
        version = "unknown"
    key = _key(
        format=FORMAT, source=source.fingerprint, modality=target, seed=seed, limit=limit, missing=missing, columns=columns,
        observer=described, chunk_size=chunk_size, version=version,
        calibration=None if observer.calibration is None else hashlib.sha256(observer.calibration.model_dump_json().encode()).hexdigest(),
    )
    report = PairedReport(str(output), target, real_modalities, n_source)
    if output.exists() and not overwrite:
        try:
            existing = SpectralStore.open(output)
            same = existing.meta.get("simulation", {}).get("key") == key
        except SpecCLIPError:
            same, existing = False, None
        if same:
            report.reused, report.n_written = True, len(existing)
            return report
        raise SpecCLIPError(f"{output} exists and was made from other inputs or settings; pass overwrite=True (--overwrite) to replace it")

    # inputs (and imputations) from every source row, so a star gets the same values with or without --limit
    labels = source.labels()
    chained = is_chained(source.label_columns)
    if chained:  # one star, one set of inputs: the rv, [Fe/H] and A_K the source's simulation used
        columns = {**columns, "feh": "sim_fe_h", "a_k": "sim_a_k"}
    inputs, keep, flags, missing_record = simulation_inputs(labels, columns, missing, seed)
    if "snr" in columns:  # each star's S/N from a label column instead of the calibration's distribution
        snr = np.asarray(labels[columns["snr"]], dtype=np.float64)
        bad = keep & ~(np.isfinite(snr) & (snr > 0))
        if bad.any():
            raise SpecCLIPError(f"{source_path}: label column {columns['snr']!r} (the S/N to simulate at) must be finite and positive; it is not for {int(bad.sum())} star(s), e.g. {source.ids[np.flatnonzero(bad)[0]]}")
        inputs["snr"] = snr
    if chained:
        inputs["rv"] = np.asarray(labels["rv"], dtype=np.float64)
        flags = {name: np.asarray(labels[name]).astype(np.int64) for name in ("fe_h_imputed", "a_k_imputed")}
    labels = {k: v[:n_source] for k, v in labels.items()}
    inputs = {k: v[:n_source] for k, v in inputs.items()}
    flags = {k: v[:n_source] for k, v in flags.items()}
    keep = keep[:n_source]
    ids = source.ids[:n_source]
    report.n_dropped = int((~keep).sum())
    report.n_fe_h_imputed = int(flags["fe_h_imputed"].sum())
    report.n_a_k_imputed = int(flags["a_k_imputed"].sum())
    kept = np.flatnonzero(keep)
    if len(kept) == 0:
        raise SpecCLIPError(f"no star of {source_path} can be simulated ({missing_record})")

    label_kinds = dict(source.label_columns)
    new_columns = added_columns(real_modalities, target, source.label_columns)
    clash = [c for c in new_columns if c in label_kinds]
    if clash:
        raise SpecCLIPError(f"the source store already has label column(s) {clash}; they would be overwritten")
    label_kinds.update(new_columns)
    layouts: dict[str, Any] = {m: ModalityLayout(source.wavelength(m), source.stats_names(m)) for m in real_modalities}
    layouts[target] = get_modality(target)
    how = {
        "emulator": described["emulator"],
        "resolving_power": observer.resolving_power,
        "arms": described["arms"],
        "nominal_resolving_power": described["nominal_resolving_power"],
        "settings": described["settings"],
        "calibration": described["calibration"],
        "writer": described["writer"],
        "path": f"simulated with specclip-sim {version}, written as native files by {described['writer']}, read back by the {target} readers, preprocessed by {target}",
        "labels": "simulated from the source's labels: " + ", ".join(f"{k} <- {v}" for k, v in columns.items()),
        "not_simulated": "no [alpha/M] or other abundance response; no rotation, binaries, emission, telluric or sky residuals (specclip-sim README)",
    }
    simulated_modalities = [*source.meta.get("simulated_modalities", []), target]
    truly_real = [m for m in real_modalities if m not in simulated_modalities]
    attrs = {
        "note": f"{', '.join(simulated_modalities)} spectra in this store are SIMULATED (specclip-sim), not observations; {', '.join(truly_real)} rows are real, copied from {source_name}.",
        "simulated_modalities": simulated_modalities,
        "real_modalities": truly_real,
        "simulated": {**source.meta.get("simulated", {}), target: how},
        "source": {"name": source_name, "path": str(source_path), "fingerprint": source.fingerprint, "meta": {k: v for k, v in source.meta.items() if k != "ingest_report"}},
        "missing_labels": missing_record,
        "simulation": {"key": key, "seed": seed, "limit": limit, "chunk_size": chunk_size, "format": FORMAT, "created": datetime.datetime.now().isoformat(timespec="seconds")},
    }
    for name in ("dataset", "licence", "citation"):
        if name in source.meta:
            attrs[name] = source.meta[name]
    attrs["title"] = f"{source.meta.get('title', source_name)} + SIMULATED {target}"

    rejected: list[tuple[str, str]] = []
    seconds: dict[str, float] = {}
    cpu_seconds: dict[str, float] = {}
    sim_inputs = {k: v[kept] for k, v in inputs.items()}
    output.parent.mkdir(parents=True, exist_ok=True)
    with SpectralStore.build(output, layouts, label_kinds, attrs, overwrite=overwrite) as store:
        for positions, chunk in observer.run(sim_inputs, ids[kept], seed, chunk_size=chunk_size, workers=workers, progress=progress, workdir=workdir):
            rejected += chunk.rejected
            for step, value in chunk.seconds.items():
                seconds[step] = seconds.get(step, 0.0) + value
            for step, value in chunk.cpu_seconds.items():
                cpu_seconds[step] = cpu_seconds.get(step, 0.0) + value
            spectra = chunk.spectra
            if spectra is None:
                continue
            where = {sid: p for p, sid in zip(positions, ids[kept][positions])}
            picked = np.array([where[sid] for sid in spectra.ids])
            source_rows = kept[picked]
            meta = spectra.meta
            row_labels = {c: values[source_rows] for c, values in labels.items()}
            row_labels[f"simulated_{target}"] = np.ones(len(source_rows), np.int64)
            if chained:  # the star's columns are the source's; only the S/N is this instrument's
                row_labels[f"sim_snr_{target}"] = meta["snr"]
            else:
                row_labels.update(
                    rv=meta["rv"], sim_snr=meta["snr"], sim_fe_h=meta["feh"], sim_a_k=meta["a_k_applied"],
                    fe_h_imputed=flags["fe_h_imputed"][source_rows], a_k_imputed=flags["a_k_imputed"][source_rows],
                    emulator_teff=meta["teff_emulated"], emulator_logg=meta["logg_emulated"], emulator_fe_h=meta["feh_emulated"],
                    emulator_clipped=meta["clipped"].astype(np.int64), emulator_covered=meta["covered"].astype(np.int64),
                    emulator_capped_fraction=meta["capped_fraction"], emulator_model=meta["emulator_model"],
                )
                for m in real_modalities:
                    row_labels[f"simulated_{m}"] = np.zeros(len(source_rows), np.int64)
            blocks = {m: source.read(m, source_rows) for m in real_modalities}
            blocks[target] = spectra
            store.append(spectra.ids, blocks, row_labels)
        report.n_written = len(store)
        report.n_rejected = len(rejected)
        seconds["wall"] = time.perf_counter() - started
        report.seconds = {k: round(v, 2) for k, v in seconds.items()}
        store.set_meta(
            rejected=[list(r) for r in rejected[:1000]],
            counts={"source_rows": n_source, "written": report.n_written, "dropped": report.n_dropped, "rejected": len(rejected)},
            timings={
                "seconds": report.seconds, "cpu_seconds": {k: round(v, 2) for k, v in cpu_seconds.items()}, "workers": workers,
                "note": "per-step wall and CPU seconds are summed over worker processes; wall is end to end",
            },
        )
    return report
