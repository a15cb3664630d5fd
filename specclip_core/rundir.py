"""The layout of a run directory, in one place: stages write it, ``predict``, ``evaluate`` and ``report`` read it.

::

    <run>/spec.yaml                         the resolved spec the run was started with
    <run>/manifest.json                     name, and per stage its key, finish time and summary
    <run>/<stage>.partial/                  a stage at work (kept across a crash for --resume)
    <run>/<stage>/manifest.json             the stage's key, settings, inputs and outputs (sha256), summary
    <run>/<stage>/store.zarr                a store the stage wrote (ingest, join, simulate)
    <run>/<stage>/encoders/<modality>/      an embedder the stage trained (encoder.json: its type)
    <run>/<stage>/head/                     a trained head (head.json: see interfaces.HeadLayout)
    <run>/<stage>/head/adapter.safetensors  a finetune stage's trained tensors only (head.json names its base stages)
    <run>/<stage>/head/inputs.json          what the head reads: modality, input kind, encoder stage, simulated;
                                            per label its unit, display name, robust sigma on the test split
    <run>/<stage>/test_predictions.csv      id, and per label its truth and prediction on the test split
    <run>/<stage>/report.md                 a report (Table 1, Table 2 and plots)
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from specclip_core.errors import SpecCLIPError
from specclip_core.interfaces import UNCERTAINTY_SUFFIXES
from specclip_core.util import atomic_write_text

SPEC = "spec.yaml"
MANIFEST = "manifest.json"
THREADS = "threads.json"  # the CPU threads the run started with (a resumed run uses them again)
STORE = "store.zarr"
ENCODERS = "encoders"
HEAD = "head"
HEAD_INPUTS = "inputs.json"
PREDICTIONS = "test_predictions.csv"
REPORT = "report.md"
PARTIAL_SUFFIX = ".partial"
HEAD_KINDS = ("heads", "finetune")  # stage kinds that leave a head/ directory predict can apply


def encoder_dir(stage_dir: Path, modality: str) -> Path:
    """Where a stage keeps the embedder it trained for ``modality``."""
    return Path(stage_dir) / ENCODERS / modality


def has_encoder(stage_dir: Path, modality: str) -> bool:
    return (encoder_dir(stage_dir, modality) / "encoder.json").exists()


@dataclass(frozen=True)
class HeadInputs:
    """What a trained head reads and what its outputs are (``head/inputs.json``): whether the spectra
    it was trained on were simulated, and per label its unit, display name and robust sigma on the
    test split (labels not listed have none); which pixel errors follow the embedding or spectra
    (``errors_input``, :data:`specclip_core.heads.inputs.PIXEL_ERRORS`) and which other modalities'
    spectra inputs follow those (``with_modalities``). Files written before the one ``errors_input``
    setting (``errors_input: true``, ``input: spectra_ivar``) read as what they meant."""

    modality: str
    input: str
    encoder_stage: str | None
    head: str
    simulated: bool = False
    units: dict[str, str] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    test_sigma: dict[str, float] = field(default_factory=dict)
    errors_input: str = "none"
    with_modalities: list[str] = field(default_factory=list)

    def write(self, head_dir: Path) -> None:
        atomic_write_text(Path(head_dir) / HEAD_INPUTS, json.dumps(self.__dict__))

    @classmethod
    def read(cls, head_dir: Path) -> HeadInputs:
        path = Path(head_dir) / HEAD_INPUTS
        if not path.exists():
            raise SpecCLIPError(f"{path}: missing; {head_dir} was not written by a heads stage")
        fields = json.loads(path.read_text())
        if isinstance(fields.get("errors_input"), bool):
            fields["errors_input"] = "sigma" if fields["errors_input"] else "none"
        if fields["input"] == "spectra_ivar":
            fields.update(input="spectra", errors_input="inverse_sigma")
        return cls(**fields)


def write_predictions(path: Path, ids: np.ndarray, truth: dict[str, np.ndarray], predicted: dict[str, np.ndarray]) -> None:
    """Test-split predictions: ``id``, then ``<label>`` and ``<label>_pred`` per label, followed by
    ``<label>_pred_err``/``_lo``/``_hi`` where the head gave them."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        labels = [label for label in truth if label in predicted]
        extra = [(label, suffix) for label in labels for suffix in UNCERTAINTY_SUFFIXES if f"{label}{suffix}" in predicted]
        writer.writerow(["id"] + [c for label in labels for c in (label, f"{label}_pred")] + [f"{label}_pred{suffix}" for label, suffix in extra])
        for row, sid in enumerate(ids):
            values = [v for label in labels for v in (truth[label][row], predicted[label][row])] + [predicted[f"{label}{suffix}"][row] for label, suffix in extra]
            writer.writerow([sid] + [f"{v:.6g}" for v in values])


def read_predictions(path: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(truth, predicted), label -> values, from a file :func:`write_predictions` wrote."""
    with open(path) as handle:
        rows = list(csv.DictReader(handle))
    labels = [c[: -len("_pred")] for c in (rows[0] if rows else {}) if c.endswith("_pred")]
    truth = {label: np.array([float(r[label]) for r in rows]) for label in labels}
    predicted = {label: np.array([float(r[f"{label}_pred"]) for r in rows]) for label in labels}
    return truth, predicted


class RunDir:
    """A run directory: where each stage's outputs are, and what finished stages hold."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __fspath__(self) -> str:
        return str(self.path)

    def stage(self, name: str) -> Path:
        return self.path / name

    def partial(self, name: str) -> Path:
        return self.path / f"{name}{PARTIAL_SUFFIX}"

    def store(self, stage: str) -> Path:
        return self.stage(stage) / STORE

    def head(self, stage: str) -> Path:
        return self.stage(stage) / HEAD

    def predictions(self, stage: str) -> Path:
        return self.stage(stage) / PREDICTIONS

    def report(self, stage: str) -> Path:
        return self.stage(stage) / REPORT

    def is_finished(self, stage: str) -> bool:
        return (self.stage(stage) / MANIFEST).exists()

    def trained_on(self, stage: str) -> str:
        """What a finished heads stage was trained on: real or SIMULATED spectra, and for a finetune
        stage what it adapted on and what its base was trained on (the catalogue's ``TRAINED``)."""
        def kind(simulated: bool) -> str:
            return "SIMULATED" if simulated else "real"

        info, manifest = HeadInputs.read(self.head(stage)), self.manifest(stage)
        if manifest.get("kind") != "finetune":
            return f"{stage} on {kind(info.simulated)} {info.modality} spectra"
        summary = manifest["summary"]
        base = HeadInputs.read(self.head(summary["base"]))
        return f"{stage} adapted on {kind(summary.get('simulated', False))} {info.modality} spectra from {summary['base']}, trained on {kind(base.simulated)} {base.modality} spectra"

    def manifest(self, stage: str) -> dict[str, Any]:
        """The manifest of a finished stage (an error naming the file when the stage has not finished)."""
        path = self.stage(stage) / MANIFEST
        if not path.exists():
            raise SpecCLIPError(f"{path}: missing; stage {stage!r} has not finished")
        return json.loads(path.read_text())

    def spec_data(self) -> dict[str, Any]:
        path = self.path / SPEC
        return yaml.safe_load(path.read_text()) if path.exists() else {}

    def name(self) -> str:
        return self.spec_data().get("name", self.path.name)

    def stage_order(self) -> list[str]:
        return list(self.spec_data().get("stages", {}))

    def encoder_stages(self, modality: str) -> list[str]:
        """Finished stages that saved an embedder for ``modality``, in the order of the run's spec."""
        order = self.stage_order()
        found = [p.parent.name for p in self.path.glob(f"*/{MANIFEST}") if has_encoder(p.parent, modality)]
        return sorted(found, key=lambda stage: (order.index(stage) if stage in order else len(order), stage))

    def finished_heads(self) -> dict[str, HeadInputs]:
        """Finished heads (and finetune) stages, in the order of the run's spec: name -> what each head reads."""
        found = {}
        for manifest_path in sorted(self.path.glob(f"*/{MANIFEST}")):
            stage = manifest_path.parent.name
            if json.loads(manifest_path.read_text()).get("kind") in HEAD_KINDS and (self.head(stage) / HEAD_INPUTS).exists():
                found[stage] = HeadInputs.read(self.head(stage))
        order = self.stage_order()
        return dict(sorted(found.items(), key=lambda item: order.index(item[0]) if item[0] in order else len(order)))
