"""The npe head (sbi): posteriors that cover the truth, safetensors round trips, SBC in the heads stage."""

import json
import signal
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from astropy.table import Table

pytest.importorskip("sbi")

from specclip_core.heads.calibration import Recalibration, calibration, pit, sbc  # noqa: E402
from specclip_core.heads.npe import NPEHead, NPEHeadConfig  # noqa: E402
from specclip_core.interfaces import LabelledInputs  # noqa: E402
from specclip_core.runner import run_spec  # noqa: E402
from specclip_core.spec import TrainSpec, validate_spec  # noqa: E402

NOISE = 0.3


def _problem(n, seed, missing=0.0):
    """y = x0 + noise and z = x1 - x2 + noise: the true posterior sd is NOISE for both."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype(np.float32)
    y = x[:, 0] + NOISE * rng.normal(size=n)
    z = x[:, 1] - x[:, 2] + NOISE * rng.normal(size=n)
    z[rng.uniform(size=n) < missing] = np.nan
    return LabelledInputs(x, {"y": y, "z": z}, [f"r{seed}-{i}" for i in range(n)])


SPEC = TrainSpec(epochs=60, batch_size=128, lr=3e-3, weight_decay=0.0, patience=8, device="cpu")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    train, val, test = _problem(1000, 1, missing=0.2), _problem(200, 2), _problem(400, 3)
    head = NPEHead(NPEHeadConfig(samples=200, sbc_stars=100, seeds=2, hidden=32))
    summary = head.fit(train, val, tmp_path_factory.mktemp("npe"), SPEC, seed=0)
    return head, summary, train, test


def test_npe_posteriors_cover_the_truth(trained):
    head, summary, train, test = trained
    predicted = head.predict(test.inputs)
    assert {"y", "y_err", "y_lo", "y_hi", "z", "z_err", "z_lo", "z_hi"} == set(predicted)
    for label in ("y", "z"):
        residual = predicted[label] - test.labels[label]
        assert np.std(residual) < 2 * NOISE, label
        assert 0.5 * NOISE < np.median(predicted[f"{label}_err"]) < 2 * NOISE, label
        inside = np.mean((test.labels[label] >= predicted[f"{label}_lo"]) & (test.labels[label] <= predicted[f"{label}_hi"]))
        assert 0.5 < inside < 0.85, (label, inside)
    fit = summary["y+z"]
    assert fit["n_dropped_missing"] == int(np.isnan(train.labels["z"]).sum()) > 0
    assert fit["n_train"] + fit["n_dropped_missing"] == len(train)
    assert len(fit["seeds"]) == 2 and fit["seed"] in (0, 1)
    assert 1_000 < head.n_parameters() < 50_000
    assert head.recalibration is not None and set(head.recalibration.levels) == {"y", "z"}
    values, raw = head.predict_samples(test.inputs[:50])
    assert set(raw) == {"y", "z"} and raw["y"].shape == (50, 200)
    np.testing.assert_allclose(values["y"], head.predict(test.inputs[:50])["y"])


def test_a_star_whose_posterior_lies_outside_the_prior_box_is_drawn_unrestricted_not_forever(trained):
    head, _, train, test = trained
    far = test.inputs[:3].copy()
    far[1] = 100.0  # y = x0 + noise: its posterior sits at y ~ 100, far outside the box (training range +- 1 sd)
    signal.signal(signal.SIGALRM, lambda *_: pytest.fail("rejection sampling at the prior box did not end"))
    signal.alarm(60)
    try:
        with pytest.warns(UserWarning, match="for 1 of 3 stars the flow puts under 1%"):
            predicted = head.predict(far)
    finally:
        signal.alarm(0)
    assert predicted["y"][1] > np.nanmax(train.labels["y"]) + 10
    normal = head.predict(test.inputs[:3])
    assert abs(predicted["y"][0] - normal["y"][0]) < 3 * NOISE


def test_npe_saves_safetensors_and_reloads_identically(trained, tmp_path):
    head, _, _, test = trained
    head.save(tmp_path / "saved")
    assert sorted(p.name for p in (tmp_path / "saved").iterdir()) == ["head.json", "y+z.safetensors"]
    again = NPEHead.load(tmp_path / "saved").predict(test.inputs[:50])
    first = head.predict(test.inputs[:50])
    for key, values in first.items():
        np.testing.assert_array_equal(again[key], values)


def test_per_label_npe_with_nsf(tmp_path):
    train, val, test = _problem(600, 4, missing=0.3), _problem(100, 5), _problem(200, 6)
    head = NPEHead(NPEHeadConfig(estimator="nsf", joint=False, samples=100, sbc_stars=50, hidden=32, embedding=[16, 4], recalibrate=False))
    summary = head.fit(train, val, tmp_path, SPEC, seed=1)
    assert set(summary) == {"y", "z"} and summary["y"]["n_dropped_missing"] == 0 < summary["z"]["n_dropped_missing"]
    predicted = head.predict(test.inputs)
    assert np.corrcoef(predicted["z"], test.labels["z"])[0, 1] > 0.9
    assert head.recalibration is None
    head.save(tmp_path / "saved")
    np.testing.assert_array_equal(NPEHead.load(tmp_path / "saved").predict(test.inputs[:20])["z"], head.predict(test.inputs[:20])["z"])


def test_recalibration_holdout_trains_without_the_held_stars_and_recalibrates_on_them(tmp_path):
    train, val = _problem(400, 7), _problem(30, 8)
    head = NPEHead(NPEHeadConfig(joint=False, samples=100, sbc_stars=20, hidden=16, recalibration_holdout=0.25))
    summary = head.fit(train, val, tmp_path, TrainSpec(epochs=5, batch_size=128, lr=3e-3, weight_decay=0.0, patience=8, device="cpu"), seed=3)
    for label in ("y", "z"):
        assert summary[label]["n_train"] == 300 and summary[label]["n_held_out"] == 100
        assert summary[label]["recalibration_stars"] == 130
    again = NPEHead(NPEHeadConfig(joint=False, samples=100, sbc_stars=20, hidden=16, recalibration_holdout=0.25, recalibration_stars=30))
    assert again.fit(train, val, tmp_path / "capped", TrainSpec(epochs=1, batch_size=128, lr=3e-3, weight_decay=0.0, patience=8, device="cpu"), seed=3)["y"]["recalibration_stars"] == 30


def test_labelled_inputs_take_and_join_rows():
    part = _problem(10, 9)
    back = LabelledInputs.joined([part.take(np.arange(4)), part.take(np.arange(10) >= 4)])
    np.testing.assert_array_equal(back.inputs, part.inputs)
    np.testing.assert_array_equal(back.ids, part.ids)
    np.testing.assert_array_equal(back.labels["z"], part.labels["z"])


def test_calibration_finds_overconfident_posteriors():
    rng = np.random.default_rng(0)
    truth = rng.normal(size=400)
    centre = truth + rng.normal(size=400)  # the true posterior is N(centre, 1)
    good = centre[:, None] + rng.normal(size=(400, 300))
    tight = centre[:, None] + 0.3 * rng.normal(size=(400, 300))
    calibrated, ranks = calibration(truth, good, 200)
    assert len(ranks) == 200 and calibrated["sbc_ks_p"] > 0.01
    assert abs(calibrated["coverage_68"] - 0.68) < 0.07 and abs(calibrated["coverage_95"] - 0.95) < 0.04
    overconfident, _ = calibration(truth, tight, 200)
    assert overconfident["sbc_ks_p"] < 1e-3 and overconfident["coverage_68"] < 0.4
    np.testing.assert_array_equal(sbc(np.array([0.5]), np.array([[0.0, 1.0, 0.2]]))[1], [2])


def test_recalibration_repairs_overconfident_posteriors_and_keeps_sample_order():
    rng = np.random.default_rng(1)

    def tight(n):
        truth = rng.normal(size=n)
        centre = truth + rng.normal(size=n)
        return truth, centre[:, None] + 0.3 * rng.normal(size=(n, 400))

    (val_truth, val_samples), (truth, samples) = tight(2000), tight(600)
    recalibration = Recalibration.fit({"y": val_truth}, {"y": pit(val_truth, val_samples)})
    repaired = recalibration.apply({"y": samples})["y"]
    before, _ = calibration(truth, samples, 300)
    after, _ = calibration(truth, repaired, 300)
    assert before["sbc_ks_p"] < 1e-3 and before["coverage_68"] < 0.4
    assert after["sbc_ks_p"] > 0.01
    assert abs(after["coverage_68"] - 0.68) < 0.06 and abs(after["coverage_95"] - 0.95) < 0.04, after
    in_order = np.take_along_axis(repaired, np.argsort(samples, axis=1), axis=1)
    assert (np.diff(in_order, axis=1) >= -1e-12).all()  # a monotone map: no sample overtakes another
    assert recalibration.apply({"z": samples})["z"] is samples  # a label it was not fitted on is left alone


class _GaussianPosterior:
    """A stand-in flow: Gaussian samples around ``centre(x)`` with standard deviation ``sd``."""

    def __init__(self, centre, sd):
        from sbi.utils import BoxUniform

        self.centre, self.sd = centre, sd
        self.prior = BoxUniform(torch.tensor([-50.0]), torch.tensor([50.0]))
        self.posterior_estimator = SimpleNamespace(sample=lambda shape, condition: self.sample_batched(shape, condition))

    def sample_batched(self, shape, x, show_progress_bars=False):
        centre = torch.as_tensor(self.centre(x.numpy()), dtype=torch.float32)
        return (centre[None, :, None] + self.sd * torch.randn(shape[0], len(x), 1)).float()


def test_recalibrated_seed_choice_keeps_a_sharp_overconfident_flow():
    """truth = x0 + x1 / 2 + N(0, 0.3): a flow centred right but 3x too narrow fails its own SBC, one
    that ignores x1 is calibrated but twice as wide; recalibrated, the sharp one passes and is kept."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(1200, 2)).astype(np.float32)
    theta = (x[:, 0] + x[:, 1] / 2 + 0.3 * rng.normal(size=1200))[:, None]
    sharp, broad = _GaussianPosterior(lambda v: v[:, 0] + v[:, 1] / 2, 0.1), _GaussianPosterior(lambda v: v[:, 0], float(np.hypot(0.5, 0.3)))
    for choice, kept in (("raw", 1), ("recalibrated", 0)):
        head = NPEHead(NPEHeadConfig(samples=300, sbc_stars=200, recalibration_stars=800, seed_choice=choice))
        checks = [head._validate(flow, theta, torch.as_tensor(x), ["y"], 5) for flow in (sharp, broad)]
        assert checks[1]["passed"] and checks[0]["passed"] == (choice == "recalibrated"), (choice, checks)
        assert checks[0]["val_robust_sigma"] < 0.7 * checks[1]["val_robust_sigma"]
        assert head._choose(checks) == kept and checks[0]["recalibrated"] == (choice == "recalibrated")


@pytest.fixture(scope="module")
def npe_run(tmp_path_factory):
    from specclip_toy import make_store

    base = tmp_path_factory.mktemp("npe-run")
    store = make_store(base / "toy.zarr", n=400, seed=8)
    head = {"name": "npe", "samples": 100, "sbc_stars": 20, "hidden": 16}
    spec = {
        "name": "toy-npe",
        "seed": 3,
        "run_dir": str(base / "run"),
        "data": {"store": str(store.path)},
        "stages": {"heads_npe": {"kind": "heads", "modality": "toy", "input": "spectra", "labels": ["temp"], "units": {"temp": "K"}, "head": head, "sbc_stars": 30, "train": {"epochs": 30, "batch_size": 64, "lr": 3e-3, "patience": 5, "device": "cpu"}}},
    }
    manifests = run_spec(validate_spec(spec), progress=False, log=lambda *_: None)
    return base / "run", manifests


def test_heads_stage_reports_sbc_and_coverage_and_predict_writes_intervals(npe_run, tmp_path):
    from specclip_toy import make_raw, write_file

    run_dir, manifests = npe_run
    summary = manifests["heads_npe"]["summary"]
    test = summary["test"]["temp"]
    assert test["sbc_stars"] == 30 and 0 <= test["sbc_ks_p"] <= 1
    assert 0.3 < test["coverage_68"] < test["coverage_95"] <= 1
    assert test["recalibrated"] and 0 <= test["raw"]["sbc_ks_p"] <= 1 and set(test["raw"]) == {"sbc_stars", "sbc_ks_p", "coverage_68", "coverage_95"}
    assert json.loads((run_dir / "heads_npe" / "metrics.json").read_text())["temp"]["coverage_95"] == test["coverage_95"]
    assert (run_dir / "heads_npe" / "sbc_temp.png").stat().st_size > 1000
    assert not list((run_dir / "heads_npe" / "head").glob("*.p*kl*")) and not list((run_dir / "heads_npe" / "head").glob("*.pt"))
    header = (run_dir / "heads_npe" / "test_predictions.csv").read_text().splitlines()[0]
    assert header == "id,temp,temp_pred,temp_pred_err,temp_pred_lo,temp_pred_hi"
    raw = make_raw(6, 99)
    inputs = tmp_path / "in"
    inputs.mkdir()
    for row in range(6):
        write_file(inputs / f"star{row}.toy.csv", raw, row)
    out = tmp_path / "catalog.ecsv"
    done = subprocess.run([sys.executable, "-m", "specclip_core.cli", "predict", str(run_dir), str(inputs), "-o", str(out), "--quiet", "--samples", "50"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "50 posterior samples" in done.stdout
    drawn = Table.read(str(out) + ".samples.fits")
    assert drawn.colnames == ["id", "source", "temp"] and drawn["temp"].shape == (6, 50) and str(drawn["temp"].unit) == "K"
    assert drawn.meta["NSAMPLES"] == 50
    table = Table.read(out)
    assert set(table.colnames) == {"id", "source", "temp", "temp_err", "temp_lo", "temp_hi", "ood_knn_pct", "flag_knn", "flag_range_temp", "ood_range_p", "flags", "reason"}
    assert str(table["temp_err"].unit) == "K"
    assert np.all(table["temp_lo"] <= table["temp"]) and np.all(table["temp"] <= table["temp_hi"]) and np.all(table["temp_err"] > 0)


def test_a_joint_flow_warns_of_dropped_stars_outside_its_prior_box(tmp_path):
    train, val = _problem(1000, 7), _problem(100, 8)
    train.labels["z"][train.inputs[:, 0] > 1.0] = np.nan  # like APOGEE's hot stars: no abundances
    head = NPEHead(NPEHeadConfig(samples=20, sbc_stars=20, hidden=8, recalibrate=False))
    with pytest.warns(UserWarning, match=r"npe head y\+z: \d+ training stars dropped for a missing label have y outside the flow's prior box.*joint: false"):
        summary = head.fit(train, val, tmp_path, TrainSpec(epochs=1, batch_size=256, lr=1e-3, weight_decay=0.0, patience=1, device="cpu"), seed=0)
    assert summary["y+z"]["n_dropped_outside_prior"]["y"] > 0 and "z" not in summary["y+z"]["n_dropped_outside_prior"]
