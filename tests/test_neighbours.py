"""The ``neighbours`` stage grouping repeats by a label column or by sky position."""

import json

import numpy as np
import pytest

from specclip_core.errors import SpecError
from specclip_core.retrieval.groups import sky_groups
from specclip_core.runner import run_spec
from specclip_core.spec import validate_spec

ARCSEC = 1 / 3600


def test_sky_groups_link_friends_of_friends_and_skip_missing_positions():
    # a chain 0-1-2 (2" steps, 0 and 2 are 4" apart), a pair 3-4 across RA = 0/360, a lone star, no position
    ra = np.array([10.0, 10.0, 10.0, 359.9999, 0.0001, 200.0, np.nan])
    dec = np.array([20.0, 20.0 + 2 * ARCSEC, 20.0 + 4 * ARCSEC, -5.0, -5.0, 60.0, 1.0])
    names = sky_groups(ra, dec, 3.0)
    assert names[0] == names[1] == names[2] != ""
    assert names[3] == names[4] not in ("", names[0])  # 0.72" apart across the wrap
    assert len({names[0], names[3], names[5]}) == 3
    assert names[6] == ""
    # with 0.5" nothing links; every finite position is its own object
    assert len(set(sky_groups(ra, dec, 0.5)[:6])) == 6
    assert sky_groups(np.array([np.nan]), np.array([0.0]), 3.0).tolist() == [""]


def _repeat_store(path):
    """20 toy stars seen twice (the second visit noisier and 1" away), plus 10 single visits."""
    from specclip_core.data.store import SpectralStore
    from specclip_core.interfaces import Spectra
    from specclip_toy import ToyModality, make_raw

    first = make_raw(30, seed=5)
    rng = np.random.default_rng(1)
    flux = first.flux[:20] + rng.normal(0, 1.0, first.flux[:20].shape)
    second = Spectra(first.wavelength, flux, first.ivar[:20], first.mask[:20], [f"{i}-b" for i in first.ids[:20]], {"temp": first.meta["temp"][:20]})
    raw = Spectra.concatenate([Spectra(first.wavelength, first.flux, first.ivar, first.mask, first.ids, {"temp": first.meta["temp"]}), second])
    spectra = ToyModality().preprocess(raw)
    ra = np.concatenate([10 + 0.1 * np.arange(30), 10 + 0.1 * np.arange(20) + ARCSEC])
    dec = np.full(50, 30.0)
    group = np.concatenate([np.arange(20), np.full(10, np.nan), np.arange(20)])  # single visits have no group
    with SpectralStore.build(path, {"toy": ToyModality()}, {"ra": "float", "dec": "float", "star": "float"}) as store:
        store.append(spectra.ids, {"toy": spectra}, {"ra": ra, "dec": dec, "star": group})
    return SpectralStore.open(path)


def test_neighbours_stage_groups_by_label_or_by_position(tmp_path):
    store = _repeat_store(tmp_path / "repeats.zarr")
    spec = validate_spec(
        {
            "name": "neighbours",
            "run_dir": str(tmp_path / "run"),
            "data": {"store": str(store.path)},
            "stages": {
                "by_label": {"kind": "neighbours", "modality": "toy", "group": "star", "inputs": ["spectra"]},
                "by_position": {"kind": "neighbours", "modality": "toy", "sky_match_arcsec": 3, "inputs": ["spectra"]},
            },
        }
    )
    manifests = run_spec(spec, progress=False, log=lambda *_: None)
    by_label, by_position = manifests["by_label"]["summary"], manifests["by_position"]["summary"]
    assert by_label["spectra"]["n_spectra"] == by_position["spectra"]["n_spectra"] == 40
    assert by_label["spectra"]["n_groups"] == by_position["spectra"]["n_groups"] == 20
    assert by_label["spectra"]["fraction"] == by_position["spectra"]["fraction"] > 0.5
    assert by_position["group_sizes"] == {"1": 10, "2": 20} and by_label["n_without_group"] == 10
    groups = json.loads((tmp_path / "run" / "by_position" / "groups.json").read_text())
    assert groups["toy-5-3"] == groups["toy-5-3-b"] != groups["toy-5-4"]
    assert "within 3 arcsec" in (tmp_path / "run" / "by_position" / "table.md").read_text()


def test_neighbours_needs_exactly_one_grouping():
    base = {"name": "n", "data": {"store": "x.zarr"}}
    for settings in ({}, {"group": "star", "sky_match_arcsec": 3}):
        with pytest.raises(SpecError, match="exactly one of 'group'"):
            validate_spec({**base, "stages": {"n": {"kind": "neighbours", "modality": "toy", **settings}}})
