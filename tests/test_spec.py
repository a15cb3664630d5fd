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


def test_yaml_and_toml_files_load_the_same(tmp_path):
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


def test_extends_lays_a_spec_over_another(tmp_path):
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
