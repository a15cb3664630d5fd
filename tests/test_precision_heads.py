"""What the precision study's heads add (issue 13): ensembles, label errors in the Gaussian
likelihood, pixel errors and other modalities as inputs, seed offsets, validation figures."""

import json

import numpy as np
import pytest
import torch
from astropy.table import Table
from torch import nn

from specclip_core.heads.inputs import pixel_errors
from specclip_core.heads.metrics import regression_metrics
from specclip_core.heads.mlp import GaussianRegression, MLPHead, MLPHeadConfig
from specclip_core.interfaces import LabelledInputs
from specclip_core.runner import run_spec
from specclip_core.spec import TrainSpec, validate_spec

FAST = TrainSpec(epochs=12, batch_size=64, lr=3e-3, weight_decay=0.0, patience=5, device="cpu")


def _problem(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype(np.float32)
    y = x @ np.arange(1, 7) + 0.1 * rng.normal(size=n)
    return LabelledInputs(x, {"y": y}, [f"p{seed}-{i}" for i in range(n)], {"y": np.full(n, 0.1)})


@pytest.mark.parametrize("uncertainty", ["none", "gaussian"])
def test_ensemble_is_the_mean_of_distinct_members_and_round_trips(tmp_path, uncertainty):
    train, val, test = _problem(400, 1), _problem(100, 2), _problem(100, 3)
    head = MLPHead(MLPHeadConfig(hidden=[32], members=2, uncertainty=uncertainty))
    summary = head.fit(train, val, tmp_path / "fit", FAST, seed=4, progress=False)
    assert {"y.0", "y.1"} <= set(summary) and len(head.networks) == 2
    x = torch.as_tensor((test.inputs - head.input_mean) / head.input_std)
    members = [network(x)[:, 0].detach().numpy() * head.label_std["y"] + head.label_mean["y"] for network in head.networks]
    assert not np.allclose(members[0], members[1])  # seeds 4 and 1004
    predicted = head.predict(test.inputs)
    centre = head._gaussians(test.inputs)["y"][0] if uncertainty == "gaussian" else predicted["y"]  # a Gaussian head's value is the recalibrated median
    np.testing.assert_allclose(centre, np.mean(members, axis=0), rtol=1e-5, atol=1e-5)
    assert regression_metrics(test.labels["y"], predicted["y"])["r2"] > 0.95
    head.save(tmp_path / "saved")
    assert sorted(p.name for p in (tmp_path / "saved").glob("*.safetensors")) == ["y.0.safetensors", "y.1.safetensors"]
    again = MLPHead.load(tmp_path / "saved").predict(test.inputs)
    np.testing.assert_allclose(again["y"], predicted["y"], rtol=1e-5)
    if uncertainty == "gaussian":  # a mixture is at least as wide as its narrowest member's mean sigma
        assert np.all(predicted["y_err"] > 0)


def test_label_errors_add_to_the_predicted_variance():
    network = nn.Linear(2, 2)
    batch = {"inputs": torch.randn(5, 2), "targets": torch.tensor([[0.5, 0.2]] * 4 + [[float("nan"), 0.3]])}
    mean, raw = network(batch["inputs"])[:, :1], network(batch["inputs"])[:, 1:]
    variance = nn.functional.softplus(raw) + 1e-6 + batch["targets"][:, 1:] ** 2
    expected = nn.GaussianNLLLoss(eps=1e-4)(mean[:4], batch["targets"][:4, :1], variance[:4])
    got = GaussianRegression(label_errors=True)(network, batch)["target_gaussian_nll"]
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)
    assert GaussianRegression()(network, {**batch, "targets": batch["targets"][:, :1]})["target_gaussian_nll"].item() != pytest.approx(got.item())


def test_label_errors_need_a_gaussian_head_and_error_columns(tmp_path):
    with pytest.raises(ValueError, match="uncertainty: gaussian"):
        MLPHeadConfig(label_errors=True)
    train = _problem(50, 1)
    train.label_errors = {}
    with pytest.raises(ValueError, match="no error column given for \\['y'\\]"):
        MLPHead(MLPHeadConfig(hidden=[8], uncertainty="gaussian", label_errors=True)).fit(train, _problem(20, 2), tmp_path, FAST, progress=False)


def test_pixel_errors_are_the_flux_sigma_and_zero_where_masked():
    arrays = {"ivar": np.array([[4.0, 0.0, 25.0]]), "mask": np.array([[False, False, True]])}
    np.testing.assert_allclose(pixel_errors(arrays), [[0.5, 0.0, 0.0]])


def test_heads_read_errors_and_another_modality_with_an_offset_seed(tmp_path):
    from specclip_toy import make_paired_store

    store = make_paired_store(tmp_path / "pair.zarr", n=300, seed=3)
    head = {"kind": "heads", "modality": "toy", "input": "spectra", "labels": ["temp"], "head": {"name": "mlp", "hidden": [16]}, "train": {"epochs": 3, "batch_size": 64, "device": "cpu"}}
    spec = validate_spec(
        {
            "name": "precision-toy",
            "data": {"store": str(store.path)},
            "stages": {
                "plain": head,
                "joined": {**head, "errors_input": True, "with_modalities": ["toy_broad"]},
                "offset": {**head, "seed_offset": 1},
                "errors": {**head, "errors_input": True},
            },
        }
    )
    manifests = run_spec(spec, run_dir=tmp_path / "run", progress=False, log=lambda *_: None)
    plain, joined = (manifests[name]["summary"] for name in ("plain", "joined"))
    n_toy, n_broad = store.wavelength("toy").size, store.wavelength("toy_broad").size
    n_stats = len(store.stats_names("toy"))
    assert plain["input_dim"] == n_stats + n_toy
    assert joined["input_dim"] == n_stats + 2 * n_toy + len(store.stats_names("toy_broad")) + n_broad
    assert set(plain["validation"]["temp"]) >= {"robust_sigma", "r2", "n"} and plain["validation"]["temp"]["n"] == plain["n_rows"]["val"]
    assert manifests["offset"]["summary"]["test"]["temp"]["robust_sigma"] != plain["test"]["temp"]["robust_sigma"]
    saved = json.loads((tmp_path / "run" / "joined" / "head" / "inputs.json").read_text())
    assert saved["errors_input"] is True and saved["with_modalities"] == ["toy_broad"]
    from specclip_toy import make_raw, write_file

    from specclip_core.errors import SpecCLIPError
    from specclip_core.predict import predict_catalog

    raw = make_raw(3, 5)
    for row in range(3):
        write_file(tmp_path / f"star{row}.toy.csv", raw, row)
    files = [str(tmp_path / f"star{row}.toy.csv") for row in range(3)]
    predict_catalog(tmp_path / "run", files, tmp_path / "errors.csv", heads=["errors"], progress=False, workers=1)  # pixel errors from the files
    table = Table.read(tmp_path / "errors.csv", format="ascii.csv", comment="#")
    assert list(table["id"]) == ["star0", "star1", "star2"] and np.isfinite(np.asarray(table["temp"], dtype=float)).all()
    with pytest.raises(SpecCLIPError, match="toy_broad"):
        predict_catalog(tmp_path / "run", files, tmp_path / "joined.csv", heads=["joined"], progress=False, workers=1)


def test_with_modalities_may_not_repeat_the_heads_modality():
    from specclip_core.errors import SpecError

    with pytest.raises(SpecError, match="with_modalities"):
        validate_spec({"name": "bad", "data": {"store": "x.zarr"}, "stages": {"h": {"kind": "heads", "modality": "toy", "labels": ["temp"], "with_modalities": ["toy"]}}})
