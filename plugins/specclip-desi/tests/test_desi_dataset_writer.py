"""The dataset card (fetched from the real specutils wheel, sha256 checked) and the writer's files."""

from __future__ import annotations

import shutil

import numpy as np

from specclip_core.api import SpectralStore, fetch_dataset, get_card
from specclip_desi.readers import DesiCoaddReader
from specclip_desi.writer import DesiCoaddWriter


def test_the_card_fetches_and_ingests_the_two_targets(specutils_wheel, tmp_path, monkeypatch):
    monkeypatch.setenv("SPECCLIP_CACHE", str(tmp_path / "cache"))
    card = get_card("desi-edr-sv3-26065")
    (tmp_path / "cache" / "downloads").mkdir(parents=True)
    shutil.copy(specutils_wheel, tmp_path / "cache" / "downloads" / card.source.filename)
    store = SpectralStore.open(fetch_dataset(card.name, progress=False))
    assert list(store.ids) == ["39627866878511337", "39627866878514741"]
    assert store.wavelength("desi").size == 1462 and set(card.ingest.labels) == set(card.columns)
    rejected = store.meta["ingest_report"]["rejected_spectra"]
    assert [sid for sid, _ in rejected] == ["-2713437", "-2713415", "616088619186127404"]


def test_written_files_read_back_with_ivar_and_the_simulated_flag(desi_files, tmp_path):
    real = DesiCoaddReader().read(desi_files["coadd-sv3-dark-26065.fits"])
    assert "simulated" not in real.meta
    real.meta["simulated"] = np.ones(len(real), bool)
    [path] = DesiCoaddWriter().write(real, tmp_path)
    assert path.name.startswith("coadd-sim-")
    back = DesiCoaddReader().read(path)
    assert list(back.ids) == list(real.ids) and back.meta["simulated"].all()
    np.testing.assert_allclose(back.ivar, real.ivar, rtol=1e-5)
    for arm in "brz":  # the LSF written is a Gaussian of the R the reader measured
        np.testing.assert_allclose(back.meta[f"resolving_power_{arm}"], real.meta[f"resolving_power_{arm}"], rtol=0.01)
