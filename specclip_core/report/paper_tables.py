"""The paper's Table 1 (label accuracy: raw spectra, pretrained and each CLIP variant) and Table 2
(alignment: true-pair cosine similarity, cross-modal retrieval, cross-modal prediction) for a run.

A ``report`` stage names, for each block of Table 1, the heads stage behind each column, and for
Table 2 the align stage behind each variant. It reads their finished outputs and writes
``report.md`` with the tables and links to every plot. ``specclip report RUN`` rebuilds it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from pydantic import Field

from specclip_core.heads.metrics import regression_metrics
from specclip_core.report.tables import _format
from specclip_core.rundir import REPORT, RunDir, read_predictions
from specclip_core.spec import SpecModel
from specclip_core.util import atomic_write_text


class Table1Block(SpecModel):
    """One block of Table 1: a title, its labels, and the heads stage behind each column."""

    title: str = Field(description='e.g. "Survey A (real)" or "Survey B-like (simulated)"')
    labels: list[str] = Field(min_length=1, description="rows of the block")
    columns: dict[str, str] = Field(min_length=1, description="column title -> heads stage")


def table1_block(run_dir: Path, block: Table1Block) -> tuple[str, dict[str, int]]:
    """One block of Table 1 in markdown (sigma / R^2, best sigma per row in bold) and the wins per column."""
    run = RunDir(run_dir)
    metrics: dict[str, dict[str, dict[str, float]]] = {}
    for column, stage in block.columns.items():
        run.manifest(stage)
        truth, predicted = read_predictions(run.predictions(stage))
        metrics[column] = {label: regression_metrics(truth[label], predicted[label]) for label in block.labels if label in predicted}
    wins = {column: 0 for column in block.columns}
    lines = [f"**{block.title}**", "", "| label | " + " | ".join(block.columns) + " |", "|---|" + "---|" * len(block.columns)]
    for label in block.labels:
        sigmas = {c: metrics[c].get(label, {}).get("robust_sigma", float("nan")) for c in block.columns}
        finite = {c: s for c, s in sigmas.items() if s == s}
        best = min(finite, key=finite.get) if finite else None
        if best is not None:
            wins[best] += 1
        cells = []
        for column in block.columns:
            entry = metrics[column].get(label)
            cell = "-" if not entry else f"{_format(entry['robust_sigma'])} / {entry['r2']:.3f}"
            cells.append(f"**{cell}**" if column == best else cell)
        n = next((metrics[c][label]["n"] for c in block.columns if label in metrics[c]), 0)
        lines.append(f"| {label} (N={n}) | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n", wins


def table2(run_dir: Path, variants: dict[str, str]) -> str:
    """Alignment metrics per variant, one table per pair of modalities (SIMULATED ones marked), with
    the untrained model as the pre-alignment baseline (the first variant's; its prediction error from
    the first variant that has cross-modal decoders)."""
    rows, baselines, simulated = [], [], set()
    for title, stage in variants.items():
        summary = RunDir(run_dir).manifest(stage)["summary"]
        rows.append((title, summary["aligned"]))
        baselines.append(summary["baseline_before_training"])
        simulated |= set(summary.get("simulated_modalities", []))
    if not rows:
        return ""
    baseline = dict(baselines[0])
    baseline["prediction_weighted_mse"] = next((b["prediction_weighted_mse"] for b in baselines if b.get("prediction_weighted_mse")), {})
    first = rows[0][1]

    def name(modality: str) -> str:
        return f"{modality} (SIMULATED)" if modality in simulated else modality

    def fixed(value: float | None, digits: str) -> str:
        return "-" if value is None or value != value else format(value, digits)

    blocks = []
    for pair in first["cosine"]:
        a, b = pair.split("~")
        directions = [f"{a}->{b}", f"{b}->{a}"]
        predictions = [d for d in directions if any(d in r.get("prediction_weighted_mse", {}) for _, r in rows)]
        header = ["model", "true-pair cosine"] + [f"top-1 / top-10 {d}" for d in directions] + [f"pred. wMSE {d}" for d in predictions]
        lines = ["| " + " | ".join(header) + " |", "|---|" + "---|" * (len(header) - 1)]
        for title, result in [("before alignment (untrained projections)", baseline), *rows]:
            cells = [title, fixed(result["cosine"][pair], ".3f")]
            cells += [f"{fixed(result['retrieval'][d]['top1'], '.3f')} / {fixed(result['retrieval'][d]['top10'], '.3f')}" for d in directions]
            cells += [fixed(result.get("prediction_weighted_mse", {}).get(d), ".4g") for d in predictions]
            lines.append("| " + " | ".join(cells) + " |")
        n = first.get("n_by_pair", {}).get(pair, first["n_pairs"])
        blocks.append(f"**{name(a)} ~ {name(b)}** ({n} held-out pairs)\n\n" + "\n".join(lines) + "\n")
    return "\n".join(blocks) + (
        "\nHeld-out pairs: the test split's rows that hold both modalities. Cosine: mean similarity of true pairs of shared "
        "embeddings. Retrieval: query one modality, find the same star among all held-out pairs in the other.\n"
    )


def write_report(run_dir: Path, title: str, note: str, table1: list[Table1Block], variants: dict[str, str], out_dir: Path) -> str:
    """``report.md`` in ``out_dir``: Table 1 (its blocks), Table 2 (align stage per variant) and every plot of those stages."""
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = [f"# {title}", ""]
    if note:
        parts += [note, ""]
    if table1:
        parts += ["## Table 1: label accuracy on the test split", "", "Each cell: robust sigma (Tukey biweight scale of residuals) / R^2; bold = lowest sigma in the row.", ""]
        total: dict[str, int] = {}
        for block in table1:
            text, wins = table1_block(run_dir, block)
            parts += [text]
            for column, count in wins.items():
                total[column] = total.get(column, 0) + count
        parts += ["**Number of wins (lowest sigma), all blocks**", "", "| " + " | ".join(total) + " |", "|" + "---|" * len(total), "| " + " | ".join(str(v) for v in total.values()) + " |", ""]
    if variants:
        parts += ["## Table 2: alignment on held-out pairs", "", table2(run_dir, variants)]
    parts += ["## Plots", ""]
    stages = [s for block in table1 for s in block.columns.values()] + list(variants.values())
    for stage in dict.fromkeys(stages):
        for png in sorted(RunDir(run_dir).stage(stage).glob("*.png")):
            target = out_dir / "plots" / f"{stage}_{png.name}"
            target.parent.mkdir(exist_ok=True)
            shutil.copyfile(png, target)
            parts.append(f"![{stage}: {png.stem}](plots/{target.name})")
    text = "\n".join(parts) + "\n"
    atomic_write_text(out_dir / REPORT, text)
    return text

