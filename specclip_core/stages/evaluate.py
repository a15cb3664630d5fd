"""The ``evaluate`` stage: compare several heads stages in one table with one-to-one plots."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from specclip_core.interfaces import Stage
from specclip_core.report.evaluation import evaluate_stages
from specclip_core.runner import StageContext
from specclip_core.spec import SpecModel


class EvaluateConfig(SpecModel):
    """Compare the test-split predictions of heads stages (default: every heads stage this one needs)."""

    heads: list[str] = Field(default_factory=list, description="heads stages to compare (default: every heads stage in needs)")
    labels: list[str] = Field(default_factory=list, description="default: every label the heads predict")
    note: str = Field("", description="a line under the table")


class EvaluateStage(Stage):
    """Robust sigma and R^2 of heads stages on the test split: table.md, metrics.json, one-to-one plots."""

    config: EvaluateConfig

    def needs(self) -> list[str]:
        return list(self.config.heads)

    def run(self, context: StageContext) -> dict[str, Any]:
        config = self.config
        stages = config.heads or [n for n in context.stage.needs if context.spec.stages[n].kind == "heads"]
        for stage in stages:
            context.upstream(stage)
        return evaluate_stages(context.run_dir, stages, config.labels or None, context.out_dir, config.note)["metrics"]
