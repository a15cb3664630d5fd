import csv
import json
import subprocess
import sys

import numpy as np
import pytest
from astropy.table import Table

from specclip_core.heads.linear import RidgeHead
from specclip_core.heads.metrics import regression_metrics, robust_sigma
from specclip_core.heads.mlp import MLPHead, MLPHeadConfig
from specclip_core.interfaces import LabelledInputs
from specclip_core.runner import run_spec
from specclip_core.spec import TrainSpec, validate_spec


def test_metrics_match_their_definitions():
    rng = np.random.default_rng(0)
    truth = rng.normal(0, 1, 5000)
    residual = rng.normal(0, 0.1, 5000)
    residual[:50] = 30.0  # outliers barely move the biweight scale
    metrics = regression_metrics(truth, truth + residual)
    assert metrics["n"] == 5000
    assert metrics["robust_sigma"] == pytest.approx(0.1, rel=0.05)
    assert metrics["clipped_std"] == pytest.approx(0.1, rel=0.05)
    assert np.isnan(robust_sigma([1.0]))
    assert regression_metrics([1, 2, np.nan], [1, 2, 3])["n"] == 2


def _linear_problem(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8)).astype(np.float32)
    y = x @ np.arange(1, 9) + 0.05 * rng.normal(size=n)
    z = np.where(rng.uniform(size=n) < 0.3, np.nan, x[:, 0] * 2.0)
    return LabelledInputs(x, {"y": y, "z": z}, [f"r{seed}-{i}" for i in range(n)])


@pytest.mark.parametrize("joint", [False, True])
def test_mlp_head_learns_saves_and_loads(tmp_path, joint):
    train, val, test = _linear_problem(800, 1), _linear_problem(200, 2), _linear_problem(200, 3)
    head = MLPHead(MLPHeadConfig(hidden=[64, 32], joint=joint))
    summary = head.fit(train, val, tmp_path / "fit", TrainSpec(epochs=40, batch_size=64, lr=3e-3, weight_decay=0.0, patience=5, device="cpu"), progress=False)
    assert (("y+z" in summary) if joint else {"y", "z"} <= set(summary))
    predicted = head.predict(test.inputs)
    assert regression_metrics(test.labels["y"], predicted["y"])["r2"] > 0.95
    assert regression_metrics(test.labels["z"], predicted["z"])["r2"] > 0.95
    head.save(tmp_path / "saved")
    again = MLPHead.load(tmp_path / "saved").predict(test.inputs)
    np.testing.assert_allclose(again["y"], predicted["y"], rtol=1e-5)


def _heteroscedastic_problem(n, seed):
    """y = x0 + noise whose sigma grows with x1 from 0.05 to 0.55: a head must learn sigma per star."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, size=(n, 4)).astype(np.float32)
    sigma = 0.3 + 0.25 * x[:, 1]
    return LabelledInputs(x, {"y": x[:, 0] + sigma * rng.normal(size=n)}, [f"h{seed}-{i}" for i in range(n)]), sigma


def test_gaussian_mlp_head_is_calibrated_on_heteroscedastic_noise(tmp_path):
    from specclip_core.heads.calibration import calibration

    (train, _), (val, _), (test, sigma) = (_heteroscedastic_problem(n, seed) for n, seed in ((4000, 1), (1000, 2), (2000, 3)))
    head = MLPHead(MLPHeadConfig(hidden=[32, 32], uncertainty="gaussian", samples=200))
    head.fit(train, val, tmp_path / "fit", TrainSpec(epochs=60, batch_size=128, lr=3e-3, weight_decay=0.0, patience=8, device="cpu"), progress=False)
    predicted = head.predict(test.inputs)
    assert {"y", "y_err", "y_lo", "y_hi"} <= set(predicted)
    np.testing.assert_allclose(predicted["y_hi"] - predicted["y_lo"], 2 * predicted["y_err"])
    assert np.corrcoef(predicted["y_err"], sigma)[0, 1] > 0.9  # the sigma follows the true noise
    figures, ranks = calibration(test.labels["y"], head.sample(test.inputs)["y"], 500)
    assert abs(figures["coverage_68"] - 0.68) < 0.04
    assert abs(figures["coverage_95"] - 0.95) < 0.03
    assert figures["sbc_ks_p"] > 0.01
    head.save(tmp_path / "saved")
    again = MLPHead.load(tmp_path / "saved").predict(test.inputs)
    np.testing.assert_allclose(again["y_err"], predicted["y_err"], rtol=1e-5)


def test_gaussian_mlp_head_recalibration_fixes_heavy_tails(tmp_path):
    from specclip_core.heads.calibration import calibration

    def problem(n, seed):
        rng = np.random.default_rng(seed)
        x = rng.uniform(-1, 1, size=(n, 3)).astype(np.float32)
        return LabelledInputs(x, {"y": x[:, 0] + 0.2 * rng.standard_t(2.5, size=n)}, [f"t{seed}-{i}" for i in range(n)])

    train, val, test = problem(4000, 1), problem(2000, 2), problem(2000, 3)
    head = MLPHead(MLPHeadConfig(hidden=[32, 32], uncertainty="gaussian", samples=400))
    head.fit(train, val, tmp_path / "fit", TrainSpec(epochs=40, batch_size=128, lr=3e-3, weight_decay=0.0, patience=6, device="cpu"), progress=False)
    raw, _ = calibration(test.labels["y"], head.sample(test.inputs, recalibrated=False)["y"], 500)
    repaired, _ = calibration(test.labels["y"], head.sample(test.inputs)["y"], 500)
    assert abs(raw["coverage_68"] - 0.68) > 0.05 or abs(raw["coverage_95"] - 0.95) > 0.02, raw  # a Gaussian misfits t(2.5) noise
    assert abs(repaired["coverage_68"] - 0.68) < 0.03 and abs(repaired["coverage_95"] - 0.95) < 0.015, repaired
    predicted = head.predict(test.inputs)
    inside = np.mean((test.labels["y"] >= predicted["y_lo"]) & (test.labels["y"] <= predicted["y_hi"]))
    assert abs(inside - 0.68) < 0.03


def test_point_mlp_head_gives_no_samples():
    assert MLPHead().sample(np.zeros((2, 3), np.float32)) is None


def test_paper_head_size():
    head = MLPHead()
    head.input_mean = np.zeros(768, np.float32)
    from specclip_core.heads.mlp import mlp

    n = sum(p.numel() for p in mlp(768, head.config.hidden, 1, 0.0).parameters())
    assert 1.3e6 < n < 1.5e6, n


def test_ridge_head_round_trip(tmp_path):
    train, val, test = _linear_problem(500, 4), _linear_problem(100, 5), _linear_problem(100, 6)
    head = RidgeHead()
    head.fit(train, val, tmp_path)
    predicted = head.predict(test.inputs)
    assert regression_metrics(test.labels["y"], predicted["y"])["r2"] > 0.99
    head.save(tmp_path / "ridge")
    np.testing.assert_allclose(RidgeHead.load(tmp_path / "ridge").predict(test.inputs)["y"], predicted["y"])


def _pipeline_spec(store, run_dir):
    head_train = {"epochs": 15, "batch_size": 32, "lr": 2e-3, "device": "cpu", "patience": 5}
    return validate_spec(
        {
            "name": "toy-pipeline",
            "seed": 2,
            "run_dir": str(run_dir),
            "data": {"store": str(store.path)},
            "stages": {
                "pretrain": {
                    "kind": "pretrain",
                    "modality": "toy",
                    "objectives": [{"name": "masked_modeling", "n_chunks": 2, "chunk_tokens": 3}],
                    "train": {"epochs": 3, "batch_size": 32, "device": "cpu"},
                },
                "heads_embedding": {"kind": "heads", "needs": ["pretrain"], "modality": "toy", "labels": ["temp"], "units": {"temp": "K"}, "head": {"name": "mlp", "hidden": [64, 32]}, "train": head_train},
                "heads_spectra": {"kind": "heads", "modality": "toy", "input": "spectra", "labels": ["temp"], "head": {"name": "mlp", "hidden": [64, 32]}, "train": head_train},
                "heads_ridge": {"kind": "heads", "modality": "toy", "input": "spectra", "labels": ["temp"], "head": {"name": "ridge"}},
                "heads_gaussian": {"kind": "heads", "modality": "toy", "input": "spectra", "labels": ["temp"], "head": {"name": "mlp", "hidden": [64, 32], "uncertainty": "gaussian", "samples": 100}, "sbc_stars": 20, "train": head_train},
                "heads_ridge_ivar": {"kind": "heads", "modality": "toy", "input": "spectra", "errors_input": "inverse_sigma", "labels": ["temp"], "head": {"name": "ridge"}},
                "evaluate": {"kind": "evaluate", "needs": ["heads_embedding", "heads_spectra", "heads_ridge"]},
            },
        }
    )


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    from specclip_toy import make_store

    base = tmp_path_factory.mktemp("pipeline")
    store = make_store(base / "toy.zarr", n=400, seed=8)
    run_dir = base / "run"
    manifests = run_spec(_pipeline_spec(store, run_dir), progress=False, log=lambda *_: None)
    return run_dir, manifests


def test_pipeline_writes_tables_plots_and_predictions(finished_run):
    run_dir, manifests = finished_run
    for stage in ("heads_embedding", "heads_spectra", "heads_ridge"):
        assert (run_dir / stage / "one_to_one_temp.png").stat().st_size > 1000
        with open(run_dir / stage / "test_predictions.csv") as handle:
            rows = list(csv.DictReader(handle))
        assert rows and {"id", "temp", "temp_pred"} <= set(rows[0])
    assert manifests["heads_ridge"]["summary"]["test"]["temp"]["r2"] > 0.9
    table = (run_dir / "evaluate" / "table.md").read_text()
    assert "| temp |" in table and "heads_embedding" in table and "**" in table
    metrics = json.loads((run_dir / "evaluate" / "metrics.json").read_text())
    assert set(metrics) == {"heads_embedding", "heads_spectra", "heads_ridge"}
    gaussian = manifests["heads_gaussian"]["summary"]["test"]["temp"]
    assert gaussian["sbc_stars"] == 20 and 0.3 < gaussian["coverage_68"] < gaussian["coverage_95"] <= 1
    assert (run_dir / "heads_gaussian" / "sbc_temp.png").exists() and (run_dir / "heads_gaussian" / "head" / "ood.safetensors").exists()
    header = (run_dir / "heads_gaussian" / "test_predictions.csv").read_text().splitlines()[0]
    assert header == "id,temp,temp_pred,temp_pred_err,temp_pred_lo,temp_pred_hi"


def test_predict_writes_one_row_per_readable_file(finished_run, tmp_path):
    from specclip_toy import make_raw, write_file

    run_dir, _ = finished_run
    raw = make_raw(4, 99)
    inputs = tmp_path / "in"
    inputs.mkdir()
    for row in range(4):
        write_file(inputs / f"star{row}.toy.csv", raw, row)
    (inputs / "corrupt.toy.csv").write_text("garbage\n")
    out = tmp_path / "catalog.fits"
    done = subprocess.run([sys.executable, "-m", "specclip_core.cli", "predict", str(run_dir), str(inputs), "-o", str(out), "--quiet"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "corrupt.toy.csv" in done.stderr
    table = Table.read(out)
    assert len(table) == 5 and set(table.colnames) == {"id", "source", "temp", "ood_knn_pct", "flag_knn", "flag_range_temp", "ood_range_p", "flags", "reason"}
    reasons = np.asarray(table["reason"].filled(""), dtype=str)  # empty strings read back masked
    rejected = table[reasons != ""]
    assert list(rejected["source"]) == ["corrupt.toy.csv"] and "toy spectrum" in rejected["reason"][0] and np.isnan(np.ma.filled(rejected["temp"].astype(float), np.nan)[0])
    table = table[reasons == ""]
    assert "toy-pipeline" in table.meta["MODEL"] and "specclip==" in table.meta["VERSIONS"]
    assert table.meta["MODELSHA"] == json.loads((run_dir / "heads_embedding" / "manifest.json").read_text())["key"]
    assert table.meta["TRAINED"] == "heads_embedding on real toy spectra" and table.meta["SIMTRAIN"] is False
    assert str(table["temp"].unit) == "K"
    assert np.corrcoef(table["temp"], raw.meta["temp"])[0, 1] > 0.8
    assert ((table["ood_knn_pct"] >= 0) & (table["ood_knn_pct"] <= 100)).all() and not table["flag_range_temp"].any()
    csv_out = tmp_path / "catalog.csv"
    subprocess.run([sys.executable, "-m", "specclip_core.cli", "predict", str(run_dir), str(inputs), "-o", str(csv_out), "--heads", "heads_ridge", "--quiet"], check=True, capture_output=True)
    text = csv_out.read_text()
    assert text.startswith("# MODEL: specclip run toy-pipeline, heads heads_ridge")
    assert "# TRAINED: heads_ridge on real toy spectra" in text and "# COLUMN temp: no unit given; heads stage heads_ridge" in text
    assert "# COLUMN flags: raised flags" in text and "# COLUMN reason: empty for a predicted row" in text
    assert len(Table.read(csv_out, format="ascii.csv", comment="#")) == 5
    assert (tmp_path / "catalog.csv.rejected.csv").exists()


def test_a_head_on_spectra_and_ivar_reads_each_pixels_error_in_the_stage_and_in_predict(finished_run, tmp_path):
    from specclip_toy import make_raw, write_file

    run_dir, manifests = finished_run
    with_ivar, plain = manifests["heads_ridge_ivar"]["summary"], manifests["heads_ridge"]["summary"]
    n_stats = 2 * plain["input_dim"] - with_ivar["input_dim"]
    assert 0 <= n_stats < 10 and with_ivar["input_dim"] > plain["input_dim"] and with_ivar["test"]["temp"]["r2"] > 0.8
    raw = make_raw(6, 98)
    for row in range(6):
        write_file(tmp_path / f"star{row}.toy.csv", raw, row)
    out = tmp_path / "catalog.csv"
    done = subprocess.run([sys.executable, "-m", "specclip_core.cli", "predict", str(run_dir), str(tmp_path), "-o", str(out), "--heads", "heads_ridge_ivar", "--quiet"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    table = Table.read(out, format="ascii.csv", comment="#")
    assert len(table) == 6 and np.corrcoef(table["temp"], raw.meta["temp"])[0, 1] > 0.8


def test_predict_refuses_an_unknown_catalogue_suffix_before_reading_any_input(finished_run, tmp_path):
    run_dir, _ = finished_run
    done = subprocess.run([sys.executable, "-m", "specclip_core.cli", "predict", str(run_dir), str(tmp_path / "missing"), "-o", str(tmp_path / "catalog.xyz")], capture_output=True, text=True)
    assert done.returncode == 2 and "catalog.xyz: a catalogue must end in" in done.stderr and "missing" not in done.stderr


def test_predict_that_reads_nothing_fails_and_never_writes_into_a_directory(finished_run, tmp_path):
    from specclip_core.testing import cli_main

    run_dir, _ = finished_run
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "corrupt.toy.csv").write_text("garbage\n")
    (inputs / "notes.txt").write_text("not a spectrum\n")
    assert cli_main(["predict", str(run_dir), str(inputs), "-o", str(tmp_path / "c.csv"), "--quiet"]) == 2
    assert not (tmp_path / "c.csv").exists()
    assert cli_main(["predict", str(run_dir), str(inputs), "-o", str(inputs), "--quiet"]) == 2
    assert sorted(p.name for p in inputs.iterdir()) == ["corrupt.toy.csv", "notes.txt"]


def test_predict_defaults_to_the_last_embedding_heads_for_the_inputs_modality(finished_run):
    from specclip_core.errors import SpecCLIPError
    from specclip_core.predict import choose_heads
    from specclip_core.rundir import RunDir

    run_dir, _ = finished_run
    assert list(RunDir(run_dir).finished_heads()) == ["heads_embedding", "heads_spectra", "heads_ridge", "heads_gaussian", "heads_ridge_ivar"], "spec order"
    assert list(choose_heads(run_dir, None, {"toy"})) == ["heads_embedding"]
    with pytest.raises(SpecCLIPError, match="inputs hold \\['toy_broad'\\]"):
        choose_heads(run_dir, None, {"toy_broad"})


def test_evaluate_command_prints_the_table(finished_run, tmp_path):
    run_dir, _ = finished_run
    done = subprocess.run([sys.executable, "-m", "specclip_core.cli", "evaluate", str(run_dir), "-o", str(tmp_path / "ev")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "| temp |" in done.stdout and (tmp_path / "ev" / "one_to_one_heads_ridge_temp.png").exists()


def test_same_group_nearest_neighbour_counts_repeats():
    from specclip_core.retrieval.search import same_group_nearest_neighbour

    vectors = np.array([[1, 0], [0.99, 0.1], [0, 1], [0.1, 0.99], [0.7, 0.7], [-1, 0]], dtype=float)
    groups = np.array(["a", "a", "b", "c", "", "d"])
    result = same_group_nearest_neighbour(vectors, groups)
    assert result == {"n_spectra": 2, "n_groups": 1, "fraction": 1.0}
    result = same_group_nearest_neighbour(vectors, np.array(["a", "b", "a", "b", "", ""]))
    assert result["n_spectra"] == 4 and result["fraction"] == 0.0
