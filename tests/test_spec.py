import json
import subprocess
import sys

import pytest

from specclip_core.errors import SpecError
from specclip_core.spec import json_schema, load_spec, validate_spec

GOOD = {
    "name": "toy-run",
    "seed": 3,
    "data": {"store": "somewhere.zarr"},
    "stages": {
        "pretrain": {
            "kind": "pretrain",
            "modality": "toy",
            "encoder": {"name": "masked_transformer", "depth": 1, "width": 16, "heads": 2},
            "train": {"epochs": 2, "batch_size": 32},
        }
    },
}


def _problems(data):
    with pytest.raises(SpecError) as caught:
        validate_spec(data, "test.yaml")
    return dict(caught.value.problems), str(caught.value)


def test_good_spec_validates_and_keeps_component_settings():
    spec = validate_spec(GOOD)
    encoder = spec.stages["pretrain"].config.encoder
    assert encoder.name == "masked_transformer" and encoder.config.depth == 1 and encoder.config.heads == 2


def test_wrong_type_in_component_settings_names_the_full_path():
    data = json.loads(json.dumps(GOOD))
    data["stages"]["pretrain"]["encoder"]["depth"] = "six"
    problems, text = _problems(data)
    assert "stages.pretrain.encoder.depth" in problems
    assert "integer" in problems["stages.pretrain.encoder.depth"] and "'six'" in problems["stages.pretrain.encoder.depth"]
    assert text.startswith("test.yaml: invalid run spec")


def test_unknown_keys_are_errors_at_every_level():
    data = json.loads(json.dumps(GOOD))
    data["colour"] = "blue"
    data["stages"]["pretrain"]["train"]["epoch"] = 3
    data["stages"]["pretrain"]["encoder"]["dept"] = 3
    problems, _ = _problems(data)
    assert {"colour", "stages.pretrain.train.epoch", "stages.pretrain.encoder.dept"} <= set(problems)


def test_unknown_component_and_stage_kind_list_known_names():
    data = json.loads(json.dumps(GOOD))
    data["stages"]["pretrain"]["encoder"]["name"] = "resnet"
    problems, _ = _problems(data)
    assert "masked_transformer" in problems["stages.pretrain.encoder.name"]
    data = json.loads(json.dumps(GOOD))
    data["stages"]["pretrain"]["kind"] = "pretrian"
    problems, _ = _problems(data)
    assert "pretrain" in problems["stages.pretrain.kind"]


def test_out_of_range_and_bad_needs():
    data = json.loads(json.dumps(GOOD))
    data["stages"]["pretrain"]["train"]["lr"] = -1
    problems, _ = _problems(data)
    assert "greater than 0" in problems["stages.pretrain.train.lr"]
    data = json.loads(json.dumps(GOOD))
    data["stages"]["later"] = {"kind": "pretrain", "modality": "toy", "needs": ["nonexistent"]}
    problems, _ = _problems(data)
    assert "nonexistent" in problems["stages.later.needs"]


def test_yaml_and_toml_files_load_the_same(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "somewhere.zarr").mkdir()
    yaml_path = tmp_path / "run.yaml"
    yaml_path.write_text(
        "name: toy-run\nseed: 3\ndata: {store: somewhere.zarr}\nstages:\n  pretrain:\n    kind: pretrain\n    modality: toy\n"
        "    encoder: {name: masked_transformer, depth: 1, width: 16, heads: 2}\n    train: {epochs: 2, batch_size: 32}\n"
    )
    toml_path = tmp_path / "run.toml"
    toml_path.write_text(
        'name = "toy-run"\nseed = 3\n[data]\nstore = "somewhere.zarr"\n[stages.pretrain]\nkind = "pretrain"\nmodality = "toy"\n'
        '[stages.pretrain.encoder]\nname = "masked_transformer"\ndepth = 1\nwidth = 16\nheads = 2\n'
        "[stages.pretrain.train]\nepochs = 2\nbatch_size = 32\n"
    )
    assert load_spec(yaml_path).dump() == load_spec(toml_path).dump()


def test_validate_command_reports_field_path_and_fails(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nstages:\n  p:\n    kind: pretrain\n    modality: toy\n    data: {store: a}\n    train: {batch_size: many}\n")
    done = subprocess.run([sys.executable, "-m", "specclip_core.cli", "validate", str(path)], capture_output=True, text=True)
    assert done.returncode == 1
    assert "stages.p.train.batch_size" in done.stderr and "integer" in done.stderr


def test_schema_spells_out_registered_components():
    schema = json_schema()
    encoders = {v["properties"]["name"]["const"] for v in schema["$defs"]["EncoderSpec"]["oneOf"]}
    assert {"masked_transformer", "mlp_autoencoder"} <= encoders
    stages = {v["properties"]["kind"]["const"] for v in schema["$defs"]["StageSpec"]["oneOf"]}
    assert "pretrain" in stages


def test_unknown_modality_is_caught_at_validation():
    data = json.loads(json.dumps(GOOD))
    data["stages"]["pretrain"]["modality"] = "toyy"
    problems, _ = _problems(data)
    assert "unknown modality 'toyy'" in problems["stages.pretrain.modality"] and "toy_broad" in problems["stages.pretrain.modality"]


def test_extends_lays_a_spec_over_another(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "somewhere.zarr").mkdir()
    (tmp_path / "base.yaml").write_text(json.dumps(GOOD))
    (tmp_path / "variant.yaml").write_text(
        "extends: base.yaml\nname: variant\nstages:\n  pretrain:\n    encoder: {depth: 2}\n    train: {batch_size: null}\n"
    )
    loaded = load_spec(tmp_path / "variant.yaml")
    spec = loaded.dump()
    assert spec["name"] == "variant" and spec["seed"] == 3
    pretrain = spec["stages"]["pretrain"]
    assert pretrain["encoder"]["depth"] == 2 and pretrain["encoder"]["width"] == 16
    assert pretrain["train"] == {"epochs": 2}
    assert loaded.stages["pretrain"].config.train.batch_size == 64, "null restores the default"


def test_extends_errors_name_the_file(tmp_path):
    (tmp_path / "a.yaml").write_text("extends: b.yaml\nname: a\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\nname: b\n")
    with pytest.raises(SpecError, match="extends itself"):
        load_spec(tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text("extends: nowhere\nname: c\n")
    with pytest.raises(SpecError, match="c.yaml") as caught:
        load_spec(tmp_path / "c.yaml")
    assert "extends" in dict(caught.value.problems)


def test_a_child_spec_can_add_a_stage_its_parents_stages_use(tmp_path, monkeypatch):
    """extends orders stages by their needs: the parent's pretrain reads a store the child's ingest writes."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "spectra").mkdir()
    base = json.loads(json.dumps(GOOD))
    base["data"] = {"stage": "ingest"}
    (tmp_path / "base.yaml").write_text(json.dumps(base))
    (tmp_path / "child.yaml").write_text(
        "extends: base.yaml\nname: child\nstages:\n  ingest: {kind: ingest, modality: toy, paths: [spectra]}\n"
    )
    spec = load_spec(tmp_path / "child.yaml")
    assert list(spec.stages) == ["ingest", "pretrain"]
    assert spec.stages["pretrain"].needs == ["ingest"]


def test_stages_in_a_circle_and_a_data_stage_that_does_not_exist_are_named():
    data = json.loads(json.dumps(GOOD))
    data["stages"]["second"] = {"kind": "pretrain", "modality": "toy", "needs": ["pretrain"]}
    data["stages"]["pretrain"]["needs"] = ["second"]
    problems, _ = _problems(data)
    assert "in a circle" in problems["stages"] and "pretrain" in problems["stages"]
    data = json.loads(json.dumps(GOOD))
    data["data"] = {"stage": "ingets"}
    problems, _ = _problems(data)
    assert "'ingets' is not a stage of this spec" in problems["data.stage"]


SETTINGS_SPEC = """name: local
settings:
  folder: {description: "a folder of toy spectra"}
  epochs: {value: 2}
stages:
  ingest: {kind: ingest, modality: toy, paths: ["${folder}/spectra"], labels: "${folder}/labels.csv"}
  pretrain: {kind: pretrain, modality: toy, data: {stage: ingest}, train: {epochs: "${epochs}"}}
"""


def test_settings_fill_placeholders_and_keep_their_type(tmp_path):
    path = tmp_path / "local.yaml"
    path.write_text(SETTINGS_SPEC)
    folder = tmp_path / "toy"
    (folder / "spectra").mkdir(parents=True)
    (folder / "labels.csv").write_text("id,temp\n")
    spec = load_spec(path, {"settings.folder": str(folder)})
    assert spec.stages["ingest"].config.paths == [f"{folder}/spectra"]
    assert spec.stages["ingest"].config.labels == f"{folder}/labels.csv"
    assert spec.stages["pretrain"].config.train.epochs == 2
    assert spec.dump()["settings"]["folder"] == {"description": "a folder of toy spectra", "value": str(folder)}
    overridden = load_spec(path, {"settings.folder": str(folder), "settings.epochs": 5})
    assert overridden.stages["pretrain"].config.train.epochs == 5, "--set settings.NAME=VALUE replaces a default value"


def test_a_missing_setting_is_named_once_with_where_it_is_used(tmp_path):
    path = tmp_path / "local.yaml"
    path.write_text(SETTINGS_SPEC)
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    (problem,) = caught.value.problems
    assert problem[0] == "settings.folder"
    assert "a folder of toy spectra" in problem[1] and "--set settings.folder=VALUE" in problem[1]
    assert "stages.ingest.paths.0" in problem[1] and "stages.ingest.labels" in problem[1]
    path.write_text(SETTINGS_SPEC.replace("${epochs}", "${epochz}"))
    with pytest.raises(SpecError, match="epochz.*names no setting"):
        load_spec(path, {"settings.folder": "/data"})


def test_validate_command_names_the_missing_setting(tmp_path):
    path = tmp_path / "local.yaml"
    path.write_text(SETTINGS_SPEC)
    done = subprocess.run([sys.executable, "-m", "specclip_core.cli", "validate", str(path)], capture_output=True, text=True)
    assert done.returncode == 1 and "settings.folder: not set" in done.stderr


MANY_ERRORS = """name: many
settings:
  folder: {description: "a folder of toy spectra"}
data: {store: STORE}
stages:
  ingest: {kind: ingest, modality: toy, paths: ["${folder}/spectra"], labels: LABELS, id_column: id}
  pretrain: {kind: pretrain, modality: toy, train: {epochs: many}}
  heads: {kind: heads, needs: [pretrain, pretrian], modality: toy, labels: [tempp], select: {kindd: {min: 0}}}
  heads_ingested: {kind: heads, modality: toy, input: spectra, data: {stage: ingest}, labels: [temperature]}
  neighbours: {kind: neighbours, modality: toy, group: kind, inputs: [spectra]}
"""


def test_validate_reports_every_problem_of_a_spec_at_once(toy_store, tmp_path):
    labels = tmp_path / "labels.csv"
    labels.write_text("# toy labels\nid,temp\nstar0,0.5\n")
    path = tmp_path / "many.yaml"
    path.write_text(MANY_ERRORS.replace("STORE", str(toy_store.path)).replace("LABELS", str(labels)))
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    problems = dict(caught.value.problems)
    assert set(problems) == {
        "settings.folder",
        "stages.pretrain.train.epochs",
        "stages.heads.needs",
        "stages.heads.labels",
        "stages.heads.select",
        "stages.heads_ingested.labels",
    }, caught.value
    assert "not set" in problems["settings.folder"] and "'many'" in problems["stages.pretrain.train.epochs"]
    assert "'pretrian' is not a stage" in problems["stages.heads.needs"]
    assert "'tempp' is not a label column of store" in problems["stages.heads.labels"] and "did you mean 'temp'?" in problems["stages.heads.labels"]
    assert "'kindd'" in problems["stages.heads.select"]
    assert "'temperature' is not a label column of the store stage 'ingest' writes" in problems["stages.heads_ingested.labels"]
    done = subprocess.run([sys.executable, "-m", "specclip_core.cli", "validate", str(path)], capture_output=True, text=True)
    assert done.returncode == 1 and "(6 problem(s))" in done.stderr


def test_labels_are_not_checked_where_the_data_is_not_known_yet():
    data = json.loads(json.dumps(GOOD))
    data["stages"]["heads"] = {"kind": "heads", "modality": "toy", "input": "spectra", "labels": ["anything"]}
    assert validate_spec(data).stages["heads"].config.labels == ["anything"], "no store at 'somewhere.zarr': nothing to check against"
