"""Markdown tables of label metrics."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def _format(value: float) -> str:
    if value != value:
        return "-"
    magnitude = abs(value)
    return f"{value:.0f}" if magnitude >= 100 else f"{value:.3g}" if magnitude >= 1 else f"{value:.3f}"


def metrics_table(results: Mapping[str, Mapping[str, Mapping[str, float]]], labels: Sequence[str], note: str = "") -> str:
    """Rows = labels, columns = methods; each cell 'robust sigma / R^2 (N)'; the best sigma per row in bold.

    ``results[method][label]`` is a dict from :func:`specclip_core.heads.metrics.regression_metrics`.
    """
    methods = list(results)
    lines = ["| label | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
    for label in labels:
        sigmas = {m: results[m].get(label, {}).get("robust_sigma", float("nan")) for m in methods}
        finite = {m: s for m, s in sigmas.items() if s == s}
        best = min(finite, key=finite.get) if finite else None
        cells = []
        for method in methods:
            entry = results[method].get(label)
            if not entry:
                cells.append("-")
                continue
            cell = f"{_format(entry['robust_sigma'])} / {entry['r2']:.3f} ({entry['n']})"
            cells.append(f"**{cell}**" if method == best and len(finite) > 1 else cell)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n\nEach cell: robust sigma (Tukey biweight scale of residuals) / R^2 (N test rows); bold = lowest sigma.\n"
    return text + (f"\n{note}\n" if note else "")
