"""Helpers shared by the bench/sim_*.py scripts: the real LAMOST DR10 spectra (ingested once into the
specclip cache exactly like any real data), their simulated twins, machine load, and the three stars
seen by both LAMOST and Gaia XP. Everything simulated here is labelled so."""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from specclip_core.data.datasets import cache_dir
from specclip_core.data.ingest import ingest_files, read_label_table
from specclip_core.data.store import SpectralStore
from specclip_core.interfaces import Spectra
from specclip_sim.observe import NativeObserver
from specclip_sim.wavelength import C_KMS

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
SHARED = HERE.parent.parent / "shared" / "data"
DR10 = SHARED / "lamost-dr10"
THREE_STARS = {  # LAMOST DR10 OBSID -> Gaia DR3 source id (../shared/data/README.md)
    "948709160": "3444348060956026368",
    "966003093": "47974788992607488",
    "976308215": "3314245809274264832",
}


def in_train_split(ids) -> np.ndarray:
    """The DR10 stars an empirical correction may learn from (70%, by a hash of the id); the other 30%
    are held out for every realism and sim-to-real figure that involves the correction."""
    import hashlib

    return np.array([int(hashlib.sha256(f"realism:{i}".encode()).hexdigest()[:8], 16) / 16**8 < 0.7 for i in ids])


def have_dr10() -> bool:
    """Whether the real DR10 spectra are there; says what is missing on stderr when not."""
    if DR10.exists():
        return True
    print(f"needs {DR10}", file=sys.stderr)
    return False


def machine() -> str:
    load = " / ".join(f"{v:.1f}" for v in os.getloadavg())
    return f"{os.cpu_count()} CPU cores ({platform.machine()}), shared with other work; load average {load}"


def dr10_store(progress: bool = True) -> SpectralStore:
    """The 2,224 real DR10 spectra, preprocessed by lamost_lrs, with their LASP labels (cached)."""
    path = cache_dir() / "bench" / "lamost-dr10.zarr"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        labels = read_label_table(str(DR10 / "labels.csv"))
        ingest_files([DR10 / "spectra"], "lamost_lrs", path, labels=labels, id_column="obsid", progress=progress)
    return SpectralStore.open(path)


def dr10_labels_for_simulation(store: SpectralStore, a_k: float = 0.0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """ids and simulator inputs of each real DR10 spectrum: its LASP Teff/logg/[Fe/H], rv = c z, its
    own header S/N(g), and A_K (unknown for these stars: ``a_k``)."""
    labels = store.labels(["teff", "logg", "feh", "z", "snrg"])
    n = len(store)
    inputs = {
        "teff": labels["teff"],
        "logg": labels["logg"],
        "feh": labels["feh"],
        "a_k": np.full(n, a_k),
        "rv": labels["z"] * C_KMS,
        "snr": labels["snrg"],
    }
    return store.ids, inputs


def start_dr10_bench() -> tuple[float, str, SpectralStore, np.ndarray, dict[str, np.ndarray]] | None:
    """What a bench on the real DR10 spectra starts from: its start time, the machine's load, the
    DR10 store and each spectrum's id and simulator inputs; None (said on stderr) without the data."""
    if not have_dr10():
        return None
    started, load = time.perf_counter(), machine()
    store = dr10_store()
    ids, inputs = dr10_labels_for_simulation(store)
    return started, load, store, ids, inputs


def variant_arguments(parser, variants: list[str], name: str) -> None:
    """The options of a bench that simulates DR10 twins per variant: which variants, workers, the
    result name, and a calibration file to use instead of the shipped one."""
    parser.add_argument("--variants", nargs="+", default=variants)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--name", default=name)
    parser.add_argument("--calibration", help="a calibration file to use instead of the shipped one (e.g. an earlier version)")


def simulate_preprocessed(observer: NativeObserver, ids, inputs, seed: int = 0, workers: int = 1, chunk_size: int = 512, progress: bool = True) -> tuple[Spectra, dict[str, float], list]:
    """Simulated twins, through native files, the reader and lamost_lrs preprocessing; seconds per step."""
    parts, rejected = [], []
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    for _, chunk in observer.run(inputs, ids, seed, chunk_size=chunk_size, workers=workers, progress=progress):
        if chunk.spectra is not None:
            parts.append(chunk.spectra)
        rejected += chunk.rejected
        for key, value in chunk.seconds.items():
            seconds[key] = seconds.get(key, 0.0) + value
    seconds["wall"] = time.perf_counter() - started
    return Spectra.concatenate(parts), seconds, rejected


def align(real: Spectra, simulated: Spectra) -> tuple[Spectra, Spectra]:
    """The rows both hold, in the same order."""
    common = [i for i in real.ids if i in set(simulated.ids)]
    where_r = {sid: k for k, sid in enumerate(real.ids)}
    where_s = {sid: k for k, sid in enumerate(simulated.ids)}
    return real.subset([where_r[i] for i in common]), simulated.subset([where_s[i] for i in common])


def add_parts(calibration, arrays: dict[str, np.ndarray], part: str, provenance: dict[str, str], output_dir: str | None = None) -> Path:
    """Write the LAMOST calibration's parts file with ``arrays`` added (or replaced), and the
    calibration naming its new SHA-256 with ``provenance`` (by, data, model; today's date added) as
    ``measured[part]``: over the shipped files, or into ``output_dir``. Returns the parts file."""
    import datetime

    from specclip_sim.calibration import calibration_path, file_sha256

    shipped = calibration_path("lamost_lrs")
    folder = Path(output_dir) if output_dir else shipped.parent
    folder.mkdir(parents=True, exist_ok=True)
    parts_path = folder / calibration.parts_file
    with np.load(shipped.parent / calibration.parts_file, allow_pickle=False) as data:
        merged = {k: data[k] for k in data.files}
    merged.update(arrays)
    np.savez_compressed(parts_path, **merged)
    measured = dict(calibration.measured)
    measured[part] = {"by": provenance["by"], "date": datetime.date.today().isoformat(), **{k: v for k, v in provenance.items() if k != "by"}}
    calibration.model_copy(update={"parts_sha256": file_sha256(parts_path), "measured": measured}).save(folder / shipped.name)
    return parts_path
