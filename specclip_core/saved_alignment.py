"""A finished align stage of a run, loaded for use after training (translate, anomalies): its model,
the store it was trained on and which of that store's modalities were simulated."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from specclip_core.align.embedder import MODEL_DIR
from specclip_core.align.model import AlignmentModel, pair_key
from specclip_core.data.store import SpectralStore
from specclip_core.errors import SpecCLIPError
from specclip_core.rundir import MANIFEST, SPEC, RunDir
from specclip_core.train.checkpoint import read_description


def align_stages(run: RunDir) -> list[str]:
    """Finished align stages of the run, in the order of its spec."""
    order = run.stage_order()
    found = [
        p.parent.name
        for p in run.path.glob(f"*/{MANIFEST}")
        if json.loads(p.read_text()).get("kind") == "align" and (p.parent / MODEL_DIR / "model.json").exists()
    ]
    return sorted(found, key=lambda stage: (order.index(stage) if stage in order else len(order), stage))


def _has(model_json: dict[str, Any], source: str | None, target: str | None, reconstruction: bool) -> bool:
    modalities = model_json["modalities"]
    if source is not None and source not in modalities:
        return False
    if target is not None and (target not in modalities or model_json["prediction"] is None or target == source):
        return False
    return not (reconstruction and model_json["reconstruction"] is None)


@dataclass
class SavedAlignment:
    """An align stage's trained model with its run and the names of its training data's simulated modalities."""

    run: RunDir
    stage: str
    model: AlignmentModel
    simulated: list[str]

    @property
    def path(self) -> Path:
        return self.run.stage(self.stage)

    def training_store(self) -> SpectralStore:
        """The store the stage trained on (as its run's spec names it; a dataset is fetched if missing)."""
        from specclip_core.runner import open_data
        from specclip_core.spec import load_spec

        data = load_spec(self.run.path / SPEC).data_for(self.stage)
        if data is None:
            raise SpecCLIPError(f"{self.run.path / SPEC}: stage {self.stage!r} names no data")
        return open_data(data, self.run.path, progress=False)

    def predictor(self, source: str, target: str):
        return self.model.predictors[pair_key(source, target)]

    def trained_on(self) -> str:
        """``xp real; spec SIMULATED``: what each modality's training spectra were."""
        return "; ".join(f"{m} {'SIMULATED' if m in self.simulated else 'real'}" for m in self.model.modalities)

    def metrics(self) -> dict[str, Any]:
        path = self.path / "metrics.json"
        return json.loads(path.read_text()) if path.exists() else {}


def load_alignment(
    run_dir: str | Path, stage: str | None = None, source: str | None = None, target: str | None = None, reconstruction: bool = False
) -> SavedAlignment:
    """The align stage ``stage`` of the run (default: the last finished one that has what is asked:
    ``source``'s branch, a ``source -> target`` cross-modal decoder, in-modal ``reconstruction`` decoders)."""
    run = RunDir(run_dir)
    if not (run.path / SPEC).exists():
        raise SpecCLIPError(f"{run.path}: not a run directory (no {SPEC}); give the directory 'specclip run' wrote")
    stages = align_stages(run)
    wanted = " and ".join(
        [f"a {source} branch"] * (source is not None and target is None)
        + [f"a {source} -> {target} cross-modal decoder ('prediction' in the align stage)"] * (target is not None)
        + ["in-modal decoders ('reconstruction' in the align stage)"] * reconstruction
    )
    if stage is not None and stage not in stages:
        raise SpecCLIPError(f"{run.path}: no finished align stage {stage!r}; finished align stages: {stages or 'none'}")
    described = {name: read_description(run.stage(name) / MODEL_DIR, "model") for name in ([stage] if stage else stages)}
    usable = [name for name, model_json in described.items() if _has(model_json, source, target, reconstruction)]
    if not usable:
        where = f"stage {stage!r}" if stage else f"no finished align stage (of {stages or 'none'})"
        raise SpecCLIPError(f"{run.path}: {where} has {wanted or 'a model'}")
    chosen = usable[-1]
    alignment = SavedAlignment(run, chosen, AlignmentModel.load(run.stage(chosen) / MODEL_DIR).eval(), [])
    alignment.simulated = alignment.training_store().simulated_modalities
    return alignment
