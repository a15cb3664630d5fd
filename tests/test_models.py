"""Named pretrained models: export a finished run with its card, register it through a plugin's
``specclip_register_models`` hook, list and show it, predict with ``--model``, and refuse a model
whose files no longer match their sha256, before anything is loaded."""

from __future__ import annotations

import csv
import json
import shutil
import types
from pathlib import Path

import numpy as np
import pytest

from specclip_core import cli
from specclip_core.api import get_plugin_manager, hookimpl, refresh_registry
from specclip_core.errors import SpecCLIPError
from specclip_core.model_card import CARD, read_card, verify_model
from specclip_core.models import export_model, get_model
from specclip_core.predict import predict_catalog
from specclip_core.runner import run_spec
from specclip_core.spec import validate_spec

TRAIN = {"epochs": 2, "batch_size": 32, "device": "cpu", "patience": None}


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    from specclip_toy import make_store

    base = tmp_path_factory.mktemp("model-run")
    store = make_store(base / "toy.zarr", n=200, seed=4)
    spec = {
        "name": "toy-model",
        "seed": 1,
        "run_dir": str(base / "run"),
        "data": {"store": str(store.path)},
        "stages": {
            "pretrain": {"kind": "pretrain", "modality": "toy", "encoder": {"name": "mlp_autoencoder", "hidden": 16, "bottleneck": 8, "blocks": 1}, "train": TRAIN},
            "heads": {"kind": "heads", "needs": ["pretrain"], "modality": "toy", "input": "embedding", "labels": ["temp"], "units": {"temp": "K"}, "head": {"name": "mlp", "hidden": [8]}, "train": TRAIN},
        },
    }
    run_spec(validate_spec(spec), progress=False, log=lambda *_: None)
    return base / "run"


@pytest.fixture(scope="module")
def exported(toy_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("exported") / "toy-small"
    export_model(toy_run, out, "toy-small", description="a toy model for tests")
    return out


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    from specclip_toy import make_raw, write_file

    folder = tmp_path_factory.mktemp("inputs")
    raw = make_raw(5, 77)
    for row in range(5):
        write_file(folder / f"star{row}.toy.csv", raw, row)
    return folder


@pytest.fixture
def shipped(exported):
    """The exported model registered the way a plugin ships one."""
    plugin = types.ModuleType("shipped_models")
    plugin.specclip_register_models = hookimpl(lambda: [str(exported)])
    get_plugin_manager().register(plugin, name="shipped-models")
    refresh_registry()
    yield exported
    get_plugin_manager().unregister(name="shipped-models")
    refresh_registry()


def _rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    lines = path.read_text().splitlines()
    return [line for line in lines if line.startswith("#")], list(csv.DictReader(line for line in lines if not line.startswith("#")))


def test_export_writes_a_card_with_every_file_its_sha256_and_the_test_figures(toy_run, exported):
    card = read_card(exported)
    assert (card.name, card.modality, card.labels, card.heads, card.seed, card.spec) == ("toy-small", "toy", ["temp"], ["heads"], 1, "toy-model")
    files = {p.relative_to(exported).as_posix() for p in exported.rglob("*") if p.is_file()} - {CARD}
    assert set(card.files) == files
    assert {"spec.yaml", "heads/head/head.json", "heads/head/inputs.json", "pretrain/encoders/toy/encoder.json"} <= files
    assert not any("training" in name or name.endswith(".zarr") for name in files), "only what predict reads is exported"
    metrics = json.loads((toy_run / "heads" / "metrics.json").read_text())
    assert card.scores["temp"].robust_sigma == pytest.approx(metrics["temp"]["robust_sigma"]) and card.scores["temp"].unit == "K"
    assert "real toy spectra" in card.training_data and not card.simulated


def test_a_model_directory_predicts_what_its_run_predicts(toy_run, exported, inputs, tmp_path):
    predict_catalog(toy_run, [str(inputs)], tmp_path / "run.csv", progress=False)
    predict_catalog(exported, [str(inputs)], tmp_path / "model.csv", progress=False)
    header, rows = _rows(tmp_path / "model.csv")
    _, expected = _rows(tmp_path / "run.csv")
    assert len(rows) == 5 and [r["temp"] for r in rows] == [r["temp"] for r in expected]
    assert any("MODEL: toy-small" in line for line in header)
    assert any(line.startswith("# MODELSHA: ") and len(line.split()[-1]) == 64 for line in header)



def test_a_model_naming_its_heads_reads_each_input_once_and_sniffs_only_the_first_files(exported, tmp_path, monkeypatch):
    from specclip_core import predict
    from specclip_toy import ToyReader, make_raw, write_file

    raw = make_raw(30, 5)
    files = [str(write_file(tmp_path / f"star{row}.toy.csv", raw, row)) for row in range(30)]
    sniffed = []
    sniff = ToyReader.sniff
    monkeypatch.setattr(ToyReader, "sniff", lambda self, path: sniffed.append(Path(path).name) or sniff(self, path))
    assert predict.input_modalities(files) == {"toy"}
    assert len(sniffed) == predict.SNIFFED_FILES, "one path item per file: the sniff stops after the first files in all"
    monkeypatch.setattr(predict, "input_modalities", lambda paths: pytest.fail("a model's card names its heads: nothing to sniff for"))
    sniffed.clear()
    predict_catalog(exported, files, tmp_path / "cat.csv", progress=False, workers=1)
    assert len(_rows(tmp_path / "cat.csv")[1]) == 30 and sorted(sniffed) == sorted(Path(f).name for f in files), "the stream sniffs each file once"

def test_a_shipped_model_is_listed_shown_and_predicts_by_name(shipped, inputs, tmp_path, capsys):
    assert cli.main(["models", "list"]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("toy-small"))
    assert " toy " in line and "temp" in line and "trained on real spectra; " in line
    assert cli.main(["models", "show", "toy-small"]) == 0
    shown = capsys.readouterr().out
    assert json.loads(shown.split("\n", 1)[1])["files"] == read_card(shipped).files
    out = tmp_path / "cat.fits"
    assert cli.main(["predict", "--model", "toy-small", str(inputs), "-o", str(out), "--quiet"]) == 0
    from astropy.io import fits

    with fits.open(out) as hdus:
        assert hdus[1].header["MODEL"].startswith("toy-small") and len(hdus[1].header["MODELSHA"]) == 64
        assert np.isfinite(hdus[1].data["temp"]).all() and len(hdus[1].data) == 5


def test_an_unknown_model_name_lists_the_known_ones(shipped):
    with pytest.raises(SpecCLIPError, match="toy-small"):
        get_model("toy-big")


def test_a_plugin_shipping_a_damaged_card_loses_that_model_only(shipped, tmp_path):
    damaged = tmp_path / "damaged"
    shutil.copytree(shipped, damaged)
    (damaged / "model.json").write_text((damaged / "model.json").read_text().replace('"name"', '"nmae"'))
    plugin = types.ModuleType("damaged_models")
    plugin.specclip_register_models = hookimpl(lambda: [str(damaged), str(tmp_path / "absent")])
    get_plugin_manager().register(plugin, name="damaged-models")
    refresh_registry()
    try:
        with pytest.warns(UserWarning, match="plugin 'damaged-models': model skipped") as caught:
            assert get_model("toy-small").directory == shipped, "the other plugin's model is still there"
        assert len(caught) == 2 and any("model.json" in str(w.message) for w in caught)
    finally:
        get_plugin_manager().unregister(name="damaged-models")
        refresh_registry()

@pytest.mark.parametrize("damage", ["flip", "truncate", "delete"])
def test_a_modified_truncated_or_missing_file_fails_its_checksum_before_anything_loads(exported, inputs, tmp_path, monkeypatch, damage):
    broken = tmp_path / "broken"
    shutil.copytree(exported, broken)
    weights = next(broken.glob("heads/head/*.safetensors"))
    data = bytearray(weights.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0x01
        weights.write_bytes(bytes(data))
    elif damage == "truncate":
        weights.write_bytes(bytes(data[:-10]))
    else:
        weights.unlink()

    def not_loaded(*_):
        raise AssertionError("a weight file was loaded before the checksums were checked")

    monkeypatch.setattr("specclip_core.predict.load_head", not_loaded)
    monkeypatch.setattr("specclip_core.predict.load_embedder", not_loaded)
    with pytest.raises(SpecCLIPError, match=str(weights).replace(".", r"\.")) as error:
        predict_catalog(broken, [str(inputs)], tmp_path / "cat.csv", progress=False)
    assert ("missing" if damage == "delete" else "sha256") in str(error.value)
    assert not (tmp_path / "cat.csv").exists()
    verify_model(exported)  # the original is untouched


def test_export_refuses_a_directory_that_is_not_empty(toy_run, tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    with pytest.raises(SpecCLIPError, match="not empty"):
        export_model(toy_run, tmp_path / "taken", "x")
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine"


def test_predict_without_a_run_or_model_says_what_it_takes(inputs, capsys):
    assert cli.main(["predict", str(inputs), "-o", "x.csv"]) == 2
    assert "--model NAME" in capsys.readouterr().err
