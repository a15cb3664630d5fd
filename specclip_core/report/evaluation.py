"""Compare finished heads stages of a run: robust sigma and R^2 per label on their test splits, one
table and one-to-one plots (what ``specclip evaluate`` and the ``evaluate`` stage write)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from specclip_core.errors import SpecCLIPError
from specclip_core.heads.metrics import regression_metrics
from specclip_core.report.plots import plot_one_to_one
from specclip_core.report.tables import metrics_table
from specclip_core.rundir import HEAD_INPUTS, HeadInputs, RunDir, read_predictions
from specclip_core.util import atomic_write_text


def evaluate_stages(run_dir: Path, stages: list[str], labels: list[str] | None, out_dir: Path, note: str = "") -> dict[str, Any]:
    """Metrics of several heads stages on their test splits, a markdown table and one-to-one plots."""
    run = RunDir(run_dir)
    results: dict[str, dict[str, dict[str, float]]] = {}
    order: list[str] = []
    flagged: list[str] = []
    out_dir.mkdir(parents=True, exist_ok=True)
    for stage in stages:
        path = run.predictions(stage)
        if not path.exists():
            raise SpecCLIPError(f"{path}: missing; is {stage!r} a finished heads stage?")
        truth, predicted = read_predictions(path)
        results[stage] = {label: regression_metrics(truth[label], predicted[label]) for label in predicted}
        order += [label for label in predicted if label not in order]
        head = HeadInputs.read(run.head(stage)) if (run.head(stage) / HEAD_INPUTS).exists() else None
        simulated = head is not None and head.simulated
        if simulated:
            flagged.append(stage)
        for label in predicted:
            if not labels or label in labels:
                unit, name = (head.units.get(label, ""), head.names.get(label, "")) if head else ("", "")
                title = stage + (" (SIMULATED spectra)" if simulated else "")
                plot_one_to_one(truth[label], predicted[label], out_dir / f"one_to_one_{stage}_{label}.png", label, unit, title, name)
    if flagged:
        note = " ".join(filter(None, [note, f"Stages on SIMULATED spectra: {', '.join(flagged)}."]))
    table = metrics_table(results, labels or order, note)
    atomic_write_text(out_dir / "table.md", table)
    atomic_write_text(out_dir / "metrics.json", json.dumps(results, indent=2))
    return {"table": table, "metrics": results}
