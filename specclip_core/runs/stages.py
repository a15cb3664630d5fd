"""Built-in stages. A stage is a registered component of kind ``stage`` whose factory takes a
:class:`~specclip_core.runs.runner.StageContext`, writes into ``context.out_dir`` and returns a summary."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from pydantic import Field

from specclip_core.components import ComponentList, create_component, get_modality
from specclip_core.data.dataset import StoreDataset
from specclip_core.data.ingest_stage import IngestConfig, run_ingest
from specclip_core.heads.inputs import encoder_dir
from specclip_core.hookspecs import hookimpl
from specclip_core.nn.modality_encoder import ModalityEncoder
from specclip_core.runs.runner import StageContext
from specclip_core.spec import EncoderSpec, ModalityName, ObjectiveSpec, SpecModel, TokenizerSpec, TrainSpec
from specclip_core.train.loop import Trainer, fit_summary
from specclip_core.util import atomic_write_text

components = ComponentList()


class PretrainConfig(SpecModel):
    """Self-supervised pretraining of one modality's encoder on the train split; early stopping on val."""

    requires_data: ClassVar[bool] = True
    modality: ModalityName = Field(description="registered modality name")
    tokenizer: TokenizerSpec | None = Field(None, description="default: the modality's")
    encoder: EncoderSpec | None = Field(None, description="default: the modality's")
    objectives: list[ObjectiveSpec] = Field(default_factory=lambda: [], description="default: masked_modeling for multi-token input, else reconstruction")
    train: TrainSpec = Field(default_factory=TrainSpec)


def default_objectives(network: ModalityEncoder) -> list[dict[str, Any]]:
    return [{"name": "masked_modeling"}] if network.tokenizer.n_tokens > 1 else [{"name": "reconstruction"}]


@components.register("stage", "pretrain", PretrainConfig)
def pretrain(context: StageContext) -> dict[str, Any]:
    """Pretrain a modality encoder; writes encoders/<modality>/ (safetensors + json), metrics.csv and a loss plot."""
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
    train = StoreDataset(store, [modality.name], split="train")
    val = StoreDataset(store, [modality.name], split="val")
    trainer = Trainer(network, objectives, train, val, config.train, context.out_dir / "training", seed=context.seed, progress=context.progress, description=context.name)
    result = trainer.fit(resume=context.resume)
    if trainer.dist.is_main:
        network.save(encoder_dir(context.out_dir, modality.name))
        from specclip_core.report.plots import plot_training_curves

        plot_training_curves(context.out_dir / "training" / "metrics.csv", context.out_dir / "loss.png", title=f"{context.name}: {modality.name}")
    summary = {"modality": modality.name, "n_train": len(train), "n_val": len(val), **network.describe(), **fit_summary(result)}
    atomic_write_text(context.out_dir / "summary.json", json.dumps(summary, indent=2, default=str))
    return summary


components.register("stage", "ingest", IngestConfig, "build a store from local files (read, preprocess, join labels, report)")(run_ingest)


@hookimpl
def specclip_register_components():
    return list(components)
