"""Simulated observations that go through exactly the code real ones go through.

:class:`NativeObserver` simulates spectra of stars for a registered modality's instrument, writes them
as that modality's native files (its registered ``Writer``), reads them back with its registered
readers and preprocesses them with the modality's own ``preprocess``, like an ingest of real files.
Work is done in chunks (each with its own random stream derived from the seed and the chunk's index,
so a chunk's spectra do not depend on how many processes do the work), optionally on several
processes; the files of a chunk live in a temporary folder only while it is processed.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
from threadpoolctl import threadpool_limits

from specclip_core.api import (
    SpecCLIPError,
    Spectra,
    choose_reader,
    get_modality,
    get_registry,
    preprocess_robustly,
    progress_bar,
    readers_for,
)
from specclip_sim.calibration import Calibration, load_calibration
from specclip_sim.empirical import CorrelatedNoise
from specclip_sim.emulator import Emulator
from specclip_sim.simulate import InstrumentSimulator, SimulationSettings

STEPS = ("simulate", "write", "read", "preprocess")
MaskSource = Literal["calibration", "uniform"]


@dataclass
class ObservedChunk:
    """One chunk: preprocessed simulated spectra (``meta``: the simulation's columns), the ids that
    preprocessing rejected with the reason, wall and CPU seconds per step (the CPU time of the process
    that did the chunk: on shared cores wall time includes waiting), and native-file statistics."""

    index: int
    spectra: Spectra | None
    rejected: list[tuple[str, str]]
    seconds: dict[str, float]
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    n_files: int = 0
    file_bytes: int = 0
    native_masked_fraction: float = 0.0


@dataclass
class ObserverDescription:
    """What an observer simulates, for provenance records."""

    modality: str
    writer: str
    reader: str | None
    resolving_power: float
    nominal_resolving_power: float
    settings: dict[str, Any]
    calibration: dict[str, Any] | None
    emulator: dict[str, str] = field(default_factory=dict)
    arms: list[dict[str, Any]] | None = None


def chunk_seed(seed: int, index: int) -> int:
    """The seed of chunk ``index``: independent streams per chunk, fixed by (seed, index)."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1, dtype=np.uint64)[0])


class NativeObserver:
    """Simulate -> the modality's native files -> its readers -> its preprocessing.

    ``resolving_power``: default the calibration's (one per arm where the calibration gives
    ``arms``, else its effective one), else the instrument's nominal one; a number given here is
    used over the whole grid.
    ``calibration``: ``"auto"`` loads the shipped calibration of the modality (if any), or give one,
    or None for none. ``masks``: masked pixels drawn from the calibration's real mask runs
    (``"calibration"``, when it has them) or the simulator's uniform runs (``"uniform"``).
    ``correction``: apply the calibration's empirical correction of the emulator, when it has one.
    ``snr_values``: the S/N distribution to draw from when the labels have no ``snr`` column
    (default: the calibration's).
    ``noise``, ``sky``, ``flux_shapes``, ``variety``, ``background``: use that part of the
    calibration's parts file (:mod:`specclip_sim.empirical`), when it has one: correlated noise with
    the real per-pixel amplitude, real sky-residual windows, real flux-calibration shapes, the
    star-to-star residual of real stars of similar labels, the noise variance's real background.
    """

    def __init__(
        self,
        modality: str,
        resolving_power: float | None = None,
        calibration: Calibration | Literal["auto"] | None = "auto",
        emulator: Emulator | None = None,
        settings: SimulationSettings | None = None,
        snr_values: Sequence[float] | np.ndarray | None = None,
        masks: MaskSource = "calibration",
        writer: str | None = None,
        correction: bool = True,
        noise: bool = True,
        sky: bool = True,
        flux_shapes: bool = True,
        variety: bool = True,
        background: bool = True,
    ):
        self.modality = get_modality(modality)
        instrument = self.modality.instrument
        if instrument is None:
            raise SpecCLIPError(f"modality {self.modality.name!r} describes no instrument (Modality.instrument); it cannot be simulated")
        self.calibration = load_calibration(self.modality.name) if calibration == "auto" else calibration
        cal = self.calibration
        registry = get_registry()
        writers = [registry.get("writer", n).build() for n in registry.names("writer")]
        writers = [w for w in writers if w.modality == self.modality.name and (writer is None or w.name == writer)]
        if not writers:
            raise SpecCLIPError(f"no writer registered for modality {self.modality.name!r}{f' named {writer!r}' if writer else ''}: simulated spectra cannot be put through its readers")
        self.writer = writers[0]
        self.readers = list(readers_for(self.modality.name))
        if not self.readers:
            raise SpecCLIPError(f"no reader registered for modality {self.modality.name!r}")
        self.resolving_power = float(resolving_power or (cal.resolving_power if cal else instrument.resolving_power))
        self.arms = cal.arms if (resolving_power is None and cal is not None and cal.arms) else None
        settings = settings or SimulationSettings()
        updates: dict[str, Any] = {"vacuum": not instrument.air_wavelengths}
        if settings.snr_band is None:
            updates["snr_band"] = cal.snr_band if cal else instrument.snr_band
        self.settings = settings.model_copy(update=updates)
        values = snr_values if snr_values is not None else (cal.snr_values if cal else [])
        self.snr_values = np.asarray(values, dtype=np.float64)
        if self.snr_values.size == 0:
            raise SpecCLIPError(
                f"modality {self.modality.name!r} has no calibration (its plugin names none in Instrument.calibration) "
                "and no S/N values were given: missing the S/N "
                "distribution to draw noise from (snr_values=, or ship a calibration with snr_values)"
            )
        self.instrument = replace(instrument, resolving_power=self.resolving_power)
        wavelength = np.asarray(instrument.native_wavelength, dtype=np.float64)
        throughput = cal.throughput_on(wavelength) if cal else None
        mask_runs = None
        if masks == "calibration" and cal is not None and cal.mask_runs:
            mask_runs = shift_runs(cal.mask_runs, cal.pixel_offset(wavelength), len(wavelength))
        self.masks = "calibration" if mask_runs is not None else "uniform"
        self.correction = cal.correction if (correction and cal is not None) else None
        parts = cal.parts() if (cal is not None and (noise or sky or flux_shapes or variety or background)) else None
        offset = cal.pixel_offset(wavelength) if cal is not None else 0
        self.noise = parts.noise if (noise and parts is not None) else None
        if self.noise is not None:
            self.noise = CorrelatedNoise(np.interp(wavelength, cal.native_wavelength(len(self.noise.scale)), self.noise.scale), self.noise.kernel)
        self.sky = parts.sky.shifted(offset, len(wavelength)) if (sky and parts is not None and parts.sky is not None) else None
        self.flux_shapes = parts.flux_shapes if (flux_shapes and parts is not None) else None
        self.variety = parts.variety if (variety and parts is not None) else None
        self.background = parts.background if (background and parts is not None) else None
        if self.background is not None:
            self.background = self.background.resampled(wavelength, cal.native_wavelength(len(self.background.throughput)))
        self.simulator = InstrumentSimulator(
            self.instrument, emulator, self.settings, throughput=throughput, mask_runs=mask_runs, correction=self.correction, arms=self.arms,
            noise=self.noise, sky=self.sky, flux_shapes=self.flux_shapes, variety=self.variety, background=self.background,
        )

    def describe(self) -> ObserverDescription:
        cal = self.calibration
        return ObserverDescription(
            modality=self.modality.name,
            writer=self.writer.name,
            reader=None,
            resolving_power=self.resolving_power,
            nominal_resolving_power=float(self.modality.instrument.resolving_power),
            settings={
                **self.settings.model_dump(mode="json"), "masks": self.masks, "throughput": cal is not None and cal.throughput is not None,
                "correction": None if self.correction is None else self.correction.measured,
                "noise": self.noise is not None, "sky": self.sky is not None, "flux_shapes": self.flux_shapes is not None,
                "variety": self.variety is not None, "background": self.background is not None,
            },
            calibration=None if cal is None else {"modality": cal.modality, "resolving_power": cal.resolving_power, "snr_band": list(cal.snr_band), "n_snr_values": len(cal.snr_values), "n_mask_spectra": len(cal.mask_runs or []), "measured": cal.measured},
            emulator=dict(self.simulator.emulator.metadata),
            arms=None if self.arms is None else [arm.model_dump() for arm in self.arms],
        )

    # -- one chunk ---------------------------------------------------------------------------------
    def observe(self, labels: Mapping[str, np.ndarray], ids: Sequence[str] | np.ndarray, seed: int, index: int = 0, workdir: str | Path | None = None) -> ObservedChunk:
        """Simulate, write, read back and preprocess one chunk of stars."""
        ids = np.asarray(ids).astype(str)
        seconds, cpu = dict.fromkeys(STEPS, 0.0), dict.fromkeys(STEPS, 0.0)
        clock = [time.perf_counter(), time.process_time()]

        def lap(step: str) -> None:
            now = [time.perf_counter(), time.process_time()]
            seconds[step], cpu[step] = now[0] - clock[0], now[1] - clock[1]
            clock[:] = now

        raw = self.simulator.simulate(labels, ids, self.snr_values, chunk_seed(seed, index))
        lap("simulate")
        folder = Path(tempfile.mkdtemp(prefix=f"chunk{index}-", dir=workdir))
        try:
            paths = self.writer.write(raw, folder)
            file_bytes = sum(p.stat().st_size for p in paths)
            lap("write")
            reader = choose_reader(paths[0], self.readers)
            back = Spectra.concatenate([reader.read(p) for p in paths])
            if len(back) != len(raw):
                raise SpecCLIPError(f"writer {self.writer.name} and reader {reader.name} gave back {len(back)} of {len(raw)} spectra; simulation needs every spectrum back, in order")
            lap("read")
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        # the files hold the spectra in order: give the read-back spectra their original ids and the simulation's meta
        back = Spectra(back.wavelength, back.flux, back.ivar, back.mask, ids, raw.meta)
        processed, rejected = preprocess_robustly(self.modality, back, progress=False)
        if processed is not None:
            where = {sid: i for i, sid in enumerate(ids)}
            rows = np.array([where[sid] for sid in processed.ids])
            processed = Spectra(processed.wavelength, processed.flux, processed.ivar, processed.mask, processed.ids, {k: v[rows] for k, v in raw.meta.items()}, processed.stats)
        lap("preprocess")
        return ObservedChunk(index, processed, rejected, seconds, cpu, len(paths), file_bytes, float(back.mask.mean()))

    # -- many chunks -------------------------------------------------------------------------------
    def run(
        self,
        labels: Mapping[str, np.ndarray],
        ids: Sequence[str] | np.ndarray,
        seed: int,
        chunk_size: int = 1024,
        workers: int = 1,
        progress: bool = True,
        workdir: str | Path | None = None,
    ) -> Iterator[tuple[np.ndarray, ObservedChunk]]:
        """Yield (row indices, chunk) in order, chunk by chunk; ``workers`` > 1 uses that many forked processes."""
        ids = np.asarray(ids).astype(str)
        n = len(ids)
        columns = {k: np.asarray(v) for k, v in labels.items()}
        bounds = [(lo, min(lo + chunk_size, n)) for lo in range(0, n, chunk_size)]
        with progress_bar(n, f"simulating {self.modality.name} (simulated)", "spectrum", disable=not progress) as bar:
            if workers <= 1 or len(bounds) <= 1 or "fork" not in multiprocessing.get_all_start_methods():
                for index, (lo, hi) in enumerate(bounds):
                    chunk = self.observe({k: v[lo:hi] for k, v in columns.items()}, ids[lo:hi], seed, index, workdir)
                    bar.update(hi - lo)
                    yield np.arange(lo, hi), chunk
                return
            global _OBSERVER
            _OBSERVER = self  # inherited by the forked workers
            try:
                with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
                    pending: dict[int, Future] = {}
                    submitted = 0
                    for index, (lo, hi) in enumerate(bounds):
                        while submitted < len(bounds) and submitted < index + workers + 1:
                            a, b = bounds[submitted]
                            pending[submitted] = pool.submit(_observe_in_worker, {k: v[a:b] for k, v in columns.items()}, ids[a:b], seed, submitted, workdir)
                            submitted += 1
                        chunk = pending.pop(index).result()
                        bar.update(hi - lo)
                        yield np.arange(lo, hi), chunk
            finally:
                _OBSERVER = None


_OBSERVER: NativeObserver | None = None


def _observe_in_worker(labels, ids, seed, index, workdir) -> ObservedChunk:
    assert _OBSERVER is not None, "worker started without an observer"
    with threadpool_limits(1):  # one process per core
        return _OBSERVER.observe(labels, ids, seed, index, workdir)


def shift_runs(runs: list[list[tuple[int, int]]], offset: int, n: int) -> list[np.ndarray]:
    """Mask runs moved by ``offset`` pixels onto a grid of ``n`` pixels (runs falling off it are cut)."""
    out = []
    for spectrum in runs:
        array = np.asarray(spectrum, dtype=np.int64).reshape(-1, 2)
        first = np.clip(array[:, 0] + offset, 0, n)
        last = np.clip(array[:, 0] + array[:, 1] + offset, 0, n)
        keep = last > first
        out.append(np.stack([first[keep], (last - first)[keep]], axis=1))
    return out


def default_workers() -> int:
    """Processes to use: the CPU cores this process may run on, at most 4 (SPECCLIP_SIM_WORKERS overrides)."""
    if os.environ.get("SPECCLIP_SIM_WORKERS"):
        return max(1, int(os.environ["SPECCLIP_SIM_WORKERS"]))
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(1, min(cores, 4))
