"""The ``heads`` stage (train label heads and score them on the test split) and the ``evaluate`` stage
(compare several heads stages in one table with one-to-one plots)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from specclip_core.components import get_modality, get_registry
from specclip_core.data.splits import split_labels
from specclip_core.data.store import SpectralStore
from specclip_core.errors import SpecCLIPError
from specclip_core.heads.inputs import encoder_dir, head_inputs
from specclip_core.heads.metrics import regression_metrics
from specclip_core.interfaces import LabelledInputs
from specclip_core.nn.embedders import load_embedder
from specclip_core.report.plots import plot_one_to_one
from specclip_core.report.tables import metrics_table
from specclip_core.runs.runner import StageContext
from specclip_core.spec import HeadSpec, ModalityName, SpecModel, TrainSpec
from specclip_core.util import atomic_write_text

PREDICTIONS = "test_predictions.csv"


class Range(SpecModel):
    min: float | None = None
    max: float | None = None


def _head_train_spec() -> TrainSpec:
    return TrainSpec(epochs=100, batch_size=256, lr=1e-3, weight_decay=0.0, patience=10, warmup_fraction=0.02)


class HeadsConfig(SpecModel):
    """Train one head per label (or jointly) on embeddings of a needed stage's encoder, or on the spectra."""

    requires_data: ClassVar[bool] = True
    modality: ModalityName
    input: Literal["embedding", "spectra"] = "embedding"
    labels: list[str] = Field(min_length=1)
    head: HeadSpec = Field(default_factory=lambda: HeadSpec(name="mlp"))
    select: dict[str, Range] = Field(default_factory=dict, description="keep rows whose labels fall in these ranges (train and test)")
    train: TrainSpec = Field(default_factory=_head_train_spec)
    units: dict[str, str] = Field(default_factory=dict, description="label -> unit, for plot axes")


def selected_rows(store: SpectralStore, labels: list[str], select: dict[str, Range]) -> np.ndarray:
    """Rows with at least one of ``labels`` finite and every ``select`` range satisfied."""
    table = store.labels(sorted(set(labels) | set(select)))
    keep = np.zeros(len(store), dtype=bool)
    for label in labels:
        keep |= np.isfinite(table[label])
    for column, bounds in select.items():
        values = table[column]
        if bounds.min is not None:
            keep &= values >= bounds.min
        if bounds.max is not None:
            keep &= values <= bounds.max
    return np.flatnonzero(keep)


def find_encoder(context: StageContext, modality: str) -> Path:
    for need in context.stage.needs:
        candidate = encoder_dir(context.upstream(need), modality)
        if (candidate / "encoder.json").exists():
            return candidate
    raise SpecCLIPError(f"stage {context.name!r}: none of its needs {context.stage.needs} produced an encoder for {modality!r}")


def write_predictions(path: Path, ids: np.ndarray, truth: dict[str, np.ndarray], predicted: dict[str, np.ndarray]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        labels = list(predicted)
        writer.writerow(["id"] + [c for label in labels for c in (label, f"{label}_pred")])
        for row, sid in enumerate(ids):
            writer.writerow([sid] + [f"{v:.6g}" for label in labels for v in (truth[label][row], predicted[label][row])])


def read_predictions(path: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    with open(path) as handle:
        rows = list(csv.DictReader(handle))
    labels = [c[: -len("_pred")] for c in (rows[0] if rows else {}) if c.endswith("_pred")]
    truth = {label: np.array([float(r[label]) for r in rows]) for label in labels}
    predicted = {label: np.array([float(r[f"{label}_pred"]) for r in rows]) for label in labels}
    return truth, predicted


def _labelled(inputs: np.ndarray, store: SpectralStore, rows: np.ndarray, labels: list[str]) -> LabelledInputs:
    return LabelledInputs(inputs, store.labels(labels, rows), store.ids[rows])


def run_heads(context: StageContext) -> dict[str, Any]:
    """Train heads; write head/, test_predictions.csv, metrics.json, table.md and one-to-one plots."""
    config: HeadsConfig = context.config
    modality = get_modality(config.modality).name
    store = context.store()
    rows = selected_rows(store, config.labels, config.select)
    split = split_labels(store.ids[rows])
    encoder_path = find_encoder(context, modality) if config.input == "embedding" else None
    encoder = load_embedder(encoder_path) if encoder_path else None
    inputs = head_inputs(config.input, store, modality, rows, encoder, progress=context.progress)
    parts = {name: _labelled(inputs[split == name], store, rows[split == name], config.labels) for name in ("train", "val", "test")}
    simulated = modality in store.simulated_modalities
    head = config.head.build()
    fit_summary = head.fit(parts["train"], parts["val"], context.out_dir / "training", train_spec=config.train, seed=context.seed, progress=context.progress, resume=context.resume)
    head.save(context.out_dir / "head")
    atomic_write_text(
        context.out_dir / "head" / "inputs.json",
        json.dumps(
            {
                "modality": modality,
                "input": config.input,
                "encoder_stage": encoder_path.parent.parent.name if encoder_path else None,
                "head": config.head.name,
                "simulated": simulated,
            }
        ),
    )
    test = parts["test"]
    predicted = head.predict(test.inputs)
    write_predictions(context.out_dir / PREDICTIONS, test.ids, test.labels, predicted)
    metrics = {label: regression_metrics(test.labels[label], predicted[label]) for label in config.labels}
    atomic_write_text(context.out_dir / "metrics.json", json.dumps(metrics, indent=2))
    note = f"{modality} spectra are SIMULATED." if simulated else ""
    atomic_write_text(context.out_dir / "table.md", metrics_table({context.name: metrics}, config.labels, note))
    title = f"{context.name} ({config.input}{', SIMULATED ' + modality if simulated else ''})"
    for label in config.labels:
        plot_one_to_one(test.labels[label], predicted[label], context.out_dir / f"one_to_one_{label}.png", label, config.units.get(label, ""), title)
    n_params = head.n_parameters() if hasattr(head, "n_parameters") else None
    return {"n_rows": {k: len(v) for k, v in parts.items()}, "simulated": simulated, "input_dim": int(inputs.shape[1]), "head_parameters": n_params, "test": metrics, "fit": fit_summary}


class EvaluateConfig(SpecModel):
    """Compare the test-split predictions of heads stages (default: every heads stage this one needs)."""

    heads: list[str] = Field(default_factory=list)
    labels: list[str] = Field(default_factory=list, description="default: every label the heads predict")
    note: str = ""


def evaluate_stages(run_dir: Path, stages: list[str], labels: list[str] | None, out_dir: Path, note: str = "") -> dict[str, Any]:
    """Metrics of several heads stages on their test splits, a markdown table and one-to-one plots."""
    results: dict[str, dict[str, dict[str, float]]] = {}
    order: list[str] = []
    flagged: list[str] = []
    out_dir.mkdir(parents=True, exist_ok=True)
    for stage in stages:
        path = Path(run_dir) / stage / PREDICTIONS
        if not path.exists():
            raise SpecCLIPError(f"{path}: missing; is {stage!r} a finished heads stage?")
        truth, predicted = read_predictions(path)
        results[stage] = {label: regression_metrics(truth[label], predicted[label]) for label in predicted}
        order += [label for label in predicted if label not in order]
        inputs_path = path.parent / "head" / "inputs.json"
        simulated = json.loads(inputs_path.read_text()).get("simulated", False) if inputs_path.exists() else False
        if simulated:
            flagged.append(stage)
        for label in predicted:
            if not labels or label in labels:
                plot_one_to_one(truth[label], predicted[label], out_dir / f"one_to_one_{stage}_{label}.png", label, title=stage + (" (SIMULATED spectra)" if simulated else ""))
    if flagged:
        note = " ".join(filter(None, [note, f"Stages on SIMULATED spectra: {', '.join(flagged)}."]))
    table = metrics_table(results, labels or order, note)
    atomic_write_text(out_dir / "table.md", table)
    atomic_write_text(out_dir / "metrics.json", json.dumps(results, indent=2))
    return {"table": table, "metrics": results}


def run_evaluate(context: StageContext) -> dict[str, Any]:
    config: EvaluateConfig = context.config
    stages = config.heads or [n for n in context.stage.needs if context.spec.stages[n].kind == "heads"]
    for stage in stages:
        context.upstream(stage)
    return evaluate_stages(context.run_dir, stages, config.labels or None, context.out_dir, config.note)["metrics"]


def load_head(directory: Path):
    """A saved head, whichever registered kind it is."""
    described = json.loads((Path(directory) / "head.json").read_text())
    return get_registry().get("head", described["head"]).factory.load(directory)
