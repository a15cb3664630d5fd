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
from specclip_core.heads.mlp import GaussianRegression, MLPHead, MLPHeadConfig, noisier
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
                "joined": {**head, "errors_input": "sigma", "with_modalities": ["toy_broad"]},
                "offset": {**head, "seed_offset": 1},
                "errors": {**head, "errors_input": "sigma"},
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
    assert saved["errors_input"] == "sigma" and saved["with_modalities"] == ["toy_broad"]
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


def test_noisier_inputs_add_each_inputs_own_error_only_while_training():
    network = nn.Linear(3, 1)
    batch = {"inputs": torch.zeros(2000, 3), "errors": torch.tensor([[0.0, 1.0, 3.0]]).repeat(2000, 1)}
    torch.manual_seed(0)
    noisy = noisier(network.train(), batch, 2.0)
    assert torch.all(noisy[:, 0] == 0)  # an input without an error is never perturbed
    # factor ~ U(0, 2): E[f^2] = 4/3, so the noise's variance is 4/3 error^2
    assert noisy[:, 1].var().item() == pytest.approx(4 / 3, rel=0.1)
    assert noisy[:, 2].var().item() == pytest.approx(4 / 3 * 9, rel=0.1)
    assert torch.equal(noisier(network.eval(), batch, 2.0), batch["inputs"])
    assert torch.equal(noisier(network.train(), batch, 0.0), batch["inputs"])


def _positive_problem(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype(np.float32)
    teff = 10 ** (3.75 + 0.1 * x[:, 0] + 0.05 * x[:, 1] + 0.002 * rng.normal(size=n))
    return LabelledInputs(x, {"teff": teff}, [f"t{seed}-{i}" for i in range(n)])


@pytest.mark.parametrize("uncertainty", ["none", "gaussian"])
def test_log_labels_fit_log10_and_give_values_back_in_the_labels_units(tmp_path, uncertainty):
    train, val, test = _positive_problem(600, 1), _positive_problem(150, 2), _positive_problem(150, 3)
    head = MLPHead(MLPHeadConfig(hidden=[32], uncertainty=uncertainty, log_labels=["teff"]))
    head.fit(train, val, tmp_path / "fit", FAST, seed=0, progress=False)
    assert head.label_mean["teff"] == pytest.approx(np.log10(train.labels["teff"]).mean(), rel=1e-4)
    predicted = head.predict(test.inputs)
    assert 3000 < predicted["teff"].min() and predicted["teff"].max() < 20000  # kelvin, not log10
    assert regression_metrics(test.labels["teff"], predicted["teff"])["r2"] > 0.9
    if uncertainty == "gaussian":
        assert np.all(predicted["teff_lo"] < predicted["teff"]) and np.all(predicted["teff"] < predicted["teff_hi"])
        samples = head.sample(test.inputs, 50)["teff"]
        np.testing.assert_allclose(np.median(samples, axis=1), predicted["teff"], rtol=0.01)
    head.save(tmp_path / "saved")
    np.testing.assert_allclose(MLPHead.load(tmp_path / "saved").predict(test.inputs)["teff"], predicted["teff"], rtol=1e-5)


def test_log_labels_and_noise_augment_refuse_what_they_cannot_use(tmp_path):
    train = _positive_problem(50, 1)
    with pytest.raises(ValueError, match="log_labels: \\['logg'\\] are not among"):
        MLPHead(MLPHeadConfig(hidden=[8], log_labels=["logg"])).fit(train, _positive_problem(20, 2), tmp_path, FAST, progress=False)
    train.labels["teff"][3] = -1.0
    with pytest.raises(ValueError, match="'teff' has training values <= 0"):
        MLPHead(MLPHeadConfig(hidden=[8], log_labels=["teff"])).fit(train, _positive_problem(20, 2), tmp_path, FAST, progress=False)
    with pytest.raises(ValueError, match="noise_augment needs the training inputs' errors"):
        MLPHead(MLPHeadConfig(hidden=[8], noise_augment=1.0)).fit(_positive_problem(50, 1), _positive_problem(20, 2), tmp_path, FAST, progress=False)


def test_the_heads_stage_gives_a_noise_augmented_head_the_flux_errors(tmp_path, monkeypatch):
    from specclip_toy import make_paired_store

    from specclip_core.errors import SpecCLIPError

    store = make_paired_store(tmp_path / "pair.zarr", n=300, seed=3)
    seen = {}
    fit = MLPHead.fit

    def spy(self, train, validation, *args, **kwargs):
        seen["train"], seen["val"] = train.input_errors, validation.input_errors
        return fit(self, train, validation, *args, **kwargs)

    monkeypatch.setattr(MLPHead, "fit", spy)
    head = {"kind": "heads", "modality": "toy", "input": "spectra", "errors_input": "inverse_sigma", "labels": ["temp"], "head": {"name": "mlp", "hidden": [16], "noise_augment": 1.0}, "train": {"epochs": 2, "batch_size": 64, "device": "cpu"}}
    spec = validate_spec({"name": "noisy-toy", "data": {"store": str(store.path)}, "stages": {"noisy": head}})
    run_spec(spec, run_dir=tmp_path / "run", progress=False, log=lambda *_: None)
    n_stats, n_pixels = len(store.stats_names("toy")), store.wavelength("toy").size
    errors = seen["train"]
    assert errors.shape[1] == n_stats + 2 * n_pixels and seen["val"] is None
    assert np.all(errors[:, :n_stats] == 0) and np.all(errors[:, n_stats + n_pixels :] == 0)  # statistics and sqrt(ivar) are not perturbed
    assert errors[:, n_stats : n_stats + n_pixels].max() > 0
    embedding = validate_spec({"name": "noisy-embedding", "data": {"store": str(store.path)}, "stages": {"noisy": {**head, "input": "embedding"}}})
    with pytest.raises((ValueError, SpecCLIPError), match="needs input: spectra "):
        run_spec(embedding, run_dir=tmp_path / "run2", progress=False, log=lambda *_: None)
