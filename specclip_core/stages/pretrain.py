"""The ``pretrain`` stage: self-supervised pretraining of one modality's encoder."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from pydantic import Field

from specclip_core.components import create_component, get_modality
from specclip_core.data.dataset import StoreDataset
from specclip_core.interfaces import Stage
from specclip_core.nn.modality_encoder import ModalityEncoder
from specclip_core.report.plots import plot_training_curves
from specclip_core.rundir import encoder_dir
from specclip_core.runner import StageContext
from specclip_core.spec import EncoderSpec, ModalityName, ObjectiveSpec, SpecModel, TokenizerSpec, TrainSpec
from specclip_core.train.loop import Trainer, fit_summary
from specclip_core.util import atomic_write_text


class PretrainConfig(SpecModel):
    """Self-supervised pretraining of one modality's encoder on the train split; early stopping on val."""

    modality: ModalityName = Field(description="registered modality name")
    tokenizer: TokenizerSpec | None = Field(None, description="default: the modality's")
    encoder: EncoderSpec | None = Field(None, description="default: the modality's")
    objectives: list[ObjectiveSpec] = Field(default_factory=lambda: [], description="default: masked_modeling for multi-token input, else reconstruction")
    train: TrainSpec = Field(default_factory=TrainSpec)


def default_objectives(network: ModalityEncoder) -> list[dict[str, Any]]:
    return [{"name": "masked_modeling"}] if network.tokenizer.n_tokens > 1 else [{"name": "reconstruction"}]


class PretrainStage(Stage):
    """Pretrain a modality encoder; writes encoders/<modality>/ (safetensors + json), metrics.csv and a loss plot."""

    requires_data = True

    def run(self, context: StageContext) -> dict[str, Any]:
        config: PretrainConfig = context.config
        modality = get_modality(config.modality)
        network = ModalityEncoder(
            modality.name,
            config.tokenizer.model_dump() if config.tokenizer else None,
            config.encoder.model_dump() if config.encoder else None,
        )
        objective_specs = [o.model_dump() for o in config.objectives] or default_objectives(network)
        objectives = [create_component("objective", spec) for spec in objective_specs]
        store = context.store()
        seen = store.observed(modality.name)  # rows whose every pixel is masked did not observe the modality
        rows = None if seen.all() else np.flatnonzero(seen)
        train = StoreDataset(store, [modality.name], split="train", rows=rows)
        val = StoreDataset(store, [modality.name], split="val", rows=rows)
        trainer = Trainer(network, objectives, train, val, config.train, context.out_dir / "training", seed=context.seed, progress=context.progress, description=context.name)
        result = trainer.fit(resume=context.resume)
        if trainer.dist.is_main:
            network.save(encoder_dir(context.out_dir, modality.name))
            plot_training_curves(context.out_dir / "training" / "metrics.csv", context.out_dir / "loss.png", title=f"{context.name}: {modality.name}")
        summary = {"modality": modality.name, "n_train": len(train), "n_val": len(val), **network.describe(), **fit_summary(result)}
        atomic_write_text(context.out_dir / "summary.json", json.dumps(summary, indent=2, default=str))
        return summary
