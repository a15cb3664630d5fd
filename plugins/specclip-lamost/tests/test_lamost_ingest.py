"""The core's ingest (``specclip data ingest lamost ...``) with this plugin's readers, on the copied files."""

from __future__ import annotations

import gzip
import shutil

import numpy as np
from astropy.table import Table

from specclip_core.api import SpectralStore, ingest_files
from specclip_core.testing import cli_main as main


def test_ingest_both_layouts_with_labels(data_dir, tmp_path):
    table = Table.read(data_dir / "labels.csv", format="ascii.csv")
    labels = {name: np.asarray(table[name]) for name in table.colnames}
    report = ingest_files([data_dir], "lamost", tmp_path / "lamost.zarr", labels=labels, id_column="obsid", progress=False)
    assert report.n_files == 5 and report.n_spectra_written == 5 and not report.skipped_files and not report.rejected_spectra
    store = SpectralStore.open(tmp_path / "lamost.zarr")
    assert sorted(store.ids) == sorted(["1010003232", "976308215", "966704132", "107209", "263414102"])
    assert store.wavelength("lamost_lrs").size == 1462 and store.stats_names("lamost_lrs") == ("mean", "std")
    spectra = store.spectra("lamost_lrs")
    assert np.all(np.isfinite(spectra.flux)) and np.all(spectra.ivar[spectra.mask] == 0)
    assert np.all(spectra.flux[spectra.mask] == 1.0)
    teff = dict(zip(spectra.ids, spectra.meta["teff"]))
    assert teff["976308215"] == np.float64(6248.10009765625) and np.isnan(teff["107209"])
    snrr = dict(zip(spectra.ids, spectra.meta["snrr"]))  # a header column the labels do not have
    assert snrr["107209"] == 68.58
    assert dict(zip(spectra.ids, spectra.meta["subclass"]))["966704132"] == "A1"


def test_bad_files_are_skipped_and_named(data_dir, tmp_path):
    folder = tmp_path / "spectra"
    folder.mkdir()
    good = data_dir / "spec-59609-TD042836N191049H01_sp08-215.fits.gz"
    shutil.copy(good, folder / good.name)
    data = gzip.decompress(good.read_bytes())
    (folder / "spec-59609-cut_sp08-216.fits.gz").write_bytes(gzip.compress(data[: len(data) // 2]))
    (folder / "spec-0-empty_sp01-001.fits").write_bytes(b"")
    (folder / "spec-0-text_sp01-002.fits.gz").write_bytes(gzip.compress(b"obsid,flux\n1,2\n" * 100))
    report = ingest_files([folder], "lamost_lrs", tmp_path / "out.zarr", progress=False)
    assert report.n_spectra_written == 1 and len(report.skipped_files) == 3
    skipped = {path.rsplit("/", 1)[-1]: reason for path, reason in report.skipped_files}
    assert set(skipped) == {"spec-59609-cut_sp08-216.fits.gz", "spec-0-empty_sp01-001.fits", "spec-0-text_sp01-002.fits.gz"}
    assert "cannot read" in skipped["spec-59609-cut_sp08-216.fits.gz"] or "truncated" in skipped["spec-59609-cut_sp08-216.fits.gz"]


def test_cli_ingest_of_dr8_files_with_groups(data_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SPECCLIP_PROGRESS", "0")
    folder = tmp_path / "dr8"
    folder.mkdir()
    for path in data_dir.glob("spec-5[56]*.fits.gz"):
        shutil.copy(path, folder / path.name)
    store_path = tmp_path / "dr8.zarr"
    code = main(["data", "ingest", "lamost", str(folder), "-o", str(store_path), "--labels", str(data_dir / "groups.csv"), "--id-column", "combined_obsid"])
    assert code == 0, capsys.readouterr().err
    assert "ingested 2 lamost_lrs spectra" in capsys.readouterr().out
    store = SpectralStore.open(store_path)
    labels = store.labels(["GroupID", "GroupSize", "obsid"])
    assert np.all(labels["GroupID"] == 7.0) and np.all(labels["GroupSize"] == 2.0)
    assert sorted(labels["obsid"].astype(np.int64).astype(str)) == sorted(store.ids)


def test_files_marked_simulated_are_recorded_per_spectrum(coadd_files, spectra_by_id, tmp_path):
    from specclip_core.api import Spectra, get_registry

    folder = tmp_path / "mixed"
    folder.mkdir()
    real = coadd_files["976308215"]
    shutil.copy(real, folder / real.name)  # a real DR10 file: no SIMULATED card
    original = spectra_by_id["976308215"]
    fake = Spectra(original.wavelength, original.flux, original.ivar, original.mask, ["900000001"], {"simulated": np.array([True])})
    writer = get_registry().get("writer", "lamost_lrs_coadd").build()
    (written,) = writer.write(fake, folder)
    report = ingest_files([folder], "lamost_lrs", tmp_path / "mixed.zarr", progress=False)
    store = SpectralStore.open(tmp_path / "mixed.zarr")
    flags = dict(zip(store.ids, store.labels(["simulated"])["simulated"], strict=True))
    assert flags == {"976308215": 0, "900000001": 1} and store.simulated_modalities == ["lamost_lrs"]
    assert report.n_simulated == 1 and report.columns["simulated"] == "ingest (the files' flags)"
    assert "simulated: 1 of 2 spectra (from the files)" in report.summary()
    report = ingest_files([folder], "lamost_lrs", tmp_path / "none.zarr", simulated=False, progress=False)
    assert report.n_spectra_written == 1 and report.skipped_files[0][0] == str(written)
    assert "says simulated = True" in report.skipped_files[0][1]
