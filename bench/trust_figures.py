"""Calibration figures of the trust specs (issue 10) from their finished runs: per label and head the
test robust sigma (and its ratio to the point MLP head's), SBC K-S p, 68% and 95% coverage, each
checked against the acceptance ranges, for the recalibrated posteriors and (in brackets) for the
heads' own posteriors before recalibration; a coverage plot per run and the SBC rank histograms copied
into docs/results/figures/.

    .venv/bin/python bench/trust_figures.py RUNS/xp-trust RUNS/lamost-trust
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from specclip_core.report.plots import plot_coverage
from specclip_core.rundir import RunDir

HERE = Path(__file__).resolve().parent
FIGURES = HERE.parent / "docs" / "results" / "figures"
POINT = "heads_mlp"
UNCERTAIN = ("heads_mlp_gaussian", "heads_npe_maf", "heads_npe_nsf")
BANDS = {68: (0.63, 0.73), 95: (0.92, 0.97)}
SBC_P = 0.05
SIGMA_RATIO = 1.10


def checks(figures: dict[str, float], point_sigma: float) -> dict[str, bool]:
    ratio = figures["robust_sigma"] / point_sigma
    return {
        "sbc": figures["sbc_ks_p"] >= SBC_P,
        "coverage_68": BANDS[68][0] <= figures["coverage_68"] <= BANDS[68][1],
        "coverage_95": BANDS[95][0] <= figures["coverage_95"] <= BANDS[95][1],
        "sigma": ratio <= SIGMA_RATIO,
    }


def run_table(run: Path) -> tuple[str, dict]:
    rundir = RunDir(run)
    metrics = {stage: json.loads((run / stage / "metrics.json").read_text()) for stage in (POINT, *UNCERTAIN) if rundir.is_finished(stage)}
    fits = {stage: rundir.manifest(stage)["summary"].get("fit", {}) for stage in metrics}
    simulated = any(rundir.manifest(stage)["summary"].get("simulated") for stage in metrics)
    labels = list(metrics[POINT])
    lines = [
        f"### {rundir.name()} ({'SIMULATED' if simulated else 'real'} spectra; test split)",
        "",
        "| label | head | robust sigma | / MLP's | SBC K-S p (raw) | coverage 68% (raw) | coverage 95% (raw) | passes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    result = {}
    for label in labels:
        point = metrics[POINT][label]["robust_sigma"]
        lines.append(f"| {label} | {POINT} (point) | {point:.4g} | 1 | | | | |")
        for stage in UNCERTAIN:
            if stage not in metrics:
                continue
            figures = metrics[stage][label]
            passed = checks(figures, point)
            failed = [name for name, ok in passed.items() if not ok]
            raw = figures.get("raw", {})

            def cell(key: str, form: str) -> str:
                return f"{figures[key]:{form}}" + (f" ({raw[key]:{form}})" if key in raw else "")

            lines.append(
                f"| {label} | {stage} | {figures['robust_sigma']:.4g} | {figures['robust_sigma'] / point:.3f} | {cell('sbc_ks_p', '.3g')} | "
                f"{cell('coverage_68', '.3f')} | {cell('coverage_95', '.3f')} | {'all' if not failed else 'fails ' + ', '.join(failed)} |"
            )
            result.setdefault(stage, {})[label] = {**figures, "sigma_ratio": figures["robust_sigma"] / point, "passes": passed}
    chosen = {stage: {group: {k: v for k, v in figures.items() if k != "seeds"} for group, figures in fit.items() if isinstance(figures, dict)} for stage, fit in fits.items() if stage.startswith("heads_npe")}
    lines += ["", f"NPE seeds chosen (fit summaries): `{json.dumps(chosen)}`", ""]
    return "\n".join(lines), {"run": str(run), "name": rundir.name(), "simulated": simulated, "heads": result, "point_sigma": {label: metrics[POINT][label]["robust_sigma"] for label in labels}}


def figures_of(run: Path, result: dict) -> list[str]:
    name = result["name"]
    FIGURES.mkdir(parents=True, exist_ok=True)
    written = [str(plot_coverage(result["heads"], FIGURES / f"trust_{name}_coverage.png", f"{name}: coverage of the central intervals, test split ({'SIMULATED' if result['simulated'] else 'real'} spectra)", BANDS))]
    for stage in result["heads"]:
        for label in result["heads"][stage]:
            source = run / stage / f"sbc_{label}.png"
            if source.exists():
                target = FIGURES / f"trust_{name}_{stage}_sbc_{label}.png"
                shutil.copyfile(source, target)
                written.append(str(target))
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "trust_calibration")
    args = parser.parse_args()
    tables, results = [], []
    for run in args.runs:
        table, result = run_table(run)
        result["figures"] = figures_of(run, result)
        tables.append(table)
        results.append(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=2))
    text = "# Calibration of the trust specs (bench/trust_figures.py)\n\n" + "\n".join(tables)
    args.out.with_suffix(".md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
