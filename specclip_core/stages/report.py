"""The ``report`` stage: the paper's Table 1 and Table 2 for a run, in markdown with its plots."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from specclip_core.interfaces import Stage
from specclip_core.report.paper_tables import Table1Block, write_report
from specclip_core.runner import StageContext
from specclip_core.spec import SpecModel


class ReportConfig(SpecModel):
    """Which heads stages make each block of Table 1 and which align stages the rows of Table 2."""

    title: str = Field("SpecCLIP results", description="the report's heading")
    note: str = Field("", description="a paragraph under the heading (say which spectra are simulated)")
    table1: list[Table1Block] = Field(default_factory=list, description="blocks of Table 1")
    table2: dict[str, str] = Field(default_factory=dict, description="variant title -> align stage")


class ReportStage(Stage):
    """Write report.md: Table 1 and Table 2 with every plot of the stages they read."""

    config: ReportConfig

    def needs(self) -> list[str]:
        return [s for block in self.config.table1 for s in block.columns.values()] + list(self.config.table2.values())

    def run(self, context: StageContext) -> dict[str, Any]:
        write(context.run_dir, self.config, context.out_dir)
        return {"report": str(context.run.report(context.name))}


def write(run_dir, config: ReportConfig, out_dir) -> str:
    """The report of ``config`` for the run in ``run_dir``, written to ``out_dir`` (``specclip report`` calls this too)."""
    return write_report(run_dir, config.title, config.note, config.table1, config.table2, out_dir)
