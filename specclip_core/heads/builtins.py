"""The core's heads and their stages, registered through the component hook."""

from __future__ import annotations

from specclip_core.components import ComponentList
from specclip_core.heads.linear import RidgeHead, RidgeHeadConfig
from specclip_core.heads.mlp import MLPHead, MLPHeadConfig
from specclip_core.heads.stages import EvaluateConfig, HeadsConfig, run_evaluate, run_heads
from specclip_core.hookspecs import hookimpl
from specclip_core.report.paper_tables import ReportConfig, run_report
from specclip_core.retrieval.neighbours import NeighboursConfig, run_neighbours

components = ComponentList()
components.register("head", "mlp", MLPHeadConfig, "MLP regressor per label (paper sec. 3.1.1), trained with the core loop")(MLPHead)
components.register("head", "ridge", RidgeHeadConfig, "ridge regression per label (scikit-learn), penalty chosen on validation")(RidgeHead)
components.register("stage", "heads", HeadsConfig, "train label heads on embeddings or spectra; score the test split")(run_heads)
components.register("stage", "evaluate", EvaluateConfig, "compare heads stages: robust sigma and R^2 table, one-to-one plots")(run_evaluate)

components.register("stage", "report", ReportConfig, "the paper's Table 1 and Table 2 for a run, in markdown with plots")(run_report)
components.register("stage", "neighbours", NeighboursConfig, "fraction of repeat observations whose cosine nearest neighbour is the same object")(run_neighbours)


@hookimpl
def specclip_register_components():
    return list(components)
