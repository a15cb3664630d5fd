"""simulate_paired and ``specclip data simulate``: a tiny fake XP store, a stub emulator (no download),
the LAMOST writer/reader/preprocessing; reproducibility bit for bit; the real emulator when cached."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("specclip_lamost")  # the simulated modality, its writer and readers

from specclip_core.api import SpectralStore  # noqa: E402
from specclip_core.testing import cli_main as main  # noqa: E402
from specclip_sim.emulator import Emulator  # noqa: E402
from specclip_sim.paired import simulate_paired  # noqa: E402
from specclip_sim.source import is_current, model_file  # noqa: E402

@pytest.fixture(scope="module")
def fake_xp(tmp_path_factory, fake_xp_store):
    path = tmp_path_factory.mktemp("xp") / "fake-xp.zarr"
    fake_xp_store(path)
    return path


def _arrays(path):
    store = SpectralStore.open(path)
    return store, {m: store.read(m) for m in store.modalities}, store.labels()


def test_paired_store_holds_real_and_simulated_rows_with_flags(fake_xp, stub_emulator, tmp_path):
    report = simulate_paired("lamost_lrs", like=str(fake_xp), output=tmp_path / "paired.zarr", emulator=stub_emulator, seed=1, chunk_size=5, workers=1, progress=False)
    source = SpectralStore.open(fake_xp)
    store, arrays, labels = _arrays(report.store)
    assert report.n_written == len(store) == len(source) == 14 and report.n_rejected == 0
    assert set(store.modalities) == {"gaia_xp", "lamost_lrs"}
    assert list(store.ids) == list(source.ids)  # keyed by the source ids, in its order
    real = source.read("gaia_xp")
    for name in ("flux", "ivar", "mask", "stats"):
        np.testing.assert_array_equal(arrays["gaia_xp"][name], real[name])
    lamost = arrays["lamost_lrs"]
    assert lamost["flux"].shape == (14, 1462) and np.isfinite(lamost["flux"]).all()
    assert 0.8 < np.median(lamost["flux"]) < 1.1  # continuum-normalised
    assert (labels["simulated_lamost_lrs"] == 1).all() and (labels["simulated_gaia_xp"] == 0).all()
    src = source.labels()
    np.testing.assert_array_equal(labels["fe_h"], src["fe_h"])  # the measured labels stay as they were (NaN too)
    np.testing.assert_array_equal(labels["ak_targ"], src["ak_targ"])
    assert labels["fe_h_imputed"].tolist() == [1, 1, 1] + [0] * 11
    assert np.isfinite(labels["sim_fe_h"]).all()
    np.testing.assert_array_equal(labels["sim_fe_h"][3:], src["fe_h"][3:])
    assert labels["a_k_imputed"].tolist() == [0, 0, 0, 1, 1] + [0] * 9
    assert np.isfinite(labels["sim_a_k"]).all() and (labels["sim_a_k"][[3, 4]] > -1).all()
    assert np.isfinite(labels["rv"]).all() and (labels["sim_snr"] > 0).all()
    assert set(labels["emulator_model"]) <= {"stub-cool", "stub-hot"}
    for column in ("emulator_clipped", "emulator_covered", "emulator_capped_fraction", "emulator_teff"):
        assert column in labels
    meta = store.meta
    assert meta["simulated_modalities"] == ["lamost_lrs"] and meta["real_modalities"] == ["gaia_xp"]
    assert "SIMULATED" in meta["note"] and meta["simulated"]["lamost_lrs"]["writer"] == "lamost_lrs_coadd"
    assert meta["missing_labels"]["fe_h_imputed"]["n"] == 3 and meta["missing_labels"]["a_k_sentinel"] == 1


def test_a_fixed_seed_is_reproducible_bit_for_bit_with_any_number_of_workers(fake_xp, stub_emulator, tmp_path):
    def run(name, seed, workers):
        report = simulate_paired("lamost_lrs", like=str(fake_xp), output=tmp_path / name, emulator=stub_emulator, seed=seed, chunk_size=4, workers=workers, progress=False)
        return _arrays(report.store)

    _, first, first_labels = run("a.zarr", 5, 1)
    _, second, second_labels = run("b.zarr", 5, 2)
    _, other, _ = run("c.zarr", 6, 1)
    for name in ("flux", "ivar", "mask", "stats"):
        np.testing.assert_array_equal(first["lamost_lrs"][name], second["lamost_lrs"][name])
    for column in first_labels:
        np.testing.assert_array_equal(first_labels[column], second_labels[column])
    assert not np.array_equal(first["lamost_lrs"]["flux"], other["lamost_lrs"]["flux"])


def test_drop_policy_keeps_complete_stars_only(fake_xp, stub_emulator, tmp_path):
    report = simulate_paired("lamost_lrs", like=str(fake_xp), output=tmp_path / "drop.zarr", emulator=stub_emulator, missing="drop", workers=1, progress=False)
    store, _, labels = _arrays(report.store)
    assert report.n_dropped == 5 and len(store) == 9
    assert np.isfinite(labels["fe_h"]).all() and (labels["ak_targ"] > -1).all()
    assert (labels["fe_h_imputed"] == 0).all() and (labels["a_k_imputed"] == 0).all()


def test_an_existing_store_is_reused_only_for_the_same_inputs(fake_xp, stub_emulator, tmp_path):
    kwargs = dict(like=str(fake_xp), output=tmp_path / "again.zarr", emulator=stub_emulator, workers=1, progress=False, limit=4)
    assert not simulate_paired("lamost_lrs", **kwargs).reused
    again = simulate_paired("lamost_lrs", **kwargs)
    assert again.reused and again.n_written == 4
    with pytest.raises(Exception, match="overwrite"):
        simulate_paired("lamost_lrs", seed=9, **kwargs)
    assert simulate_paired("lamost_lrs", seed=9, overwrite=True, **kwargs).n_written == 4


def test_the_command_prints_the_store_path(fake_xp, stub_emulator, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(Emulator, "load", classmethod(lambda cls, download=True, progress=True: stub_emulator))
    output = tmp_path / "cli.zarr"
    code = main(["data", "simulate", "lamost_lrs", "--like", str(fake_xp), "-o", str(output), "--limit", "3", "--workers", "1", "--quiet"])
    captured = capsys.readouterr()
    assert code == 0 and captured.out.strip() == str(output)
    assert "SIMULATED" in captured.err
    assert len(SpectralStore.open(output)) == 3


@pytest.mark.skipif(not is_current(model_file()), reason="the converted emulator is not cached (specclip data sim-emulator)")
def test_with_the_real_emulator(fake_xp, tmp_path):
    report = simulate_paired("lamost_lrs", like=str(fake_xp), output=tmp_path / "real.zarr", limit=6, workers=1, progress=False)
    store, arrays, labels = _arrays(report.store)
    assert len(store) == 6 and set(labels["emulator_model"]) <= {"coolstars", "hotdwarfs"}
    flux = arrays["lamost_lrs"]["flux"]
    assert np.isfinite(flux).all() and 0.7 < np.median(flux) < 1.1
    assert flux.min(axis=1).max() < 0.9  # absorption lines are there


def test_the_simulate_stage_writes_the_paired_store_and_is_reused(fake_xp, stub_emulator, tmp_path, monkeypatch):
    from specclip_core.api import run_spec, validate_spec

    monkeypatch.setattr(Emulator, "load", classmethod(lambda cls, download=True, progress=True: stub_emulator))
    spec = validate_spec(
        {
            "name": "sim-stage",
            "run_dir": str(tmp_path / "run"),
            "data": {"stage": "simulate"},
            "stages": {
                "simulate": {"kind": "simulate", "modality": "lamost", "like": str(fake_xp), "limit": 5, "workers": 1},
            },
        }
    )
    manifests = run_spec(spec, progress=False, log=lambda *_: None)
    summary = manifests["simulate"]["summary"]
    assert summary["n_written"] == 5 and summary["modality"] == "lamost_lrs" and summary["store"] == "store.zarr"
    store = SpectralStore.open(tmp_path / "run" / "simulate" / "store.zarr")
    assert set(store.modalities) == {"gaia_xp", "lamost_lrs"} and len(store) == 5
    lines = []
    run_spec(spec, progress=False, log=lines.append)
    assert any(line.startswith("[simulate] reused") for line in lines)
