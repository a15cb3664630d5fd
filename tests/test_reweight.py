"""Importance weights that make a training set's labels follow another population's (heads ``reweight``)."""

import numpy as np
import pytest
import torch

from specclip_core.data.store import SpectralStore
from specclip_core.heads.mlp import GaussianRegression, MLPHead, target_loss
from specclip_core.heads.reweight import LabelReweighting
from specclip_core.runner import run_spec
from specclip_core.spec import validate_spec


def test_weights_make_the_training_labels_follow_the_like_population():
    rng = np.random.default_rng(0)
    train = {"x": rng.normal(0.0, 1.0, 4000), "y": rng.uniform(0, 1, 4000)}
    like = {"x": rng.normal(1.0, 0.5, 1000), "y": rng.uniform(0, 1, 1000)}
    weighting = LabelReweighting(["x"], train, like, seed=0)
    weights = weighting.training_weights()
    assert weights.mean() == pytest.approx(1.0) and weights.max() <= 20.0 + 1e-9 and weights.min() >= 0
    weighted_mean = np.sum(weights * train["x"]) / weights.sum()
    assert abs(weighted_mean - 1.0) < 0.15 and abs(train["x"].mean()) < 0.1  # unweighted: 0; weighted: the like stars' 1
    weighted_sd = np.sqrt(np.sum(weights * (train["x"] - weighted_mean) ** 2) / weights.sum())
    assert weighted_sd < 0.75  # narrower like the like stars' 0.5
    other = weighting.weights({"x": np.array([-2.0, 1.0])})
    assert other[0] < other[1]


def test_max_weight_bounds_the_weights():
    rng = np.random.default_rng(1)
    train, like = {"x": rng.normal(0, 1, 3000)}, {"x": rng.normal(2.5, 0.3, 500)}
    loose = LabelReweighting(["x"], train, like, max_weight=1000).training_weights()
    tight = LabelReweighting(["x"], train, like, max_weight=3).training_weights()
    assert tight.mean() == pytest.approx(1.0) and loose.mean() == pytest.approx(1.0)
    assert tight.max() < loose.max() / 2
    assert np.sum(np.isclose(tight, tight.max())) > 10  # every clipped star shares the largest weight


def test_weighted_losses_count_each_row_by_its_weight():
    predicted = torch.tensor([[1.0, 0.0], [3.0, 1.0], [0.0, 0.0]])
    targets = torch.tensor([[0.0, 0.0], [0.0, float("nan")], [0.0, 2.0]])
    weights = torch.tensor([1.0, 0.0, 3.0])
    for loss in ("mse", "l1", "huber"):
        everything = target_loss(predicted, targets, loss)
        assert target_loss(predicted, targets, loss, torch.ones(3)).item() == pytest.approx(everything.item())
        without_second = target_loss(predicted[[0, 2]], targets[[0, 2]], loss, weights[[0, 2]])
        assert target_loss(predicted, targets, loss, weights).item() == pytest.approx(without_second.item())
    network = torch.nn.Linear(2, 2)
    batch = {"inputs": torch.randn(3, 2), "targets": torch.tensor([[0.5], [0.1], [float("nan")]])}
    alone = GaussianRegression()(network, {"inputs": batch["inputs"][:1], "targets": batch["targets"][:1]})["target_gaussian_nll"]
    weighted = GaussianRegression()(network, {**batch, "weights": torch.tensor([2.0, 0.0, 5.0])})["target_gaussian_nll"]
    assert weighted.item() == pytest.approx(alone.item(), rel=1e-5)


def _like_store(path, temp):
    from specclip_toy import ToyModality, make_raw

    spectra = ToyModality().preprocess(make_raw(len(temp), seed=7))
    with SpectralStore.build(path, {"toy": ToyModality()}, {"hotness": "float"}) as store:
        store.append(spectra.ids, {"toy": spectra}, {"hotness": temp})
    return SpectralStore.open(path)


def test_the_heads_stage_weights_its_training_stars_to_the_like_store(tmp_path, toy_store, monkeypatch):
    like = _like_store(tmp_path / "like.zarr", np.random.default_rng(2).uniform(0.6, 1.0, 300))
    seen = {}
    fit = MLPHead.fit

    def spy(self, train, validation, *args, **kwargs):
        seen["train"], seen["val"] = train, validation
        return fit(self, train, validation, *args, **kwargs)

    monkeypatch.setattr(MLPHead, "fit", spy)
    head = {"kind": "heads", "modality": "toy", "input": "spectra", "labels": ["temp"], "head": {"name": "mlp", "hidden": [16]}, "train": {"epochs": 2, "batch_size": 64, "device": "cpu"}}
    reweight = {"like": {"store": str(like.path)}, "labels": ["temp"], "columns": {"temp": "hotness"}}
    spec = validate_spec({"name": "reweighted-toy", "data": {"store": str(toy_store.path)}, "stages": {"heads": {**head, "reweight": reweight}}})
    manifests = run_spec(spec, run_dir=tmp_path / "run", progress=False, log=lambda *_: None)
    train, val = seen["train"], seen["val"]
    assert train.weights is not None and val.weights is not None and len(val.weights) == len(val.inputs)
    temp = train.labels["temp"]
    assert np.mean(train.weights[temp < 0.4]) < 0.2 * np.mean(train.weights[temp > 0.7])
    summary = manifests["heads"]["summary"]
    assert summary["reweight"]["like_stars"] > 0 and 0 < summary["reweight"]["train"]["effective_n"] < len(train.inputs)


def test_reweight_is_refused_for_a_head_that_takes_no_weights_and_for_an_unknown_column(tmp_path, toy_store):
    from specclip_core.errors import SpecCLIPError

    like = _like_store(tmp_path / "like.zarr", np.linspace(0, 1, 50))
    head = {"kind": "heads", "modality": "toy", "input": "spectra", "labels": ["temp"], "train": {"epochs": 1, "batch_size": 64, "device": "cpu"}}
    ridge = validate_spec({"name": "r", "data": {"store": str(toy_store.path)}, "stages": {"h": {**head, "head": {"name": "ridge"}, "reweight": {"like": {"store": str(like.path)}, "labels": ["temp"], "columns": {"temp": "hotness"}}}}})
    with pytest.raises((ValueError, SpecCLIPError), match="does not weight its training loss"):
        run_spec(ridge, run_dir=tmp_path / "run", progress=False, log=lambda *_: None)
    missing = validate_spec({"name": "m", "data": {"store": str(toy_store.path)}, "stages": {"h": {**head, "head": {"name": "mlp", "hidden": [8]}, "reweight": {"like": {"store": str(like.path)}, "labels": ["temp"]}}}})
    with pytest.raises(SpecCLIPError, match=r"no label column\(s\) \[.temp.\]"):
        run_spec(missing, run_dir=tmp_path / "run2", progress=False, log=lambda *_: None)
