"""The finetune stage: LoRA adapters (peft) and head / full / scratch fine-tuning of a heads stage's model."""

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from specclip_core.errors import SpecCLIPError
from specclip_core.runner import run_spec
from specclip_core.spec import validate_spec

pytest.importorskip("peft")

TRAIN = {"epochs": 3, "batch_size": 32, "device": "cpu"}
HEAD = {"name": "mlp", "hidden": [32, 16]}
FINETUNE_TRAIN = {"epochs": 6, "batch_size": 16, "lr": 3e-3, "device": "cpu", "patience": 6}


def _spec(pair, adapt, run_dir, finetunes):
    heads = {"kind": "heads", "labels": ["temp"], "units": {"temp": "K"}, "head": HEAD, "train": {**TRAIN, "epochs": 8}}
    stages = {
        "pretrain_toy": {
            "kind": "pretrain",
            "modality": "toy",
            "objectives": [{"name": "masked_modeling", "n_chunks": 2, "chunk_tokens": 3}],
            "train": TRAIN,
        },
        "pretrain_broad": {"kind": "pretrain", "modality": "toy_broad", "train": TRAIN},
        "align": {
            "kind": "align",
            "needs": ["pretrain_toy", "pretrain_broad"],
            "projections": {"toy": {"name": "cross_attention"}, "toy_broad": {"name": "mlp", "hidden": 32}},
            "shared_dim": 16,
            "train": {**TRAIN, "drop_last": True},
        },
        "heads_mt": {**heads, "modality": "toy", "needs": ["pretrain_toy"]},
        "heads_ae": {**heads, "modality": "toy_broad", "needs": ["pretrain_broad"]},
        "heads_aligned": {**heads, "modality": "toy", "needs": ["align"]},
    }
    for name, settings in finetunes.items():
        stages[name] = {
            "kind": "finetune",
            "data": {"store": str(adapt.path)},
            "labels": ["temp"],
            "n_labelled": 40,
            "train": FINETUNE_TRAIN,
            **settings,
        }
    return validate_spec({"name": "toy-finetune", "seed": 3, "run_dir": str(run_dir), "data": {"store": str(pair.path)}, "stages": stages})


FINETUNES = {
    "ft_lora12": {"base": "heads_mt", "adapters": ["lora1", "lora2"]},
    "ft_ae": {"base": "heads_ae", "adapters": ["lora_ae", "lora2"]},
    "ft_unlabelled": {
        "base": "heads_ae",
        "adapters": ["lora_ae", "lora2"],
        "unlabelled": 100,
        "unlabelled_train": {"epochs": 2, "batch_size": 32, "device": "cpu"},
    },
    "ft_lora134": {"base": "heads_aligned", "adapters": ["lora1", "lora3", "lora4"]},
    "ft_head": {"base": "heads_mt", "adapters": ["head"]},
    "ft_full": {"base": "heads_mt", "adapters": ["full"]},
    "ft_scratch": {"base": "heads_mt", "adapters": ["scratch"]},
    "ft_lora12_seed3": {"base": "heads_mt", "adapters": ["lora1", "lora2"], "seed": 3},
    "ft_lora12_seed4": {"base": "heads_mt", "adapters": ["lora1", "lora2"], "seed": 4},
    "ft_l1": {"base": "heads_ae", "adapters": ["lora2"], "loss": "l1"},
    "ft_l1_noise": {"base": "heads_ae", "adapters": ["lora2"], "loss": "l1", "noise_augment": 1.0},
    "ft_members": {"base": "heads_ae", "adapters": ["lora2"], "loss": "l1", "members": 2},
    "ft_gaussian": {"base": "heads_ae", "adapters": ["lora2"], "loss": "l1", "uncertainty": "gaussian", "sbc_stars": 50},
    "ft_gaussian_members": {"base": "heads_ae", "adapters": ["lora2"], "uncertainty": "gaussian", "members": 2, "sbc_stars": 50},
    "ft_gaussian_folds": {"base": "heads_ae", "adapters": ["lora2"], "loss": "l1", "uncertainty": "gaussian", "recalibration_folds": 2, "sbc_stars": 50},
    "ft_gaussian_holdout": {"base": "heads_ae", "adapters": ["lora2"], "loss": "l1", "uncertainty": "gaussian", "recalibration_holdout": 0.25, "sbc_stars": 50},
}


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory):
    from specclip_toy import make_paired_store

    root = tmp_path_factory.mktemp("finetune")
    pair = make_paired_store(root / "pair.zarr", n=200, seed=0)
    adapt = make_paired_store(root / "adapt.zarr", n=300, seed=5)
    run_dir = root / "run"
    run_spec(_spec(pair, adapt, run_dir, {}), progress=False, log=lambda *_: None)
    before = {
        path.relative_to(run_dir).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest() for path in run_dir.rglob("*.safetensors")
    }
    manifests = run_spec(_spec(pair, adapt, run_dir, FINETUNES), progress=False, log=lambda *_: None)
    return run_dir, adapt, manifests, before


def _tensor_names(path):
    from safetensors import safe_open

    with safe_open(str(path), "pt") as handle:
        return list(handle.keys())


@pytest.mark.parametrize("stage", ["ft_lora12", "ft_ae", "ft_lora134", "ft_unlabelled"])
def test_lora_stage_saves_only_adapter_tensors(finetuned, stage):
    run_dir, _, manifests, _ = finetuned
    names = _tensor_names(run_dir / stage / "head" / "adapter.safetensors")
    assert names and all(".lora_A." in n or ".lora_B." in n for n in names), names
    summary = manifests[stage]["summary"]
    assert 0 < summary["trainable_parameters"] < summary["total_parameters"] / 2
    kept = sorted(p.name for p in (run_dir / stage).rglob("*.safetensors"))
    assert kept == ["adapter.safetensors", "ood.safetensors"], "no whole-model checkpoint kept (the out-of-distribution reference beside the adapter)"
    described = json.loads((run_dir / stage / "head" / "head.json").read_text())
    assert described["head"] == "adapted" and described["reference"]["base"] == FINETUNES[stage]["base"]
    assert set(described["reference"]["base_keys"]) == {
        FINETUNES[stage]["base"],
        manifests[FINETUNES[stage]["base"]]["settings"]["needs"][0],
    }


def test_adapters_land_where_the_paper_puts_them(finetuned):
    run_dir, _, _, _ = finetuned
    targets = {
        s: json.loads((run_dir / s / "head" / "head.json").read_text())["reference"]["lora"]["targets"]
        for s in ("ft_lora12", "ft_ae", "ft_lora134")
    }
    assert all(".attn." in t for t in targets["ft_lora12"]["lora1"]) and all(t.startswith("head.") for t in targets["ft_lora12"]["lora2"])
    assert all(t.startswith("encoder.encoder.encoder.") for t in targets["ft_ae"]["lora_ae"])
    assert all(t.startswith("projection.") for t in targets["ft_lora134"]["lora3"]) and all(
        t.startswith("head.") for t in targets["ft_lora134"]["lora4"]
    )
    sizes = json.loads((run_dir / "ft_lora134" / "head" / "head.json").read_text())["reference"]["lora"]["sizes"]
    assert sizes == {"lora1": [4, 8], "lora3": [16, 32], "lora4": [8, 16]}


def test_unlabelled_spectra_train_the_encoder_adapter_first(finetuned):
    run_dir, _, manifests, _ = finetuned
    step = manifests["ft_unlabelled"]["summary"]["unlabelled"]
    assert step["n_spectra"] == 100 and step["epochs_completed"] == 2
    assert step["objectives"] == [{"name": "reconstruction"}]
    assert (run_dir / "ft_unlabelled" / "unlabelled" / "metrics.csv").exists()
    assert manifests["ft_ae"]["summary"]["unlabelled"] is None


def test_head_full_and_scratch_save_what_they_train(finetuned):
    run_dir, _, manifests, _ = finetuned
    head = _tensor_names(run_dir / "ft_head" / "head" / "adapter.safetensors")
    assert head and all(n.startswith("head.") for n in head)
    full = _tensor_names(run_dir / "ft_full" / "head" / "adapter.safetensors")
    assert any(n.startswith("encoder.") for n in full) and any(n.startswith("head.") for n in full)
    assert manifests["ft_full"]["summary"]["trainable_parameters"] == manifests["ft_full"]["summary"]["total_parameters"]
    assert manifests["ft_head"]["summary"]["trainable_parameters"] < manifests["ft_full"]["summary"]["trainable_parameters"]


def test_base_weights_are_unchanged_after_finetune(finetuned):
    run_dir, _, _, before = finetuned
    for relative, digest in before.items():
        assert hashlib.sha256((run_dir / relative).read_bytes()).hexdigest() == digest, relative


@pytest.mark.parametrize("stage", ["ft_lora12", "ft_lora134", "ft_full"])
def test_predict_through_the_finetune_stage_equals_the_trained_model(finetuned, tmp_path, stage):
    from specclip_core.heads.saved import load_head
    from specclip_core.predict import predict_catalog
    from specclip_core.rundir import RunDir

    run_dir, adapt, _, _ = finetuned
    out = tmp_path / "catalog.csv"
    predict_catalog(run_dir, [str(adapt.path)], out, heads=[stage], progress=False)
    lines = [line for line in out.read_text().splitlines() if not line.startswith("#")]
    catalogue = {row["id"]: float(row["temp"]) for row in csv.DictReader(lines)}
    with open(run_dir / stage / "test_predictions.csv") as handle:
        trained = {row["id"]: float(row["temp_pred"]) for row in csv.DictReader(handle)}
    assert len(trained) > 10
    decimals = max(len(str(v).split(".")[1]) if "." in str(v) else 0 for v in catalogue.values())
    np.testing.assert_allclose(
        [catalogue[i] for i in trained], list(trained.values()), atol=0.5 * 10.0**-decimals + 1e-6
    )  # the catalogue rounds to its precision
    loaded = load_head(RunDir(run_dir).head(stage))
    rows = np.flatnonzero(np.isin(adapt.ids, list(trained)))
    part = adapt.read("toy", rows)
    exact = dict(zip(adapt.ids[rows], loaded.predict(np.concatenate([part["stats"], part["flux"]], axis=1))["temp"]))
    np.testing.assert_allclose([exact[i] for i in trained], list(trained.values()), rtol=1e-4, atol=1e-6)


def test_an_added_adapter_starts_as_the_base_model(finetuned):
    from specclip_core.heads.adapted import build_model, load_base
    from specclip_core.nn.adapters import ADAPTERS, adapter_targets, add_lora
    from specclip_core.rundir import RunDir

    run_dir, adapt, _, _ = finetuned
    base = load_base(RunDir(run_dir), "heads_aligned")
    model = build_model(base, {"temp": 0})
    inputs = np.concatenate([adapt.read("toy")["stats"], adapt.read("toy")["flux"]], axis=1)[:20]
    plain = model.predict(inputs)["temp"]
    names = ["lora1", "lora3", "lora4"]
    add_lora(model, adapter_targets(model, names, "the base"), {n: (ADAPTERS[n].rank, ADAPTERS[n].alpha) for n in names})
    np.testing.assert_allclose(model.predict(inputs)["temp"], plain, rtol=1e-6)
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert frozen and all(".lora_" not in n for n in frozen)


def test_n_labelled_draw_is_reproducible_and_nested(finetuned):
    from specclip_core.stages.finetune import draw

    run_dir, _, manifests, _ = finetuned
    assert manifests["ft_lora12"]["summary"]["n_rows"]["train"] == 40
    assert manifests["ft_lora12"]["summary"]["n_rows"]["val"] == 5
    ids = [row["id"] for row in csv.DictReader(open(run_dir / "ft_lora12" / "test_predictions.csv"))]
    assert ids == [row["id"] for row in csv.DictReader(open(run_dir / "ft_head" / "test_predictions.csv"))], "one fixed test set"
    rows = np.arange(100, 400)
    np.testing.assert_array_equal(draw(rows, 50, 7, "n"), draw(rows, 50, 7, "n"))
    assert set(draw(rows, 50, 7, "n")) <= set(draw(rows, 120, 7, "n"))
    assert not np.array_equal(draw(rows, 50, 7, "n"), draw(rows, 50, 8, "n"))
    with pytest.raises(SpecCLIPError, match="n_labelled is 301, but the data has only 300"):
        draw(rows, 301, 7, "n_labelled")


def _tensors(run_dir, stage):
    from safetensors.numpy import load_file

    return load_file(str(run_dir / stage / "head" / "adapter.safetensors"))


def test_the_seed_setting_repeats_a_finetune_on_another_draw(finetuned):
    run_dir, _, _, _ = finetuned
    same, other, plain = (_tensors(run_dir, s) for s in ("ft_lora12_seed3", "ft_lora12_seed4", "ft_lora12"))
    assert same.keys() == plain.keys() == other.keys()
    for name in plain:
        np.testing.assert_array_equal(same[name], plain[name], err_msg="seed 3 is the run's own seed")
    assert any(not np.allclose(other[name], plain[name]) for name in plain), "another seed, another draw and training"


def test_loss_and_noise_augment_change_what_the_adapters_learn(finetuned):
    run_dir, _, _, _ = finetuned
    header = (run_dir / "ft_l1_noise" / "training" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert "train_target_l1" in header
    assert "train_target_mse" in (run_dir / "ft_ae" / "training" / "metrics.csv").read_text().splitlines()[0].split(",")
    quiet, noisy = _tensors(run_dir, "ft_l1"), _tensors(run_dir, "ft_l1_noise")
    assert any(not np.allclose(quiet[name], noisy[name]) for name in quiet), "noise_augment perturbs the training spectra"


def test_members_are_saved_apart_and_predict_their_mean(finetuned, tmp_path):
    from specclip_core.heads.adapted import AdaptedEnsemble
    from specclip_core.heads.saved import load_head
    from specclip_core.predict import predict_catalog
    from specclip_core.rundir import RunDir

    run_dir, adapt, manifests, _ = finetuned
    head = run_dir / "ft_members" / "head"
    assert sorted(p.name for p in head.glob("adapter*.safetensors")) == ["adapter.0.safetensors", "adapter.1.safetensors"]
    from safetensors.numpy import load_file

    first, second = (load_file(str(head / f"adapter.{i}.safetensors")) for i in (0, 1))
    assert first.keys() == second.keys() and any(not np.allclose(first[n], second[n]) for n in first), "each member its own seed"
    single = _tensors(run_dir, "ft_l1")
    for name in single:
        np.testing.assert_array_equal(first[name], single[name], err_msg="member 0 is the stage with one member")
    ensemble = load_head(RunDir(run_dir).head("ft_members"))
    assert isinstance(ensemble, AdaptedEnsemble) and len(ensemble.members) == 2
    assert manifests["ft_members"]["summary"]["trainable_parameters"] == 2 * manifests["ft_l1"]["summary"]["trainable_parameters"]
    with open(run_dir / "ft_members" / "test_predictions.csv") as handle:
        trained = {row["id"]: float(row["temp_pred"]) for row in csv.DictReader(handle)}
    rows = np.flatnonzero(np.isin(adapt.ids, list(trained)))
    part = adapt.read("toy_broad", rows)
    inputs = np.concatenate([part["stats"], part["flux"]], axis=1)
    mean = np.mean([member.predict(inputs)["temp"] for member in ensemble.members], axis=0)
    np.testing.assert_allclose(ensemble.predict(inputs)["temp"], mean, rtol=1e-6)
    np.testing.assert_allclose([dict(zip(adapt.ids[rows], mean))[i] for i in trained], list(trained.values()), rtol=1e-4, atol=1e-6)
    out = tmp_path / "catalog.csv"
    predict_catalog(run_dir, [str(adapt.path)], out, heads=["ft_members"], progress=False)
    lines = [line for line in out.read_text().splitlines() if not line.startswith("#")]
    catalogue = {row["id"]: float(row["temp"]) for row in csv.DictReader(lines)}
    decimals = max(len(str(v).split(".")[1]) if "." in str(v) else 0 for v in catalogue.values())
    np.testing.assert_allclose([catalogue[i] for i in trained], list(trained.values()), atol=0.5 * 10.0**-decimals + 1e-6)  # rounded


def test_the_spread_learns_beside_the_value_without_moving_it(finetuned):
    import torch

    from specclip_core.heads.adapted import build_model, load_base
    from specclip_core.heads.mlp import ValueAndSpread
    from specclip_core.nn.adapters import ADAPTERS, adapter_targets, add_lora
    from specclip_core.rundir import RunDir

    run_dir, adapt, _, _ = finetuned
    torch.manual_seed(0)
    model = build_model(load_base(RunDir(run_dir), "heads_ae"), {"temp": 0}, spread=True)
    add_lora(model, adapter_targets(model, ["lora2"], "the base"), {"lora2": (ADAPTERS["lora2"].rank, ADAPTERS["lora2"].alpha)})
    model.spreads.requires_grad_(True)
    part = adapt.read("toy_broad", np.arange(32))
    batch = {"inputs": torch.as_tensor(np.concatenate([part["stats"], part["flux"]], axis=1)), "targets": torch.randn(32, 1)}
    terms = ValueAndSpread("l1")(model, batch)
    assert set(terms) == {"target_l1", "spread_gaussian_nll"}
    terms["spread_gaussian_nll"].backward()
    grads = {name: p.grad for name, p in model.named_parameters() if p.requires_grad}
    assert all(g is None or not g.any() for n, g in grads.items() if n.startswith("head.")), "the likelihood never reaches the value's weights"
    assert all(g is not None and g.any() for n, g in grads.items() if n.startswith("spreads.") and n.endswith("weight"))


@pytest.mark.parametrize("stage", ["ft_gaussian", "ft_gaussian_members"])
def test_a_gaussian_finetune_gives_calibrated_errors_and_flags(finetuned, tmp_path, stage):
    from specclip_core.heads.adapted import AdaptedEnsemble
    from specclip_core.heads.saved import load_head
    from specclip_core.predict import predict_catalog
    from specclip_core.rundir import RunDir

    run_dir, adapt, manifests, _ = finetuned
    head = run_dir / stage / "head"
    described = json.loads((head / "head.json").read_text())
    assert described["uncertainty"] == "gaussian" and len(described["recalibration"]["temp"]) == 401
    assert (head / "ood.json").exists() and manifests[stage]["summary"]["ood_reference"] == "40 training spectra"
    figures = manifests[stage]["summary"]["test"]["temp"]
    assert {"sbc_ks_p", "coverage_68", "coverage_95", "raw"} <= set(figures) and figures["sbc_stars"] == min(50, figures["n"])
    assert (run_dir / stage / "sbc_temp.png").exists()
    model = load_head(RunDir(run_dir).head(stage))
    assert isinstance(model, AdaptedEnsemble) and model.gives_samples
    with open(run_dir / stage / "test_predictions.csv") as handle:
        trained = {row["id"]: float(row["temp_pred"]) for row in csv.DictReader(handle)}
    rows = np.flatnonzero(np.isin(adapt.ids, list(trained)))
    part = adapt.read("toy_broad", rows)
    inputs = np.concatenate([part["stats"], part["flux"]], axis=1)
    predicted = model.predict(inputs)
    assert np.all(predicted["temp_lo"] < predicted["temp"]) and np.all(predicted["temp"] < predicted["temp_hi"])
    np.testing.assert_allclose(predicted["temp_err"], (predicted["temp_hi"] - predicted["temp_lo"]) / 2)
    np.testing.assert_allclose([dict(zip(adapt.ids[rows], predicted["temp"]))[i] for i in trained], list(trained.values()), rtol=1e-4, atol=1e-6)
    drawn = model.sample(inputs, 200)["temp"]
    assert drawn.shape == (len(rows), 200)
    np.testing.assert_allclose(np.median(drawn, axis=1), predicted["temp"], rtol=1e-3, atol=0.05)
    out = tmp_path / "catalog.fits"
    report = predict_catalog(run_dir, [str(adapt.path)], out, heads=[stage], progress=False, samples=50)
    assert {"temp", "temp_err", "temp_lo", "temp_hi", "ood_knn_pct", "flag_knn", "flag_range_temp", "flags"} <= set(report.columns)
    assert report.samples_output and Path(report.samples_output).exists()


def test_out_of_fold_recalibration_scores_every_training_star(finetuned):
    run_dir, _, manifests, _ = finetuned
    assert manifests["ft_gaussian"]["summary"]["recalibration_stars"] == {"temp": 5}, "the validation stars alone"
    assert manifests["ft_gaussian_folds"]["summary"]["recalibration_stars"] == {"temp": 45}, "and the 40 labelled training stars"
    assert (run_dir / "ft_gaussian_folds" / "training.fold0.0" / "metrics.csv").exists() and (run_dir / "ft_gaussian_folds" / "training.fold1.0").is_dir()
    same, folds = (_tensors(run_dir, s) for s in ("ft_gaussian", "ft_gaussian_folds"))
    for name in same:
        np.testing.assert_array_equal(folds[name], same[name], err_msg="the fold models leave the stage's own model as it was")
    levels = [json.loads((run_dir / s / "head" / "head.json").read_text())["recalibration"]["temp"] for s in ("ft_gaussian", "ft_gaussian_folds")]
    assert not np.allclose(*levels)


def test_an_exported_finetune_model_predicts_as_its_run(finetuned, tmp_path):
    from specclip_core.errors import SpecCLIPError
    from specclip_core.models import export_model
    from specclip_core.predict import predict_catalog

    run_dir, adapt, _, _ = finetuned
    card = export_model(run_dir, tmp_path / "model", "toy-adapted", heads=["ft_gaussian"])
    assert {"ft_gaussian/head/adapter.safetensors", "heads_ae/head/head.json", "pretrain_broad/manifest.json"} <= set(card.files)
    assert not any(name.startswith("heads_ae/head/ood") for name in card.files), "the base's own reference is not shipped"
    assert card.scores["temp"].coverage_68 is not None and card.scores["temp"].sbc_ks_p is not None
    assert "adapted on real" in card.training_data and "from heads_ae" in card.training_data
    assert card.adapted_on == "real" and "adapted on real spectra from a base trained on real ones; " in card.line()
    tables = []
    for source in (run_dir, tmp_path / "model"):
        out = tmp_path / f"{source.name}.csv"
        predict_catalog(source, [str(adapt.path)], out, heads=None if source != run_dir else ["ft_gaussian"], progress=False)
        tables.append([line for line in out.read_text().splitlines() if not line.startswith("#")])
    assert tables[0] == tables[1]
    weights = tmp_path / "model" / "ft_gaussian" / "head" / "adapter.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + bytes([weights.read_bytes()[-1] ^ 1]))
    with pytest.raises(SpecCLIPError, match="adapter.safetensors"):
        predict_catalog(tmp_path / "model", [str(adapt.path)], tmp_path / "again.csv", progress=False)


def test_recalibration_folds_need_a_gaussian_finetune(tmp_path):
    from pydantic import ValidationError

    from specclip_core.stages.finetune import FinetuneConfig

    for settings in ({"recalibration_folds": 3}, {"recalibration_folds": 1, "uncertainty": "gaussian"}):
        with pytest.raises(ValidationError, match="recalibration_folds is"):
            FinetuneConfig(base="heads", adapters=["lora2"], labels=["temp"], **settings)
    for settings in ({"recalibration_holdout": 0.2}, {"recalibration_holdout": 0.2, "uncertainty": "gaussian", "recalibration_folds": 2}):
        with pytest.raises(ValidationError, match="recalibration_holdout is"):
            FinetuneConfig(base="heads", adapters=["lora2"], labels=["temp"], **settings)


def test_held_out_training_stars_leave_the_adaptation_and_join_the_recalibration(finetuned):
    run_dir, adapt, manifests, _ = finetuned
    summary = manifests["ft_gaussian_holdout"]["summary"]
    assert summary["n_rows"]["train"] == 30 and summary["n_rows"]["held_out"] == 10, "a quarter of the 40 drawn stars"
    assert summary["recalibration_stars"] == {"temp": 5 + 10}, "the validation stars and the held-out ones"
    assert "held_out" not in manifests["ft_gaussian"]["summary"]["n_rows"]
    levels = [json.loads((run_dir / s / "head" / "head.json").read_text())["recalibration"]["temp"] for s in ("ft_gaussian", "ft_gaussian_holdout")]
    assert not np.allclose(*levels)


def test_unknown_or_clashing_adapters_are_refused_by_the_spec(tmp_path):
    from specclip_toy import make_store

    store = make_store(tmp_path / "toy.zarr", n=20)

    def spec(adapters):
        stages = {
            "heads": {"kind": "heads", "modality": "toy", "input": "spectra", "labels": ["temp"]},
            "ft": {"kind": "finetune", "base": "heads", "adapters": adapters, "labels": ["temp"]},
        }
        return validate_spec({"name": "bad", "data": {"store": str(store.path)}, "stages": stages})

    with pytest.raises(Exception, match="unknown adapters \\['lora9'\\]"):
        spec(["lora9"])
    with pytest.raises(Exception, match="stand alone"):
        spec(["head", "lora2"])
    with pytest.raises(Exception, match="unlabelled spectra adapt an encoder adapter"):
        validate_spec(
            {
                "name": "bad",
                "data": {"store": str(store.path)},
                "stages": {
                    "heads": {"kind": "heads", "modality": "toy", "input": "spectra", "labels": ["temp"]},
                    "ft": {"kind": "finetune", "base": "heads", "adapters": ["lora2"], "labels": ["temp"], "unlabelled": 10},
                },
            }
        )
    assert spec(["lora2"]).stages["ft"].needs == ["heads"]


@pytest.mark.parametrize(
    "base, adapters, message",
    [
        (
            "heads_ae",
            ["lora1"],
            "adapter 'lora1' adapts the self-attention layers of a masked-transformer encoder, which heads stage 'heads_ae'",
        ),
        ("heads_mt", ["lora4"], "adapter 'lora4' adapts the MLP head on aligned embeddings"),
        ("heads_mt", ["lora3"], "adapter 'lora3' adapts the projection"),
        ("heads_aligned", ["lora2"], "a head on aligned embeddings takes lora4"),
    ],
)
def test_an_adapter_whose_target_the_base_lacks_is_a_clear_error(finetuned, base, adapters, message):
    run_dir, adapt, _, _ = finetuned
    spec = _spec(*_stores(adapt), run_dir, {"ft_bad": {"base": base, "adapters": adapters}})
    with pytest.raises(SpecCLIPError, match=message.replace("(", "\\(").replace(")", "\\)")):
        run_spec(spec, only=["ft_bad"], progress=False, log=lambda *_: None)


def test_a_label_the_base_does_not_predict_needs_from_base(finetuned):
    run_dir, adapt, _, _ = finetuned
    spec = _spec(*_stores(adapt), run_dir, {"ft_bad": {"base": "heads_mt", "adapters": ["lora2"], "from_base": {"temp": "teff"}}})
    with pytest.raises(SpecCLIPError, match="label 'temp' adapts base output 'teff'"):
        run_spec(spec, only=["ft_bad"], progress=False, log=lambda *_: None)


def _stores(adapt):
    from specclip_core.data.store import SpectralStore

    return SpectralStore.open(adapt.path.parent / "pair.zarr"), adapt


def test_another_modality_must_share_the_base_model_grid(finetuned):
    run_dir, adapt, _, _ = finetuned
    spec = _spec(*_stores(adapt), run_dir, {"ft_bad": {"base": "heads_mt", "adapters": ["lora2"], "modality": "toy_broad"}})
    with pytest.raises(SpecCLIPError, match="modality 'toy_broad' \\(24 pixels"):
        run_spec(spec, only=["ft_bad"], progress=False, log=lambda *_: None)
