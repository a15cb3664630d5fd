"""Simulating a modality whose calibration its own plugin ships (desi), one without any, and two
simulations chained into one store."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

pytest.importorskip("specclip_desi")
pytest.importorskip("specclip_lamost")

from specclip_core.api import SpectralStore, get_modality, run_spec, validate_spec  # noqa: E402
from specclip_core.testing import cli_main  # noqa: E402
from specclip_sim.calibration import load_calibration  # noqa: E402
from specclip_sim.emulator import Emulator  # noqa: E402
from specclip_sim.observe import NativeObserver  # noqa: E402
from specclip_sim.paired import simulate_paired  # noqa: E402


@pytest.fixture
def fake_xp(tmp_path, fake_xp_store):
    fake_xp_store(tmp_path / "fake-xp.zarr")
    return tmp_path / "fake-xp.zarr"


@pytest.fixture
def stubbed(monkeypatch, stub_emulator):
    """Every Emulator.load() (the CLI's and the stage's) gives the stub: no download."""
    monkeypatch.setattr(Emulator, "load", classmethod(lambda cls, *a, **k: stub_emulator))
    monkeypatch.setenv("SPECCLIP_SIM_WORKERS", "1")


def test_the_desi_calibration_comes_from_the_desi_plugin():
    calibration = load_calibration("desi")
    assert calibration.modality == "desi" and calibration.wavelength_step == 0.8
    assert 2700 < calibration.resolving_power < 2850 and len(calibration.snr_values) == 5
    assert set(calibration.measured["resolving_power_per_arm"]) == {"B", "R", "Z"}


def test_simulate_desi_from_the_cli_writes_desi_files_read_back_as_simulated(fake_xp, stubbed, tmp_path, capsys):
    out = tmp_path / "paired.zarr"
    assert cli_main(["data", "simulate", "desi", "--like", str(fake_xp), "-o", str(out), "--quiet"]) == 0
    store = SpectralStore.open(out)
    assert set(store.modalities) == {"gaia_xp", "desi"} and len(store) == 14
    assert store.meta["simulated"]["desi"]["writer"] == "desi_coadd" and store.meta["simulated"]["desi"]["resolving_power"] < 2850
    assert store.wavelength("desi").size == 1462 and np.isfinite(store.read("desi")["flux"]).all()
    assert (store.labels()["simulated_desi"] == 1).all()


def test_simulate_desi_from_a_stage(fake_xp, stubbed, tmp_path):
    spec = validate_spec({"name": "sim-desi", "stages": {"simulate": {"kind": "simulate", "modality": "desi", "like": str(fake_xp)}}})
    run_spec(spec, tmp_path / "run", progress=False)
    store = SpectralStore.open(tmp_path / "run" / "simulate" / "store.zarr")
    assert "desi" in store.modalities and store.meta["simulated_modalities"] == ["desi"]


def test_a_modality_without_calibration_fails_naming_what_is_missing(fake_xp, stubbed, tmp_path, monkeypatch, capsys):
    desi = get_modality("desi")
    monkeypatch.setattr(type(desi), "instrument", dataclasses.replace(desi.instrument, calibration=None))
    assert cli_main(["data", "simulate", "desi", "--like", str(fake_xp), "-o", str(tmp_path / "x.zarr"), "--quiet"]) == 2
    error = capsys.readouterr().err
    assert "no calibration" in error and "S/N distribution" in error and "Traceback" not in error


def test_two_chained_simulations_share_one_rv_per_star(fake_xp, stub_emulator, tmp_path):
    first = simulate_paired("lamost_lrs", like=str(fake_xp), output=tmp_path / "one.zarr", emulator=stub_emulator, workers=1, progress=False)
    second = simulate_paired("desi", like=first.store, output=tmp_path / "two.zarr", emulator=stub_emulator, workers=1, progress=False, seed=5)
    one, two = SpectralStore.open(first.store), SpectralStore.open(second.store)
    assert set(two.modalities) == {"gaia_xp", "lamost_lrs", "desi"} and len(two) == 14
    labels, before = two.labels(), one.labels()
    np.testing.assert_array_equal(labels["rv"], before["rv"])
    np.testing.assert_array_equal(labels["sim_fe_h"], before["sim_fe_h"])
    assert (labels["sim_snr_desi"] > 0).all() and (labels["simulated_desi"] == 1).all() and (labels["simulated_lamost_lrs"] == 1).all()
    assert two.meta["simulated_modalities"] == ["lamost_lrs", "desi"] and two.meta["real_modalities"] == ["gaia_xp"]
    assert set(two.meta["simulated"]) == {"lamost_lrs", "desi"}
    np.testing.assert_array_equal(two.read("lamost_lrs")["flux"], one.read("lamost_lrs")["flux"])


def _fwhm_of_line(wavelength, flux, centre, half_window=15.0):
    near = np.abs(wavelength - centre) < half_window
    w, depth = wavelength[near], 1.0 - flux[near] / np.max(flux[near])
    half = depth.max() / 2
    above = np.flatnonzero(depth >= half)
    i, j = above[0], above[-1]
    left = np.interp(half, [depth[i - 1], depth[i]], [w[i - 1], w[i]])
    right = np.interp(half, [depth[j + 1], depth[j]], [w[j + 1], w[j]])
    return right - left


def test_a_line_in_the_desi_r_arm_is_narrower_than_at_the_b_arms_resolving_power(stub_emulator):
    """The calibration's per-arm R is used by default: H-alpha (6563 A, R arm) comes out narrower than
    simulated at the B arm's R over the whole grid, H-beta (4861 A, B arm) the same either way."""
    calibration = load_calibration("desi")
    per_arm = NativeObserver("desi", emulator=stub_emulator)
    one_r = NativeObserver("desi", resolving_power=calibration.resolving_power, emulator=stub_emulator)
    assert [a.name for a in per_arm.arms] == ["B", "R", "Z"] and one_r.arms is None
    labels = np.array([[5000.0, 4.0, 0.0]])
    wavelength = per_arm.simulator.wavelength
    flux = {name: observer.simulator.convolved(labels).flux[0] for name, observer in (("arms", per_arm), ("b", one_r))}
    intrinsic = 2 * np.sqrt(2 * np.log(2)) * np.sqrt(1.5**2 + 1.0**2 / 6)  # the stub's lines: sigma 1.5 A, sampled every 1 A
    r_arm = {a.name: a.resolving_power for a in calibration.arms}["R"]
    halpha = 6564.6  # vacuum
    assert _fwhm_of_line(wavelength, flux["arms"], halpha) == pytest.approx(np.hypot(intrinsic, halpha / r_arm), rel=0.02)
    assert _fwhm_of_line(wavelength, flux["b"], halpha) == pytest.approx(np.hypot(intrinsic, halpha / calibration.resolving_power), rel=0.02)
    assert _fwhm_of_line(wavelength, flux["arms"], halpha) < 0.93 * _fwhm_of_line(wavelength, flux["b"], halpha)
    b_arm = wavelength < 5700.0
    np.testing.assert_allclose(flux["arms"][b_arm], flux["b"][b_arm], atol=1e-6)
    meta = per_arm.simulator.simulate({"teff": [5000.0], "logg": [4.0], "feh": [0.0], "a_k": [0.1]}, ["s1"], [50.0], seed=0).meta
    assert meta["resolving_power_r"][0] == r_arm and meta["resolving_power_b"][0] == calibration.resolving_power


@pytest.mark.slow
def test_the_three_modality_spec_runs_on_a_small_slice(fake_xp_store, stubbed, tmp_path):
    """clip-three (the registry's XP + SIMULATED LAMOST + chained SIMULATED DESI alignment) on 100 of
    160 fake XP stars, one epoch everywhere: every stage finishes, one store holds the three
    modalities with one rv per star, and the align stage reports Table 2 for the three pairs."""
    pytest.importorskip("specclip_registry")
    from specclip_core.api import load_spec

    fake_xp_store(tmp_path / "fake-xp.zarr", n=160)
    data = load_spec("clip-three").dump()
    data["run_dir"] = str(tmp_path / "run")
    data["stages"]["simulate"] |= {"like": str(tmp_path / "fake-xp.zarr"), "limit": 100, "workers": 1}
    data["stages"]["simulate_desi"]["workers"] = 1
    for stage in data["stages"].values():
        if "train" in stage:
            stage["train"] |= {"epochs": 1, "batch_size": 16, "device": "cpu"}
    manifests = run_spec(validate_spec(data), progress=False, log=lambda *_: None)
    store = SpectralStore.open(tmp_path / "run" / "simulate_desi" / "store.zarr")
    assert set(store.modalities) == {"gaia_xp", "lamost_lrs", "desi"} and len(store) == 100
    assert store.meta["simulated_modalities"] == ["lamost_lrs", "desi"]
    labels = store.labels()
    np.testing.assert_allclose(labels["sim_snr_desi"], labels["sim_snr"])
    aligned = manifests["align"]["summary"]["aligned"]
    assert set(aligned["cosine"]) == {"gaia_xp~lamost_lrs", "gaia_xp~desi", "lamost_lrs~desi"} and len(aligned["retrieval"]) == 6
    assert len(aligned["prediction_weighted_mse"]) == 6
    report = (tmp_path / "run" / "report" / "report.md").read_text()
    assert "**lamost_lrs (SIMULATED) ~ desi (SIMULATED)**" in report and "**DESI-like (SIMULATED)**" in report
