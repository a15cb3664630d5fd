import json
import math
import os
import stat

import numpy as np
import pytest
import torch

from specclip_core.align.model import AlignmentModel, pair_key
from specclip_core.align.objectives import info_nce
from specclip_core.data.splits import split_rows
from specclip_core.nn.modality_encoder import ModalityEncoder
from specclip_core.runner import run_spec
from specclip_core.spec import load_spec, registered_specs, validate_spec


def test_infonce_matches_a_hand_computed_case():
    a = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    b = torch.tensor([[3.0, 0.0], [1.0, 1.0]])
    scale = 15.5
    # unit vectors: a1=(1,0) a2=(0,1); b1=(1,0) b2=(1,1)/sqrt2 -> cosines [[1, s],[0, s]] with s = 1/sqrt2
    s = 1 / math.sqrt(2)
    logits = scale * np.array([[1.0, s], [0.0, s]])

    def ce(row, target):
        return -(row[target] - math.log(sum(math.exp(v) for v in row)))

    rows = (ce(logits[0], 0) + ce(logits[1], 1)) / 2
    columns = (ce(logits[:, 0], 0) + ce(logits[:, 1], 1)) / 2
    expected = 0.5 * (rows + columns)
    assert info_nce(a, b, scale).item() == pytest.approx(expected, rel=1e-6)


def _model(private_dim=0, reconstruction=True, prediction=True, modalities=("toy", "toy_broad")):
    torch.manual_seed(0)
    encoders = {m: ModalityEncoder(m) for m in modalities}
    projections = {m: ({"name": "cross_attention"} if encoders[m].tokenizer.n_tokens > 1 else {"name": "mlp", "hidden": 32}) | {"shared_dim": 16, "private_dim": private_dim} for m in modalities}
    decoder = {"name": "mlp_decoder", "multipliers": [2.0]}
    return AlignmentModel(encoders, projections, decoder if reconstruction else None, decoder if prediction else None)


def test_split_cross_decoders_read_only_the_shared_part(toy_store):
    model = _model(private_dim=8).eval()
    private = model.projections["toy"].private
    batch = {"flux": torch.randn(4, 64) * 0.1 + 1, "stats": torch.rand(4, 2) + 0.5}
    before = model.embed("toy", batch)
    cross_before = model.predictors[pair_key("toy", "toy_broad")](before.shared)
    recon_before = model.reconstructors["toy"](before.full)
    with torch.no_grad():
        for parameter in private.parameters():
            parameter.add_(torch.randn_like(parameter))
    after = model.embed("toy", batch)
    assert not torch.allclose(after.private, before.private), "the private part must have changed"
    torch.testing.assert_close(after.shared, before.shared)
    torch.testing.assert_close(model.predictors[pair_key("toy", "toy_broad")](after.shared), cross_before)
    assert not torch.allclose(model.reconstructors["toy"](after.full), recon_before), "reconstruction reads the private part"


def test_save_load_round_trip(tmp_path):
    model = _model(private_dim=4).eval()
    model.save(tmp_path / "m")
    again = AlignmentModel.load(tmp_path / "m").eval()
    batch = {"flux": torch.randn(3, 24) * 0.1 + 1, "stats": torch.rand(3, 2) + 0.5}
    torch.testing.assert_close(again.embed("toy_broad", batch).full, model.embed("toy_broad", batch).full)


def _align_spec(store, run_dir, modalities, private_dim=0, reconstruction=True, prediction=True, epochs=1):
    stages = {}
    for m in modalities:
        stages[f"pretrain_{m}"] = {"kind": "pretrain", "modality": m, "train": {"epochs": 1, "batch_size": 32, "device": "cpu"}}
        if m != "toy_broad":
            stages[f"pretrain_{m}"]["objectives"] = [{"name": "masked_modeling", "n_chunks": 2, "chunk_tokens": 3}]
    decoder = {"name": "mlp_decoder", "multipliers": [2.0]}
    align = {
        "kind": "align",
        "needs": [f"pretrain_{m}" for m in modalities],
        "projections": {m: {"name": "mlp", "hidden": 32} if m == "toy_broad" else {"name": "cross_attention"} for m in modalities},
        "shared_dim": 16,
        "private_dim": private_dim,
        "train": {"epochs": epochs, "batch_size": 64, "lr": 1e-3, "drop_last": True, "device": "cpu", "max_steps_per_epoch": 1 if epochs == 1 else None},
        "translation_examples": 2,
    }
    if reconstruction:
        align["reconstruction"] = decoder
    if prediction:
        align["prediction"] = decoder
    stages["align"] = align
    stages["heads"] = {"kind": "heads", "needs": ["align"], "modality": modalities[0], "labels": ["temp"], "head": {"name": "ridge"}}
    return validate_spec({"name": "toy-align", "run_dir": str(run_dir), "data": {"store": str(store.path)}, "stages": stages})


def _registry_align_settings(variant: str) -> dict:
    """The align stage of a shipped variant spec (from the catalogue distribution), resized for the toy
    pair (its decoders, split and weights kept)."""
    if variant not in registered_specs():
        pytest.skip(f"the spec {variant!r} is not registered: specclip-registry is not installed")
    settings = load_spec(variant).dump()["stages"]["align"]
    settings["projections"] = {"toy": {"name": "cross_attention"}, "toy_broad": {"name": "mlp", "hidden": 32}}
    settings["shared_dim"] = 16
    settings["private_dim"] = 8 if settings.get("private_dim") else 0
    settings["train"] = {"epochs": 1, "batch_size": 64, "lr": 1e-3, "drop_last": True, "device": "cpu", "max_steps_per_epoch": 1}
    settings["translation_examples"] = 2
    settings["needs"] = ["pretrain_toy", "pretrain_toy_broad"]
    return settings


@pytest.mark.parametrize(
    "variant,split,reconstruction,prediction",
    [("clip", False, False, False), ("clip-r", False, True, False), ("clip-p", False, False, True), ("clip-pr", False, True, True), ("clip-split", True, True, True)],
)
def test_each_registry_variant_spec_trains_one_step_on_a_toy_pair(tmp_path, variant, split, reconstruction, prediction):
    from specclip_toy import make_paired_store

    store = make_paired_store(tmp_path / "pair.zarr", n=200)
    data = _align_spec(store, tmp_path / "run", ("toy", "toy_broad")).dump()
    data["stages"]["align"] = _registry_align_settings(variant)
    manifests = run_spec(validate_spec(data), progress=False, log=lambda *_: None)
    summary = manifests["align"]["summary"]
    assert summary["steps"] == 1
    assert set(summary["aligned"]["retrieval"]) == {"toy->toy_broad", "toy_broad->toy"}
    assert bool(summary["aligned"]["prediction_weighted_mse"]) == prediction
    model = AlignmentModel.load(tmp_path / "run" / "align" / "model")
    assert bool(len(model.reconstructors)) == reconstruction and bool(len(model.predictors)) == prediction
    assert (tmp_path / "run" / "align" / "encoders" / "toy" / "encoder.json").exists()
    assert manifests["heads"]["summary"]["input_dim"] == 16 + (8 if split else 0)


@pytest.mark.slow
def test_three_modalities_align_and_improve_retrieval(tmp_path):
    from specclip_toy import make_paired_store

    modalities = ("toy", "toy_broad", "toy_narrow")
    store = make_paired_store(tmp_path / "three.zarr", modalities, n=400)
    manifests = run_spec(_align_spec(store, tmp_path / "run", modalities, epochs=30), progress=False, log=lambda *_: None)
    summary = manifests["align"]["summary"]
    assert len(summary["aligned"]["cosine"]) == 3 and len(summary["aligned"]["retrieval"]) == 6
    metrics = json.loads((tmp_path / "run" / "align" / "metrics.json").read_text())
    for direction, aligned in metrics["aligned"]["retrieval"].items():
        assert aligned["top10"] > metrics["baseline_before_training"]["retrieval"][direction]["top10"], direction
    assert (tmp_path / "run" / "align" / "translations.png").exists()


def test_report_builds_table1_and_table2(tmp_path):
    from specclip_toy import make_paired_store

    store = make_paired_store(tmp_path / "pair.zarr", n=200, simulated=("toy",))
    base = _align_spec(store, tmp_path / "run", ("toy", "toy_broad")).dump()
    stages = base["stages"]
    stages["align_pr"] = {**stages["align"], "needs": ["pretrain_toy", "pretrain_toy_broad"]}
    del stages["heads"]
    for name, need in (("heads_raw", None), ("heads_pre", "pretrain_toy"), ("heads_clip", "align"), ("heads_pr", "align_pr")):
        stages[name] = {"kind": "heads", "modality": "toy", "labels": ["temp"], "head": {"name": "ridge"}} | (
            {"needs": [need]} if need else {"input": "spectra"}
        )
    stages["report"] = {
        "kind": "report",
        "needs": ["heads_raw", "heads_pre", "heads_clip", "heads_pr", "align", "align_pr"],
        "table1": [{"title": "toy (simulated)", "labels": ["temp"], "columns": {"raw": "heads_raw", "pretrained": "heads_pre", "CLIP": "heads_clip", "CLIP-pr": "heads_pr"}}],
        "table2": {"CLIP": "align", "CLIP-pr": "align_pr"},
    }
    del stages["align"]["reconstruction"], stages["align"]["prediction"]
    spec = validate_spec(base)
    previous = os.umask(0o022)
    try:
        run_spec(spec, progress=False, log=lambda *_: None)
    finally:
        os.umask(previous)
    report = (tmp_path / "run" / "report" / "report.md").read_text()
    weights = sorted((tmp_path / "run" / "align").rglob("*.safetensors"))
    assert weights and all(stat.S_IMODE(p.stat().st_mode) == 0o644 for p in [tmp_path / "run" / "report" / "report.md", *weights]), "readable by group and world"
    assert "**toy (simulated)**" in report and "| temp (N=" in report and "Number of wins" in report
    assert "before alignment" in report and "| CLIP-pr |" in report and "pred. wMSE toy->toy_broad" in report
    baseline_row = next(line for line in report.splitlines() if line.startswith("| before alignment"))
    assert baseline_row.count(" - ") == 0, "the untrained prediction error comes from the variant that has decoders"
    assert "](plots/align_pr_translations.png)" in report
    assert json.loads((tmp_path / "run" / "heads_raw" / "manifest.json").read_text())["summary"]["simulated"] is True
    assert "toy spectra are SIMULATED" in (tmp_path / "run" / "heads_raw" / "table.md").read_text()
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "specclip_core.cli", "report", str(tmp_path / "run")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "Table 2" in done.stdout


def test_ordered_option_validates_its_widths(tmp_path):
    from specclip_toy import make_paired_store

    store = make_paired_store(tmp_path / "pair.zarr", n=20)
    data = _align_spec(store, tmp_path / "run", ("toy", "toy_broad")).dump()
    for widths, message in (([8, 4], "strictly increasing"), ([4, 32], "go past shared_dim 16"), ([0, 4], "positive")):
        data["stages"]["align"]["ordered"] = {"widths": widths}
        with pytest.raises(Exception, match=message):
            validate_spec(data)


def test_an_ordered_prefix_retrieves_better_than_the_same_prefix_of_a_plain_embedding(tmp_path):
    """Two alignments of the toy pair, the same in everything but ``ordered``: the ordered one's first
    2 of 16 shared dimensions tell a star's counterpart from the other stars better (InfoNCE over
    every pair of the 400 stars at that width, lower is better; chance is log 400 = 5.99); the
    model description records the widths."""
    from specclip_core.align.metrics import shared_embeddings
    from specclip_toy import make_paired_store

    store = make_paired_store(tmp_path / "pair.zarr", n=400)
    data = _align_spec(store, tmp_path / "run", ("toy", "toy_broad"), epochs=20).dump()
    del data["stages"]["heads"]
    data["stages"]["align"]["train"]["lr"] = 3e-3
    data["stages"]["align_ordered"] = data["stages"]["align"] | {"ordered": {"widths": [2, 4, 8]}}
    manifests = run_spec(validate_spec(data), progress=False, log=lambda *_: None)
    assert set(manifests["align_ordered"]["summary"]["aligned"]["retrieval_by_width"]) == {"2", "4", "8", "16"}
    assert "retrieval_by_width" not in manifests["align"]["summary"]["aligned"]
    rows = np.arange(len(store))
    losses = {}
    for stage in ("align", "align_ordered"):
        model = AlignmentModel.load(tmp_path / "run" / stage / "model")
        embeddings = shared_embeddings(model, store, rows)
        losses[stage] = info_nce(torch.as_tensor(embeddings["toy"][:, :2]), torch.as_tensor(embeddings["toy_broad"][:, :2]), model.logit_scale).item()
    assert AlignmentModel.load(tmp_path / "run" / "align_ordered" / "model").ordered == {"widths": [2, 4, 8, 16], "decoders": True}
    assert losses["align_ordered"] < losses["align"] - 0.2, losses


def _toy_batch(modalities, n=12, unobserved=None):
    """A batch of ``n`` toy stars in every modality; ``unobserved``: modality -> rows it did not observe
    (every pixel masked, NaN flux)."""
    from specclip_toy import MODALITIES, make_raw

    batch = {}
    for m in modalities:
        view = MODALITIES[m]()
        spectra = view.preprocess(make_raw(n, 0, np.linspace(view.wavelength[0] - 50, view.wavelength[-1] + 50, 3 * view.n_pixels)))
        part = {"flux": spectra.flux.copy(), "ivar": spectra.ivar.copy(), "mask": spectra.mask.copy(), "stats": spectra.stats.copy()}
        for row in (unobserved or {}).get(m, []):
            part["flux"][row], part["ivar"][row], part["mask"][row] = np.nan, 0.0, True
        batch[m] = {k: torch.as_tensor(v) for k, v in part.items()}
    return batch


def _objective_terms(model, batch):
    from specclip_core.components import create_component

    terms = {}
    for name in ("infonce", "reconstruction_l1", "cross_prediction"):
        terms.update(create_component("objective", {"name": name})(model, batch))
    return terms


def test_a_batch_where_every_row_holds_every_modality_is_the_plain_loss():
    """The objectives' handling of unobserved rows changes nothing when there are none: InfoNCE is
    the plain symmetric InfoNCE of the two shared embeddings, the prediction the plain weighted MSE."""
    from specclip_core.align.objectives import ivar_weights

    model = _model().eval()
    batch = _toy_batch(("toy", "toy_broad"))
    terms = _objective_terms(model, dict(batch))
    with torch.no_grad():
        a, b = (model.embed(m, batch[m]) for m in ("toy", "toy_broad"))
        assert terms["infonce"].item() == info_nce(a.shared, b.shared, model.logit_scale).item()
        predicted = model.predictors[pair_key("toy", "toy_broad")](a.shared)
        plain = (ivar_weights(batch["toy_broad"]) * (predicted - batch["toy_broad"]["flux"]) ** 2).mean()
        assert terms["predict_toy_to_toy_broad"].item() == plain.item()


def test_rows_that_did_not_observe_a_modality_are_left_out_of_its_pairs():
    """Three modalities, rows 0-3 without toy_narrow (NaN flux, every pixel masked): every term is finite
    and so is every gradient; the pairs with toy_narrow are computed on the rows that hold it, the
    toy~toy_broad pair on every row; the unobserved rows' flux does not matter."""
    modalities = ("toy", "toy_broad", "toy_narrow")
    model = _model(modalities=modalities)
    unobserved = {"toy_narrow": [0, 1, 2, 3]}
    batch = _toy_batch(modalities, unobserved=unobserved)
    terms = _objective_terms(model, dict(batch))
    assert set(terms) == {"infonce", "recon_toy", "recon_toy_broad", "recon_toy_narrow"} | {f"predict_{s}_to_{t}" for s in modalities for t in modalities if s != t}
    assert all(torch.isfinite(v) for v in terms.values())
    sum(terms.values()).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    model.eval()
    with torch.no_grad():
        kept = torch.arange(4, 12)
        clean = {m: {k: v[kept] for k, v in batch[m].items()} for m in modalities}
        embedded = {m: model.embed(m, clean[m]).shared for m in modalities}
        everyone = {m: model.embed(m, batch[m]).shared for m in ("toy", "toy_broad")}
        expected = info_nce(everyone["toy"], everyone["toy_broad"], model.logit_scale)
        expected += info_nce(embedded["toy"], embedded["toy_narrow"], model.logit_scale) + info_nce(embedded["toy_broad"], embedded["toy_narrow"], model.logit_scale)
        again = _toy_batch(modalities, unobserved=unobserved)
        again["toy_narrow"]["flux"][:4] = 123.0
        torch.testing.assert_close(_objective_terms(model, dict(batch))["infonce"], expected)
        torch.testing.assert_close(_objective_terms(model, again)["infonce"], expected)


def test_three_modalities_with_unobserved_rows_give_finite_losses_and_metrics_for_three_pairs(tmp_path):
    """A tiny three-modality run (CLIP-pr: a reconstruction decoder per modality, six cross-modal
    decoders) on a store where a quarter of the stars lack toy_narrow: finite losses, Table 2 metrics
    for all three pairs on the held-out rows that hold both, heads on toy_narrow read only its rows."""
    from specclip_toy import make_paired_store

    modalities = ("toy", "toy_broad", "toy_narrow")
    store = make_paired_store(tmp_path / "three.zarr", modalities, n=240, unobserved={"toy_narrow": np.arange(0, 240, 4)}, simulated=("toy_narrow",))
    data = _align_spec(store, tmp_path / "run", modalities, epochs=2).dump()
    data["stages"]["heads"]["modality"] = "toy_narrow"
    data["stages"]["report"] = {"kind": "report", "needs": ["align"], "table2": {"CLIP-pr": "align"}}
    manifests = run_spec(validate_spec(data), progress=False, log=lambda *_: None)
    summary = manifests["align"]["summary"]
    losses = np.genfromtxt(tmp_path / "run" / "align" / "training" / "metrics.csv", delimiter=",", names=True)
    assert np.isfinite(losses["train_loss"]).all() and np.isfinite(losses["val_loss"]).all()
    aligned = summary["aligned"]
    test_ids = store.ids[split_rows(store.ids, "test")]
    holding = int(np.isin(test_ids, np.delete(store.ids, np.arange(0, 240, 4))).sum())
    assert aligned["n_by_pair"] == {"toy~toy_broad": len(test_ids), "toy~toy_narrow": holding, "toy_broad~toy_narrow": holding}
    assert holding < len(test_ids)
    assert len(aligned["cosine"]) == 3 and len(aligned["retrieval"]) == 6 and len(aligned["prediction_weighted_mse"]) == 6
    assert all(np.isfinite(v) for v in aligned["cosine"].values())
    assert all(np.isfinite(v) for r in aligned["retrieval"].values() for v in r.values())
    assert all(np.isfinite(v) for v in aligned["prediction_weighted_mse"].values())
    assert summary["simulated_modalities"] == ["toy_narrow"]
    heads = manifests["heads"]["summary"]
    assert sum(heads["n_rows"].values()) == 180 and np.isfinite(heads["test"]["temp"]["robust_sigma"])
    report = (tmp_path / "run" / "report" / "report.md").read_text()
    assert "**toy ~ toy_broad**" in report and "**toy ~ toy_narrow (SIMULATED)**" in report and "**toy_broad ~ toy_narrow (SIMULATED)**" in report
    assert f"({holding} held-out pairs)" in report
