import json
import os
import stat
import subprocess
import sys

import pytest
import yaml

from specclip_core.errors import SpecCLIPError
from specclip_core.nn.modality_encoder import ModalityEncoder
from specclip_core.runner import run_spec
from specclip_core.spec import validate_spec


def _spec(store, run_dir, epochs=2):
    return validate_spec(
        {
            "name": "toy-pretrain",
            "seed": 1,
            "run_dir": str(run_dir),
            "data": {"store": str(store.path)},
            "stages": {
                "pretrain": {
                    "kind": "pretrain",
                    "modality": "toy",
                    "objectives": [{"name": "masked_modeling", "n_chunks": 2, "chunk_tokens": 3}],
                    "train": {"epochs": epochs, "batch_size": 32, "device": "cpu"},
                }
            },
        }
    )


def test_run_writes_artifacts_and_reuses_finished_stages(toy_store, tmp_path):
    run_dir = tmp_path / "run"
    logs = []
    manifests = run_spec(_spec(toy_store, run_dir), progress=False, log=logs.append)
    stage_dir = run_dir / "pretrain"
    for name in ("manifest.json", "encoders/toy/encoder.safetensors", "encoders/toy/encoder.json", "training/metrics.csv", "loss.png", "summary.json"):
        assert (stage_dir / name).is_file(), name
    manifest = json.loads((stage_dir / "manifest.json").read_text())
    assert manifest["inputs"]["data"]["fingerprint"] == toy_store.fingerprint
    assert len(manifest["outputs"]["encoders/toy/encoder.safetensors"]) == 64
    assert yaml.safe_load((run_dir / "spec.yaml").read_text())["name"] == "toy-pretrain"
    encoder = ModalityEncoder.load(stage_dir / "encoders" / "toy")
    assert encoder.modality == "toy" and manifests["pretrain"]["summary"]["epochs_completed"] == 2

    logs.clear()
    run_spec(_spec(toy_store, run_dir), progress=False, log=logs.append)
    assert any("reused" in line for line in logs)

    logs.clear()
    run_spec(_spec(toy_store, run_dir, epochs=3), progress=False, log=logs.append)
    assert any("running" in line for line in logs), "a changed setting must rerun the stage"

    (stage_dir / "loss.png").write_bytes(b"tampered")
    logs.clear()
    run_spec(_spec(toy_store, run_dir, epochs=3), progress=False, log=logs.append)
    assert any("running" in line for line in logs), "a changed output must rerun the stage"


def test_cli_run_with_overrides(toy_store, tmp_path):
    spec_path = tmp_path / "toy.yaml"
    spec_path.write_text(yaml.safe_dump(_spec(toy_store, tmp_path / "cli-run").dump()))
    done = subprocess.run(
        [sys.executable, "-m", "specclip_core.cli", "run", str(spec_path), "--set", "stages.pretrain.train.epochs=1", "--quiet"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "cli-run" / "pretrain" / "summary.json").read_text())
    assert summary["epochs_completed"] == 1


def test_two_fresh_processes_train_the_same_weights(toy_store, tmp_path):
    spec_path = tmp_path / "toy.yaml"
    spec_path.write_text(yaml.safe_dump(_spec(toy_store, tmp_path / "unused", epochs=1).dump()))
    weights = []
    for name in ("a", "b"):
        done = subprocess.run(
            [sys.executable, "-m", "specclip_core.cli", "run", str(spec_path), "--run-dir", str(tmp_path / name), "--quiet"],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
        files = sorted((tmp_path / name / "pretrain" / "encoders" / "toy").glob("*.safetensors"))
        assert files
        weights.append([f.read_bytes() for f in files])
    assert weights[0] == weights[1], "initialisation or training drew unseeded randomness"


def test_a_changed_plugin_version_reruns_the_stages_that_use_it(toy_store, tmp_path, monkeypatch):
    from specclip_core import plugins
    from specclip_core.runner import stage_versions

    spec = _spec(toy_store, tmp_path / "run", epochs=1)
    versions = stage_versions(spec, "pretrain")
    assert versions["specclip-toy"] == "0.3.2" and "specclip" in versions, "the modality's plugin and the core"
    logs = []
    manifest = run_spec(spec, progress=False, log=logs.append)["pretrain"]
    assert manifest["versions"] == versions
    logs.clear()
    run_spec(spec, progress=False, log=logs.append)
    assert any("reused" in line for line in logs)
    monkeypatch.setitem(plugins._dists, "toy", ("specclip-toy", "0.3.3"))
    logs.clear()
    run_spec(spec, progress=False, log=logs.append)
    assert any("running" in line for line in logs), "a new version of the modality's plugin must not reuse the stage"


def test_outputs_are_readable_by_group_and_world_under_the_usual_umask(toy_store, tmp_path):
    previous = os.umask(0o022)
    try:
        run_spec(_spec(toy_store, tmp_path / "run", epochs=1), progress=False, log=lambda *_: None)
    finally:
        os.umask(previous)
    stage = tmp_path / "run" / "pretrain"
    for path in (stage / "encoders" / "toy" / "encoder.safetensors", stage / "summary.json", stage / "manifest.json", tmp_path / "run" / "spec.yaml"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path
    assert stat.S_IMODE(stage.stat().st_mode) == 0o755


def test_only_runs_a_stage_while_another_stages_data_is_not_there_yet(toy_store, tmp_path):
    spec = _spec(toy_store, tmp_path / "run").model_dump()
    spec["stages"]["later"] = {**spec["stages"]["pretrain"], "data": {"store": str(tmp_path / "not-ingested-yet.zarr")}}
    spec["stages"]["heads"] = {"kind": "heads", "needs": ["later"], "modality": "toy", "input": "embedding", "labels": ["temp"]}
    spec = validate_spec(spec)
    manifests = run_spec(spec, only=["pretrain"], progress=False, log=lambda *_: None)
    assert list(manifests) == ["pretrain"]
    with pytest.raises(SpecCLIPError, match="stage 'later' is needed but not finished"):
        run_spec(spec, only=["heads"], progress=False, log=lambda *_: None)


def test_a_linked_stage_directory_that_no_longer_holds_is_replaced_and_its_target_kept(toy_store, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    run_spec(_spec(toy_store, elsewhere), progress=False, log=lambda *_: None)
    target = elsewhere / "pretrain"
    before = (target / "manifest.json").read_text()
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "pretrain").symlink_to(target)
    logs = []
    run_spec(_spec(toy_store, run_dir), progress=False, log=logs.append)
    assert any("reused" in line for line in logs)  # a link to a result that holds is reused
    logs.clear()
    run_spec(_spec(toy_store, run_dir, epochs=3), progress=False, log=logs.append)
    assert any("running" in line for line in logs)
    assert not (run_dir / "pretrain").is_symlink() and (run_dir / "pretrain" / "manifest.json").is_file()
    assert (target / "manifest.json").read_text() == before  # the linked run's own result is untouched
