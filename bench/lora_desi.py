"""Few-shot adaptation to DESI-like spectra (SIMULATED): the LAMOST model of lora-lamost-real (trained on
SIMULATED LAMOST-like spectra) adapted on 50-1000 SIMULATED DESI spectra of the APOGEE x Gaia XP stars.

1. DESI-like spectra of the first --limit stars of apogee-xp, by specclip-sim with the DESI plugin's
   instrument (resolution per arm from the real DESI files) but a stellar S/N: the DESI calibration's
   S/N comes from the faint galaxies of the only real DESI files we have (0.06-0.47 per pixel), so
   the S/N of each star is drawn from the g-band S/N of the 2,224 real LAMOST DR10 stars instead
   (median ~50). The desi modality's model grid is LAMOST's 4000-5600 A grid (as in the LoRA paper),
   so the LAMOST encoders read it unchanged.
2. One finetune stage per (method, size) on that store (``modality: desi``), in the lora-lamost-real
   run directory (its base stages must be finished: run bench/lora_real.py first). Labels: APOGEE
   teff, logg, fe_h; the draw: the first N of a seed-fixed permutation of the train split (by Gaia
   source id); the fixed test set: the test split.

Our LAMOST encoder is an MLP autoencoder, not the paper's masked transformer, so the paper's LoRA1
(self-attention of the encoder) maps to ``lora_ae`` (the autoencoder's encoder layers): the rows
"LoRA1+2" and "LoRA1+3+4" are ``lora_ae+lora2`` and ``lora_ae+lora3+lora4``.

    .venv/bin/python bench/lora_desi.py --run-dir /work/runs-lora/lora-real --desi-store /work/runs-lora/desi.zarr
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import sys
import time
from pathlib import Path

import matplotlib
import numpy as np
import yaml
from lora_real import REGISTRY_SPEC, RESULTS, cell, run_stages, stage_name

from specclip_core.heads.metrics import regression_metrics
from specclip_sim.calibration import load_calibration
from specclip_sim.paired import simulate_paired

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = Path(__file__).parent
LABELS = ["fe_h", "teff", "logg"]
METHODS = {
    "head only": ("heads_lamost_pretrained", ["head"]),
    "LoRA2": ("heads_lamost_pretrained", ["lora2"]),
    "LoRA1+2 (lora_ae+lora2)": ("heads_lamost_pretrained", ["lora_ae", "lora2"]),
    "LoRA4": ("heads_lamost_aligned", ["lora4"]),
    "LoRA1+3+4 (lora_ae+lora3+lora4)": ("heads_lamost_aligned", ["lora_ae", "lora3", "lora4"]),
    "full fine-tuning": ("heads_lamost_pretrained", ["full"]),
    "from scratch": ("heads_lamost_pretrained", ["scratch"]),
}
GROUPS = {"all": lambda f: np.isfinite(f), "metal-poor ([Fe/H] < -1)": lambda f: f < -1, "metal-rich ([Fe/H] >= -1)": lambda f: f >= -1}


def stellar_snr(dr10: Path) -> list[float]:
    with open(dr10 / "labels.csv") as handle:
        values = [float(row["snrg"]) for row in csv.DictReader(handle)]
    return [v for v in values if np.isfinite(v) and v > 0]


def group_metrics(path: Path) -> dict[str, dict[str, dict]]:
    """Per group of the test set (by true [Fe/H]), per label: metrics from a stage's test_predictions.csv."""
    with open(path) as handle:
        rows = list(csv.DictReader(handle))
    table = {c: np.array([float(r[c]) for r in rows]) for c in rows[0] if c != "id"}
    return {
        g: {k: regression_metrics(table[k][keep(table["fe_h"])], table[f"{k}_pred"][keep(table["fe_h"])]) for k in LABELS}
        for g, keep in GROUPS.items()
    }


def zero_shot_groups(run_dir: Path, store_path: str, base: str) -> dict[str, dict[str, dict]]:
    """The unadapted base on the DESI test split, per [Fe/H] group (as :func:`group_metrics`)."""
    from specclip_core.data.splits import split_labels
    from specclip_core.data.store import SpectralStore
    from specclip_core.heads.adapted import build_model, load_base
    from specclip_core.heads.inputs import spectra_inputs
    from specclip_core.rundir import RunDir
    from specclip_core.stages.heads import selected_rows

    store = SpectralStore.open(store_path)
    rows = selected_rows(store, LABELS, {})
    test = rows[split_labels(store.ids[rows]) == "test"]
    loaded = load_base(RunDir(run_dir), base)
    model = build_model(loaded, {label: loaded.outputs.index(label) for label in LABELS})
    predicted = model.predict(spectra_inputs(store.read("desi", test)))
    truth = store.labels(LABELS, test)
    return {
        g: {k: regression_metrics(truth[k][keep(truth["fe_h"])], predicted[k][keep(truth["fe_h"])]) for k in LABELS}
        for g, keep in GROUPS.items()
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--run-dir", required=True, help="the lora-lamost-real run directory (base stages finished)")
    parser.add_argument("--desi-store", required=True)
    parser.add_argument("--dr10", default=str(HERE.parent.parent / "shared" / "data" / "lamost-dr10"))
    parser.add_argument("--limit", type=int, default=4000)
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 100, 200, 500, 1000])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--name", default="lora_desi_simulated")
    args = parser.parse_args()
    started = time.perf_counter()
    calibration = load_calibration("desi").model_copy(update={"snr_values": stellar_snr(Path(args.dr10))})
    report = simulate_paired(
        "desi", like="apogee-xp", output=args.desi_store, seed=0, limit=args.limit, calibration=calibration, workers=args.workers
    )
    print(f"DESI-like (SIMULATED) store: {report.store}, {report.n_written} stars{' (reused)' if report.reused else ''}", flush=True)
    simulate_seconds = time.perf_counter() - started

    run_dir = Path(args.run_dir)
    data = {"store": str(Path(args.desi_store).resolve())}
    grid = {f"desi_{stage_name(m, n)}": (m, n) for m in args.methods for n in args.sizes}
    stages = {
        name: {
            "kind": "finetune",
            "base": METHODS[m][0],
            "data": data,
            "modality": "desi",
            "adapters": METHODS[m][1],
            "labels": LABELS,
            "n_labelled": n,
        }
        for name, (m, n) in grid.items()
    }
    spec_path = run_dir.parent / f"{run_dir.name}.desi.yaml"
    spec_path.write_text(
        yaml.safe_dump({"extends": str(REGISTRY_SPEC.resolve()), "name": "lora-desi-simulated", "stages": stages}, sort_keys=False)
    )
    run_stages(spec_path, run_dir, args.threads, args.dr10, list(grid))

    results = {}
    for name, (method, n) in grid.items():
        summary = json.loads((run_dir / name / "metrics.json").read_text())
        summary.pop("fit", None)
        results[name] = {"method": method, "n": n, **summary, "groups": group_metrics(run_dir / name / "test_predictions.csv")}
    zero = {base: zero_shot_groups(run_dir, args.desi_store, base) for base in dict.fromkeys(METHODS[m][0] for m in args.methods)}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(
        json.dumps({"finetune": results, "zero_shot": zero, "simulate_seconds": simulate_seconds}, indent=1)
    )
    write_markdown(args, results, zero, time.perf_counter() - started, simulate_seconds)
    plot(args, results, zero)
    return 0


def write_markdown(args, results, zero, seconds, simulate_seconds) -> None:
    first = next(iter(results.values()))
    groups = first["groups"]
    lines = [
        "# Few-shot adaptation to DESI-like spectra (all DESI spectra here are SIMULATED)",
        "",
        f"`python bench/lora_desi.py --run-dir {args.run_dir} --desi-store {args.desi_store} --limit {args.limit} --sizes {' '.join(map(str, args.sizes))}`, "
        f"{datetime.datetime.now():%Y-%m-%d %H:%M}; {seconds:.0f} s in all ({simulate_seconds:.0f} s simulating or finding the simulation made before) on 2 shared CPU cores.",
        "",
        f"SIMULATED DESI spectra of the first {args.limit} APOGEE x Gaia XP stars (S/N drawn from real LAMOST DR10 stars' g-band S/N); base: "
        "the LAMOST model of lora-lamost-real (trained on SIMULATED LAMOST spectra). Fixed test set: the test split, "
        + ", ".join(f"{g}: {groups[g]['fe_h']['n']} stars" for g in GROUPS)
        + ". Robust sigma / R^2 (APOGEE labels). LoRA1 -> lora_ae (our encoder is an MLP autoencoder).",
        "",
        f"Zero-shot (LAMOST-trained head on SIMULATED DESI on the LAMOST grid), the {groups['all']['fe_h']['n']} test stars with a measured [Fe/H]: "
        + "; ".join(f"{b}: " + ", ".join(f"{k} {cell(z['all'][k])}" for k in LABELS) for b, z in zero.items()),
        "",
    ]
    for group in GROUPS:
        lines += [
            f"## [Fe/H], {group} (SIMULATED DESI)",
            "",
            "| method | " + " | ".join(f"N={n}" for n in args.sizes) + " |",
            "|---|" + "---|" * len(args.sizes),
        ]
        for method in dict.fromkeys(r["method"] for r in results.values()):
            cells = {r["n"]: cell(r["groups"][group]["fe_h"]) for r in results.values() if r["method"] == method}
            lines.append(f"| {method} | " + " | ".join(cells.get(n, "-") for n in args.sizes) + " |")
        lines.append("")
    lines += [
        "## Teff and logg, all test stars (SIMULATED DESI)",
        "",
        "| method | N | Teff (K) | logg | trainable params | wall s |",
        "|---|---|---|---|---|---|",
    ]
    for r in results.values():
        lines.append(
            f"| {r['method']} | {r['n']} | {cell(r['test']['teff'])} | {cell(r['test']['logg'])} | {r['trainable_parameters']:,} | {r['wall_seconds']:.0f} |"
        )
    lines += ["", f"![[Fe/H] robust sigma against labelled stars]({args.name}.png)", ""]
    (RESULTS / f"{args.name}.md").write_text("\n".join(lines))
    print("\n".join(lines))


def plot(args, results, zero) -> None:
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    for ax, group in zip(axes, GROUPS):
        for method in dict.fromkeys(r["method"] for r in results.values()):
            points = sorted((r["n"], r["groups"][group]["fe_h"]["robust_sigma"]) for r in results.values() if r["method"] == method)
            ax.plot(*zip(*points), marker="o", label=method)
        ax.set_xscale("log")
        ax.set_xlabel("labelled SIMULATED DESI spectra")
        ax.set_ylabel("[Fe/H] robust sigma")
        ax.set_title(group, fontsize=9)
    for z in zero.values():
        for ax, group in zip(axes, GROUPS):
            ax.axhline(z[group]["fe_h"]["robust_sigma"], ls=":", color="grey")
    axes[0].legend(fontsize=7)
    fig.suptitle("LAMOST model (trained on SIMULATED LAMOST) adapted to SIMULATED DESI spectra; dotted: zero-shot", fontsize=10)
    fig.tight_layout()
    fig.savefig(RESULTS / f"{args.name}.png", dpi=80)


if __name__ == "__main__":
    sys.exit(main())
