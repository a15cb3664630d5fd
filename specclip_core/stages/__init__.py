"""The built-in stages, one module per kind, registered through the component hook like any plugin's.

A stage is a :class:`~specclip_core.interfaces.Stage` subclass registered with kind ``stage`` and its
settings model as config; the runner (:mod:`specclip_core.runner`) builds and runs it. The stage
modules are imported when the registry asks for them, so loading the plugins stays cheap.
"""

from __future__ import annotations

from specclip_core.hookspecs import hookimpl


@hookimpl
def specclip_register_components():
    from specclip_core.components import ComponentList
    from specclip_core.stages.align import AlignConfig, AlignStage
    from specclip_core.stages.evaluate import EvaluateConfig, EvaluateStage
    from specclip_core.stages.finetune import FinetuneConfig, FinetuneStage
    from specclip_core.stages.heads import HeadsConfig, HeadsStage
    from specclip_core.stages.ingest import IngestConfig, IngestStage
    from specclip_core.stages.join import JoinConfig, JoinStage
    from specclip_core.stages.neighbours import NeighboursConfig, NeighboursStage
    from specclip_core.stages.pretrain import PretrainConfig, PretrainStage
    from specclip_core.stages.report import ReportConfig, ReportStage

    components = ComponentList()
    components.register("stage", "ingest", IngestConfig, "build a store from local files (read, preprocess, join labels, report)")(IngestStage)
    components.register("stage", "join", JoinConfig, "join stores by id (or a cross-match table) into one multi-modality store; report what matched")(JoinStage)
    components.register("stage", "pretrain", PretrainConfig, "self-supervised pretraining of one modality's encoder")(PretrainStage)
    components.register("stage", "align", AlignConfig, "contrastive alignment with optional reconstruction/prediction decoders (CLIP variants)")(AlignStage)
    components.register("stage", "heads", HeadsConfig, "train label heads on embeddings or spectra; score the test split")(HeadsStage)
    components.register("stage", "finetune", FinetuneConfig, "adapt a heads stage's encoder and MLP head to new labels: LoRA adapters, head only, full, or from scratch")(FinetuneStage)
    components.register("stage", "evaluate", EvaluateConfig, "compare heads stages: robust sigma and R^2 table, one-to-one plots")(EvaluateStage)
    components.register("stage", "report", ReportConfig, "the paper's Table 1 and Table 2 for a run, in markdown with plots")(ReportStage)
    components.register("stage", "neighbours", NeighboursConfig, "fraction of repeat observations whose cosine nearest neighbour is the same object")(NeighboursStage)
    return list(components)
