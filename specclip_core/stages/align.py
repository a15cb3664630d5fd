"""The ``align`` stage: contrastive alignment with optional decoders, for any number of modalities."""

from __future__ import annotations

import json
from itertools import permutations
from typing import Any

import numpy as np
import torch
from pydantic import Field, model_validator

from specclip_core.align.embedder import MODEL_DIR, AlignedEmbedder
from specclip_core.align.metrics import alignment_metrics
from specclip_core.align.model import AlignmentModel, pair_key
from specclip_core.components import create_component, get_modality
from specclip_core.data.dataset import StoreDataset
from specclip_core.data.splits import split_rows
from specclip_core.interfaces import Stage
from specclip_core.nn.modality_encoder import ModalityEncoder
from specclip_core.report.plots import plot_training_curves, plot_translations
from specclip_core.rundir import encoder_dir
from specclip_core.runner import StageContext
from specclip_core.spec import DecoderSpec, ModalityName, ObjectiveSpec, ProjectionSpec, SpecModel, TrainSpec
from specclip_core.train.loop import Trainer, fit_summary
from specclip_core.util import atomic_write_text


class AlignWeights(SpecModel):
    """Weights of the alignment's own loss terms."""

    contrastive: float = Field(1.0, ge=0, description="InfoNCE over every pair of modalities")
    reconstruction: float = Field(1.0, ge=0, description="in-modal reconstruction (with 'reconstruction')")
    prediction: float = Field(1.0, ge=0, description="cross-modal prediction (with 'prediction')")


class OrderedSpec(SpecModel):
    """Ordered embeddings (information-ordered bottleneck): the objectives train each prefix of the
    shared embedding as an embedding of its own, so it truncates to any listed width without retraining."""

    widths: list[int] = Field(
        min_length=1,
        description="prefix widths of the shared embedding to train, increasing, each at most shared_dim "
        "(the full shared_dim is always trained too); e.g. [8, 16, 32, 64, 128, 256]",
    )
    decoders: bool = Field(
        True,
        description="the reconstruction and cross-modal decoders also learn from each prefix (the shared "
        "dimensions past it set to zero); false: only InfoNCE is ordered",
    )

    @model_validator(mode="after")
    def _increasing(self) -> OrderedSpec:
        if any(w < 1 for w in self.widths) or any(b <= a for a, b in zip(self.widths, self.widths[1:])):
            raise ValueError(f"ordered.widths must be positive and strictly increasing, got {self.widths}")
        return self


def _align_train_spec() -> TrainSpec:
    return TrainSpec(epochs=20, batch_size=1024, lr=1e-4, weight_decay=0.05, drop_last=True, patience=5)


class AlignConfig(SpecModel):
    """CLIP-style alignment. CLIP: no decoders; -r: ``reconstruction``; -p: ``prediction``; -pr: both;
    -split: both and ``private_dim`` > 0. Encoders come from the needed pretraining stages."""

    projections: dict[ModalityName, ProjectionSpec] = Field(min_length=2, description="modality -> projection")
    shared_dim: int = Field(768, ge=2, description="width of the aligned (shared) embedding")
    private_dim: int = Field(0, ge=0, description="> 0 splits each projection into shared + private (CLIP-split)")
    reconstruction: DecoderSpec | None = Field(None, description="in-modal decoders (reads shared + private)")
    prediction: DecoderSpec | None = Field(None, description="cross-modal decoders (reads shared only)")
    weights: AlignWeights = Field(default_factory=AlignWeights)
    objectives: list[ObjectiveSpec] = Field(default_factory=list, description="further objectives (a plugin's) added to the alignment's own")
    freeze_encoders: bool = Field(True, description="keep the pretrained encoders fixed")
    logit_scale: float = Field(15.5, gt=0, description="InfoNCE logits = logit_scale x cosine")
    learn_logit_scale: bool = Field(False, description="train the logit scale")
    ordered: OrderedSpec | None = Field(
        None,
        description="ordered embeddings: train every prefix width of the shared embedding (a prefix then "
        "truncates it without retraining: specclip embed --width); None: a plain embedding",
    )
    train: TrainSpec = Field(default_factory=_align_train_spec)
    translation_examples: int = Field(4, ge=0, description="held-out stars shown in translations.png")

    @model_validator(mode="after")
    def _ordered_within_shared(self) -> AlignConfig:
        if self.ordered is not None and self.ordered.widths[-1] > self.shared_dim:
            raise ValueError(f"ordered.widths {self.ordered.widths} go past shared_dim {self.shared_dim}")
        return self


def build_model(context: StageContext, config: AlignConfig) -> AlignmentModel:
    encoders = {}
    for name in config.projections:
        modality = get_modality(name).name
        encoders[modality] = ModalityEncoder.load(context.find_encoder(modality))
    projections = {
        get_modality(name).name: {**spec.model_dump(), "shared_dim": config.shared_dim, "private_dim": config.private_dim}
        for name, spec in config.projections.items()
    }
    return AlignmentModel(
        encoders,
        projections,
        config.reconstruction.model_dump() if config.reconstruction else None,
        config.prediction.model_dump() if config.prediction else None,
        config.freeze_encoders,
        config.logit_scale,
        config.learn_logit_scale,
        config.ordered.model_dump() if config.ordered else None,
    )


def translation_panels(model: AlignmentModel, store, rows: np.ndarray, n: int) -> list[dict[str, Any]]:
    if not len(model.predictors) or n == 0:
        return []
    rows = rows[np.logical_and.reduce([store.observed(m, rows) for m in model.modalities])]
    chosen = rows[:: max(len(rows) // n, 1)][:n]
    simulated = set(store.simulated_modalities)

    def name(modality: str) -> str:
        return f"{modality} (SIMULATED)" if modality in simulated else modality

    panels = []
    model.eval()
    with torch.no_grad():
        batch = {m: {k: torch.as_tensor(v) for k, v in store.read(m, chosen).items()} for m in model.modalities}
        embeddings = {m: model.embed(m, batch[m]) for m in model.modalities}
        for source, target in permutations(model.modalities, 2):
            predicted = model.predictors[pair_key(source, target)](embeddings[source].shared).numpy()
            for i, row in enumerate(chosen):
                panels.append(
                    {
                        "wavelength": store.wavelength(target),
                        "truth": batch[target]["flux"][i].numpy(),
                        "predicted": predicted[i],
                        "mask": batch[target]["mask"][i].numpy(),
                        "label": f"{store.ids[row]}: {name(source)} -> {name(target)}",
                    }
                )
    return panels


class AlignStage(Stage):
    """Train the alignment model; write model/, encoders/<modality>/, metrics.json, plots."""

    requires_data = True

    def run(self, context: StageContext) -> dict[str, Any]:
        config: AlignConfig = context.config
        torch.manual_seed(context.seed)
        model = build_model(context, config)
        store = context.store()
        test_rows = split_rows(store.ids, "test")
        baseline = alignment_metrics(model, store, test_rows)
        objectives = [create_component("objective", {"name": "infonce", "weight": config.weights.contrastive})]
        if config.reconstruction is not None:
            objectives.append(create_component("objective", {"name": "reconstruction_l1", "weight": config.weights.reconstruction}))
        if config.prediction is not None:
            objectives.append(create_component("objective", {"name": "cross_prediction", "weight": config.weights.prediction}))
        objectives += [create_component("objective", spec.model_dump()) for spec in config.objectives]
        train = StoreDataset(store, model.modalities, split="train")
        val = StoreDataset(store, model.modalities, split="val")
        trainer = Trainer(model, objectives, train, val, config.train, context.out_dir / "training", seed=context.seed, progress=context.progress, description=context.name)
        result = trainer.fit(resume=context.resume)
        model = model.cpu()
        aligned = alignment_metrics(model, store, test_rows)
        summary = {
            "baseline_before_training": baseline,
            "aligned": aligned,
            "simulated_modalities": [m for m in model.modalities if m in store.simulated_modalities],
            **fit_summary(result),
            **{k: v for k, v in model.describe().items() if k.startswith("n_")},
        }
        if trainer.dist.is_main:
            model.save(context.out_dir / MODEL_DIR)
            for modality in model.modalities:
                AlignedEmbedder(model, modality).save(encoder_dir(context.out_dir, modality))
            atomic_write_text(context.out_dir / "metrics.json", json.dumps(summary, indent=2, default=str))
            plot_training_curves(context.out_dir / "training" / "metrics.csv", context.out_dir / "loss.png", title=context.name)
            panels = translation_panels(model, store, test_rows, config.translation_examples)
            if panels:
                plot_translations(panels, context.out_dir / "translations.png", title=f"{context.name}: cross-modal prediction on held-out stars")
        return summary
