"""A corpus of bad LAMOST files, generated from the real ones: each is rejected by name with the
right reason (or, where the damage is harmless, read unchanged), and ingest keeps every good spectrum."""

from __future__ import annotations

import gzip
import io
import os
import shutil

import numpy as np
from astropy.io import fits

from specclip_core.api import SpectralStore, choose_reader, ingest_files, readers_for
from specclip_core.testing import Tally, deadline, meet_reader

GOOD = "spec-59588-GAC093N22B2_sp04-132.fits.gz"  # DR10, COADD table, OBSID 966704132 (conftest.FAULTS_SOURCE)


def _read(path):
    return choose_reader(path, list(readers_for("lamost_lrs"))).read(path)


def _with_values(data: bytes, obsid: int, **columns: float) -> bytes:
    """The gzipped file under another OBSID with COADD columns set to a value on every pixel."""
    with fits.open(io.BytesIO(gzip.decompress(data))) as hdul:
        hdul[0].header["OBSID"] = obsid
        for name, value in columns.items():
            hdul["COADD"].data[name][:] = value
        out = io.BytesIO()
        hdul.writeto(out, output_verify="silentfix")
    return gzip.compress(out.getvalue())


def test_every_bad_file_is_rejected_by_name_with_its_reason(data_dir, bad_lamost_files):
    reference = _read(data_dir / GOOD)
    tally = Tally("LAMOST files, readers")
    for case, path, expected in bad_lamost_files:
        meet_reader(tally, case, path, _read, expected, reference if case.startswith("spec-flip") else None)
    print(tally.summary())
    tally.assert_clean()
    assert tally.tried >= 70


def test_ingest_keeps_every_good_spectrum_among_bad_files(data_dir, tmp_path):
    good = sorted(data_dir.glob("spec-*.fits.gz"))
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for path in good[1:]:
        shutil.copy(path, mixed / path.name)
    shutil.copy(good[0], mixed / "937808200.fits.gz")  # renamed: matches no pattern, found by content
    shutil.copy(good[1], mixed / f"copy-of-{good[1].name}")  # a byte copy: a duplicated id
    data = (data_dir / GOOD).read_bytes()
    (mixed / "spec-overflow.fits.gz").write_bytes(_with_values(data, 966704199, FLUX=1e38, IVAR=1e38))
    (mixed / "spec-cut.fits.gz").write_bytes(data[: len(data) // 2])
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x20
    (mixed / "spec-flip.fits.gz").write_bytes(bytes(flipped))
    (mixed / "notes.txt").write_text("not a spectrum\n")
    os.mkfifo(tmp_path / "spec-fifo.fits.gz")
    tally = Tally("LAMOST files, ingest")
    with deadline(60):
        report = ingest_files([mixed, tmp_path / "spec-fifo.fits.gz"], "lamost", tmp_path / "out.zarr", progress=False)
    clean = ingest_files(good, "lamost", tmp_path / "clean.zarr", progress=False)
    checks = {os.path.basename(p.file): (p.check, p.id) for p in report.problems}
    expected = {
        "spec-cut.fits.gz": "gzip",
        "spec-flip.fits.gz": "gzip",
        "spec-fifo.fits.gz": "regular-file",
        "spec-overflow.fits.gz": "finite",
        f"copy-of-{good[1].name}": "duplicate-id",  # the copy comes after the files the patterns find
    }
    for name, check in expected.items():
        tally.outcome(name, "right_reason" if checks.get(name, ("",))[0] == check else "wrong_reason")
    tally.outcome("notes.txt", "right_reason" if report.unrecognised_files == [str(mixed / "notes.txt")] else "wrong_reason")
    store, reference = SpectralStore.open(tmp_path / "out.zarr"), SpectralStore.open(tmp_path / "clean.zarr")
    tally.good_lost = len(set(reference.ids) - set(store.ids))
    order = np.argsort(store.ids)
    if not np.array_equal(store.read("lamost_lrs", order)["flux"], reference.read("lamost_lrs", np.argsort(reference.ids))["flux"]):
        tally.silently_wrong += 1
    print(tally.summary())
    tally.assert_clean()
    assert len(checks) == len(expected) and report.n_spectra_written == clean.n_spectra_written == len(good)
    (duplicate,) = report.duplicates
    assert sorted(os.path.basename(f) for f in duplicate["files"]) == sorted([good[1].name, f"copy-of-{good[1].name}"])
    assert duplicate["kept"] == str(mixed / good[1].name)
