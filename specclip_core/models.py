"""Named pretrained models: a finished run's encoder and heads, exported with a model card, that a
plugin ships inside its wheel and registers by path through ``specclip_register_models``.

A model directory is laid out as a run directory holding only what ``specclip predict`` reads, so
the same code predicts from either::

    <model>/model.json                      the card (:class:`ModelCard`): name, modality, labels and units,
                                            training data, the spec and seed that reproduce it, measured
                                            accuracy and coverage on the test split, versions, and the
                                            sha256 of every other file
    <model>/spec.yaml                       the resolved spec of the run it was exported from
    <model>/<stage>/manifest.json           each exported stage's manifest, as the run wrote it
    <model>/<stage>/head/                   a heads stage's trained head (head.json, weights, inputs.json)
    <model>/<stage>/encoders/<modality>/    an encoder stage's embedder

A finetune stage's model is its adapters on a base (:mod:`specclip_core.heads.adapted`): the base
heads stage's head (without its out-of-distribution reference, which the finetune stage has its own
of) and the base's encoder come with it, with their manifests, whose keys the adapters were trained on.

Every file is checked against the card's sha256 (:mod:`specclip_core.model_card`) before anything
is loaded: a modified or truncated file is an error naming it.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from specclip_core.components import get_registry, plugin_versions
from specclip_core.errors import SpecCLIPError
from specclip_core.heads.saved import head_labels
from specclip_core.interfaces import HeadLayout
from specclip_core.model_card import CARD, LabelScore, ModelCard, RegisteredModel
from specclip_core.rundir import HEAD, MANIFEST, SPEC, RunDir, encoder_dir
from specclip_core.util import atomic_write_text, sha256_file


def get_model(name: str) -> RegisteredModel:
    """A registered model by name (an error listing the known names)."""
    return get_registry().get("model", name).build()


def list_models() -> list[RegisteredModel]:
    return [get_model(name) for name in get_registry().names("model")]


def export_model(run_dir: str | Path, output: str | Path, name: str, heads: list[str] | None = None, description: str = "", spec: str | None = None) -> ModelCard:
    """Copy a finished run's heads stages (``heads``, or the default ``specclip predict`` applies) and
    the encoders they read into ``output`` with a card; an error if ``output`` exists and is not empty."""
    from specclip_core.predict import choose_heads

    run, output = RunDir(run_dir), Path(output)
    if output.exists() and any(output.iterdir()):
        raise SpecCLIPError(f"{output}: exists and is not empty; export into a new directory")
    chosen = choose_heads(run.path, heads)
    modality = next(iter(chosen.values())).modality
    staging = output.with_name(f".{output.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    shutil.copy2(run.path / SPEC, staging / SPEC)
    manifests = {stage: run.manifest(stage) for stage in chosen}
    for stage in chosen:
        _copy_stage_part(run, stage, HEAD, staging)
    encoders = {info.encoder_stage for info in chosen.values() if info.encoder_stage}
    for stage in chosen:
        if manifests[stage].get("kind") == "finetune":
            reference = HeadLayout.read(run.head(stage)).settings["reference"]
            if not (staging / reference["base"]).exists():
                _copy_stage_part(run, reference["base"], HEAD, staging, ignore=shutil.ignore_patterns("ood.*"))
            encoders |= {reference["encoder_stage"]} - {None}
    for stage in sorted(encoders):
        _copy_stage_part(run, stage, encoder_dir(Path(), modality).as_posix(), staging)
    card = ModelCard(
        name=name,
        modality=modality,
        labels=[label for stage in chosen for label in head_labels(run.head(stage))],
        description=description,
        training_data=_training_data(run, chosen, manifests),
        simulated=any(info.simulated for info in chosen.values()),
        adapted_on=_adapted_on(manifests),
        spec=spec or run.name(),
        seed=int(next(iter(manifests.values()))["seed"]),
        heads=list(chosen),
        scores=_scores(run, chosen, manifests),
        files={p.relative_to(staging).as_posix(): sha256_file(p) for p in sorted(staging.rglob("*")) if p.is_file()},
        versions=plugin_versions(),
        exported=time.strftime("%Y-%m-%dT%H:%M:%S"),
    )
    atomic_write_text(staging / CARD, card.model_dump_json(indent=2))
    if output.exists():
        output.rmdir()
    output.parent.mkdir(parents=True, exist_ok=True)
    staging.rename(output)
    return card


def _copy_stage_part(run: RunDir, stage: str, part: str, staging: Path, ignore=None) -> None:
    source = run.stage(stage) / part
    if not source.is_dir():
        raise SpecCLIPError(f"{source}: missing; stage {stage!r} of {run.path} has not finished")
    shutil.copytree(source, staging / stage / part, ignore=ignore)
    shutil.copy2(run.stage(stage) / MANIFEST, staging / stage / MANIFEST)


def _data_source(run: RunDir, stage: str) -> str:
    """Where a stage's data came from: its own ``data`` or the run's (an ingest stage's input folders)."""
    spec = run.spec_data()
    data = spec.get("stages", {}).get(stage, {}).get("data") or spec.get("data", {})
    source = data.get("dataset") or data.get("store") or "the run's data"
    if data.get("stage") and run.is_finished(data["stage"]):
        paths = run.manifest(data["stage"])["settings"].get("paths") or []
        source = ", ".join("/".join(Path(p).parts[-2:]) for p in paths) or f"stage {data['stage']}"
    return source


def _adapted_on(manifests: dict[str, dict[str, Any]]) -> str | None:
    """What the finetune stages among the chosen heads adapted on: SIMULATED if any did, else real;
    None without a finetune stage."""
    adapted = [manifest["summary"].get("simulated", False) for manifest in manifests.values() if manifest.get("kind") == "finetune"]
    return None if not adapted else "SIMULATED" if any(adapted) else "real"


def _training_data(run: RunDir, chosen: dict[str, Any], manifests: dict[str, dict[str, Any]]) -> str:
    parts = []
    for stage in chosen:
        rows = manifests[stage].get("summary", {}).get("n_rows", {})
        counts = ", ".join(f"{n} {split.replace('_', ' ')}" for split, n in rows.items())
        parts.append(f"{run.trained_on(stage)}; data {_data_source(run, stage)} ({counts})")
    return "; ".join(parts)


def _scores(run: RunDir, chosen: dict[str, Any], manifests: dict[str, dict[str, Any]]) -> dict[str, LabelScore]:
    scores = {}
    for stage, info in chosen.items():
        path = run.stage(stage) / "metrics.json"
        metrics = json.loads(path.read_text()) if path.exists() else {}
        if manifests[stage].get("kind") == "finetune":
            metrics = metrics.get("test", {})  # beside the zero-shot figures, fit and timings
        for label, figures in metrics.items():
            known = {key: _finite(value) for key, value in figures.items() if key in LabelScore.model_fields}
            scores[label] = LabelScore(unit=info.units.get(label, ""), **known)
    return scores


def _finite(value: Any) -> Any:
    return None if isinstance(value, float) and value != value else value
