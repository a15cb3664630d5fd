"""``specclip predict`` end to end on the copied real files, with a tiny model trained in seconds.

The model (a one-block masked transformer and MLP heads for teff, logg, feh) is trained on noisy
copies of the three labelled DR10 spectra; what is tested is the path from native files to a
catalogue: one row per readable file (both layouts), the unreadable ones listed with a reason.
"""

from __future__ import annotations

import gzip
import shutil

import numpy as np
from astropy.io import fits
from astropy.table import Table

from specclip_core.api import SpectralStore, get_modality, ingest_files, read_label_table, run_spec, validate_spec
from specclip_core.testing import cli_main as main
from specclip_lamost.readers import read_lamost

LABELS = ["teff", "logg", "feh"]
TINY_TRAIN = {"epochs": 1, "batch_size": 16, "lr": 1.0e-3, "device": "cpu", "patience": None}


def _training_store(data_dir, tmp_path) -> SpectralStore:
    """16 noisy copies of each labelled real spectrum (ids obsid-k), so that every split has rows."""
    ingest_files([data_dir], "lamost", tmp_path / "real.zarr", labels=read_label_table(str(data_dir / "labels.csv")), id_column="obsid", progress=False)
    real = SpectralStore.open(tmp_path / "real.zarr")
    table = real.labels(LABELS)
    labelled = np.flatnonzero(np.isfinite(table["teff"]))
    arrays = real.read("lamost_lrs", labelled)
    rng = np.random.default_rng(0)
    copies = 16
    flux = np.repeat(arrays["flux"], copies, axis=0)
    flux = (flux + rng.normal(0, 0.02, flux.shape)).astype(np.float32)
    parts = {"flux": flux, **{k: np.repeat(arrays[k], copies, axis=0) for k in ("ivar", "mask", "stats")}}
    ids = [f"{real.ids[row]}-{k}" for row in labelled for k in range(copies)]
    modality = get_modality("lamost_lrs")
    with SpectralStore.build(tmp_path / "train.zarr", {modality.name: modality}, {label: "float" for label in LABELS}) as store:
        store.append(ids, {modality.name: parts}, {label: np.repeat(table[label][labelled], copies) for label in LABELS})
    return SpectralStore.open(tmp_path / "train.zarr")


def test_predict_writes_one_row_per_readable_file(data_dir, tmp_path, capsys, monkeypatch, bad_lamost_files):
    monkeypatch.setenv("SPECCLIP_PROGRESS", "0")
    store = _training_store(data_dir, tmp_path)
    run_dir = tmp_path / "run"
    spec = validate_spec(
        {
            "name": "lamost-tiny",
            "seed": 0,
            "run_dir": str(run_dir),
            "data": {"store": str(store.path)},
            "stages": {
                "pretrain": {
                    "kind": "pretrain",
                    "modality": "lamost_lrs",
                    "encoder": {"name": "masked_transformer", "depth": 1, "width": 16, "heads": 2},
                    "train": TINY_TRAIN,
                },
                "heads": {
                    "kind": "heads",
                    "needs": ["pretrain"],
                    "modality": "lamost_lrs",
                    "labels": LABELS,
                    "head": {"name": "mlp", "hidden": [16]},
                    "train": TINY_TRAIN,
                },
            },
        }
    )
    run_spec(spec, progress=False, log=lambda *_: None)

    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for path in data_dir.glob("spec-*.fits.gz"):  # 3 DR10 (COADD table) + 2 DR8 (5 x N image) files
        shutil.copy(path, inputs / path.name)
    good = gzip.decompress((data_dir / "spec-59609-TD042836N191049H01_sp08-215.fits.gz").read_bytes())
    (inputs / "spec-59609-cut_sp08-216.fits.gz").write_bytes(gzip.compress(good[: len(good) // 3]))  # corrupt
    fits.HDUList([fits.PrimaryHDU(np.zeros((4, 4), np.float32))]).writeto(inputs / "spec-0-foreign_sp01-001.fits")  # FITS, not LAMOST
    foreign_csv = tmp_path / "xp_like.csv"  # named explicitly: a file of another format
    foreign_csv.write_text("source_id,flux\n1,2\n")
    catalog = tmp_path / "catalog.csv"

    code = main(["predict", str(run_dir), str(inputs), str(foreign_csv), "-o", str(catalog), "--quiet"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "wrote 8 rows (id, source, teff, logg, feh, ood_knn_pct, flag_knn, flag_range_teff, flag_range_logg, flag_range_feh, ood_range_p, flags, reason)" in out
    table = Table.read(catalog, format="ascii.csv", comment="#")
    reasons = np.asarray(table["reason"].filled(""), dtype=str)
    assert sorted(table["source"][reasons != ""]) == sorted(["spec-59609-cut_sp08-216.fits.gz", "spec-0-foreign_sp01-001.fits", "xp_like.csv"])
    assert np.isnan(np.asarray(table["teff"][reasons != ""], dtype=float)).all()
    table = table[reasons == ""]
    assert len(table) == 5
    assert sorted(table["id"].astype(str)) == sorted(["1010003232", "976308215", "966704132", "107209", "263414102"])
    assert sorted(table["source"]) == sorted(p.name for p in data_dir.glob("spec-*.fits.gz"))
    for label in LABELS:
        assert np.all(np.isfinite(np.asarray(table[label], dtype=float)))
    assert catalog.read_text().startswith("# MODEL: specclip run lamost-tiny, heads heads")
    rejected = Table.read(tmp_path / "catalog.csv.rejected.csv", format="ascii.csv")
    names = [str(p).rsplit("/", 1)[-1] for p in rejected["input"]]
    assert sorted(names) == sorted(["spec-59609-cut_sp08-216.fits.gz", "spec-0-foreign_sp01-001.fits", "xp_like.csv"])
    for name in names:
        assert name in err

    # the corpus of bad files among the good ones: every good spectrum predicted, every bad file listed
    from specclip_core.testing import Tally, deadline

    harmless = []
    for case, path, _ in bad_lamost_files:
        try:
            read_lamost(path)
            harmless.append(case)  # a flip in the gzip header's time stamp: the same spectrum
        except Exception:
            continue
    tally = Tally("LAMOST files, predict")
    with deadline(120):
        code = main(["predict", str(run_dir), str(inputs), *(str(p) for _, p, _ in bad_lamost_files), "-o", str(catalog), "--quiet"])
    assert code == 0, capsys.readouterr().err
    listed = {str(p) for p in Table.read(tmp_path / "catalog.csv.rejected.csv", format="ascii.csv")["input"]}
    for case, path, _ in bad_lamost_files:
        if case not in harmless and not path.is_dir():
            tally.outcome(case, "right_reason" if str(path) in listed else "wrong_reason")
    table = Table.read(catalog, format="ascii.csv", comment="#")
    table = table[np.asarray(table["reason"].filled(""), dtype=str) == ""]
    tally.good_lost = 5 - len(set(table["id"].astype(str)) & {"1010003232", "976308215", "966704132", "107209", "263414102"})
    print(tally.summary())
    tally.assert_clean()
    assert len(table) == 5 + len(harmless)
