"""Precision on real LAMOST DR10 spectra (issue 13): the ablation table of the registered spec
lamost-precision over 3 seeds, with scikit-learn HistGradientBoosting on the same training spectra.

For each seed the spec runs in its own run directory (``RUNS/seed<N>``, ``--set seed=N``; the spectra
are ingested once, in the first seed's, and the other seeds' heads read those stores), one stage per process, so that each stage's wall time and peak memory (the process's maximum resident set) are
its own. Every MLP row is scored on the test split (by obsid, LASP labels) with the robust sigma
(biweight scale) and R^2, and on the validation split, which alone decides between rows; the mean of
the 3 seeds' predictions is scored as the ensemble of that row. HistGradientBoosting (defaults, one
per label) is fitted on the same training spectra of each range, in its own process too.

    .venv/bin/python bench/precision_lamost.py --runs /work/runs-preclamost/precision [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from specclip_core.data.splits import split_labels
from specclip_core.data.store import SpectralStore
from specclip_core.heads.inputs import spectra_inputs, with_errors
from specclip_core.heads.metrics import regression_metrics
from specclip_core.heads.saved import load_head
from specclip_core.rundir import RunDir
from specclip_core.stages.heads import selected_rows

HERE = Path(__file__).parent
RESULTS = HERE / "results"
SPEC = "lamost-precision"
LABELS = ["teff", "logg", "feh"]
NAMES = {"teff": "Teff (K)", "logg": "log g (dex)", "feh": "[Fe/H] (dex)"}
GOALS = {"teff": 110.0, "logg": 0.11, "feh": 0.09}
INGESTS = {"ingest": "lamost_lrs", "ingest_full": "lamost_lrs_full"}
# MLP rows of the spec: stage -> (ingest stage, its errors_input, what the row changes)
ROWS = {
    "mlp": ("ingest", "none", "paper's MLP on stats + flux, 4000-5600 A (baseline)"),
    "mlp_full": ("ingest_full", "none", "whole range 3850-8900 A"),
    "mlp_ivar": ("ingest", "inverse_sigma", "+ sqrt(ivar) per pixel as input, 4000-5600 A"),
    "mlp_full_regularised": ("ingest_full", "none", "whole range, dropout 0.2, Huber loss, batch 128, lr 5e-4, AdamW weight decay 0.05, patience 15"),
    "mlp_full_ivar": ("ingest_full", "inverse_sigma", "whole range + sqrt(ivar) as input"),
    "mlp_log": ("ingest", "none", "fits log10 Teff (log_labels), 4000-5600 A"),
    "mlp_noise": ("ingest", "none", "trained on noisier copies of the spectra (noise_augment 1: extra noise of their own errors x U(0, 1))"),
    "mlp_log_noise": ("ingest", "none", "log10 Teff and noisier copies"),
    "mlp_members5": ("ingest", "none", "ensemble of 5 networks per label (members: 5)"),
    "mlp_log_noise_members5": ("ingest", "none", "log10 Teff, noisier copies, ensemble of 5 networks per label (members: 5)"),
    "gaussian_log_noise_members5": ("ingest", "none", "as mlp_log_noise_members5 with Gaussian NLL networks (uncertainty: gaussian; the mixture's recalibrated median)"),
    "gaussian256_log_noise_members5": ("ingest", "none", "as gaussian_log_noise_members5 with 256-128 networks"),
}
HGB = {"hgb": ("ingest", "HistGradientBoosting on stats + flux, 4000-5600 A"), "hgb_full": ("ingest_full", "HistGradientBoosting, whole range")}


def timed(command: list[str]) -> dict[str, float]:
    """Run ``command``; its wall seconds and peak resident memory (GB), from the child's own rusage."""
    print(" ".join(command), flush=True)
    started = time.perf_counter()
    process = subprocess.Popen(command)
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed ({os.waitstatus_to_exitcode(status)}): {' '.join(command)}")
    return {"wall_s": round(time.perf_counter() - started, 1), "peak_gb": round(usage.ru_maxrss / 1024**2, 2)}


def run_stage(run_dir: Path, stage: str, seed: int, dr10: Path, threads: int, store: Path | None = None) -> dict[str, float]:
    """One stage of the spec for one seed, timed once: a finished stage keeps the timing of the run that
    made it. ``store``: read this store (the first seed's ingest) instead of the stage's own ingest."""
    timing = run_dir / "bench_timings" / f"{stage}.json"  # beside the stage: a file inside it would change its outputs' hashes
    if RunDir(run_dir).is_finished(stage) and timing.exists():
        return json.loads(timing.read_text())
    timing.parent.mkdir(parents=True, exist_ok=True)
    measured = timed(
        [sys.executable, "-m", "specclip_core.cli", "run", SPEC, "--run-dir", str(run_dir), "--quiet", "--threads", str(threads),
         "--set", f"settings.lamost_dr10={dr10}", "--set", f"seed={seed}", "--only", stage]
        + (["--set", f"stages.{stage}.data={{store: {store}}}"] if store else [])
    )
    timing.write_text(json.dumps(measured))
    return measured


SNR_BINS = ((0, 50), (50, 100), (100, np.inf))
"""S/N(g) bins of the test split (the published LAMOST precisions quoted in the issue are at S/N ~ 100)."""


def split_parts(store: SpectralStore, modality: str, errors: str = "none") -> dict[str, tuple[np.ndarray, dict[str, np.ndarray]]]:
    """Split name -> (head inputs, labels and snrg) of the labelled rows, as the heads stage selects and
    builds them (spectra inputs, then the pixel errors of kind ``errors`` unless ``none``)."""
    rows = selected_rows(store, LABELS, {})
    rows = rows[store.observed(modality, rows)]
    split = split_labels(store.ids[rows])

    def inputs(arrays):
        return spectra_inputs(arrays) if errors == "none" else with_errors(spectra_inputs(arrays), arrays, errors)

    return {name: (inputs(store.read(modality, rows[split == name])), store.labels([*LABELS, "snrg"], rows[split == name])) for name in ("train", "val", "test")}


def by_snr(parts: dict, predicted: dict[str, np.ndarray]) -> list[dict]:
    """Test robust sigma per label in each S/N(g) bin."""
    truth = parts["test"][1]
    out = []
    for low, high in SNR_BINS:
        keep = (truth["snrg"] >= low) & (truth["snrg"] < high)
        out.append({"snrg": [low, None if np.isinf(high) else high], "n": int(keep.sum()), **{k: regression_metrics(truth[k][keep], predicted[k][keep])["robust_sigma"] for k in LABELS}})
    return out


def fit_hgb(store_path: Path, modality: str, seed: int, out: Path) -> None:
    """HistGradientBoosting (defaults, one per label) on the training spectra; val and test predictions to ``out``."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    parts = split_parts(SpectralStore.open(store_path), modality)
    (x, y), predicted = parts["train"], {}
    for label in LABELS:
        known = np.isfinite(y[label])
        model = HistGradientBoostingRegressor(random_state=seed).fit(x[known], y[label][known])
        for name in ("val", "test"):
            predicted[f"{name}_{label}"] = model.predict(parts[name][0]).tolist()
    out.write_text(json.dumps(predicted))


def head_predictions(run_dir: Path, stage: str, parts: dict) -> dict[str, dict[str, np.ndarray]]:
    head = load_head(RunDir(run_dir).head(stage))
    return {name: head.predict(parts[name][0]) for name in ("val", "test")}


def scores(parts: dict, predicted: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, dict]]:
    return {name: {label: regression_metrics(parts[name][1][label], predicted[name][label]) for label in LABELS} for name in ("val", "test")}


def summarise(per_seed: list[dict]) -> dict[str, dict[str, dict[str, float]]]:
    """Split -> label -> mean, min, max of robust sigma and mean R^2 over seeds."""
    out: dict = {}
    for split in ("val", "test"):
        out[split] = {}
        for label in LABELS:
            sigma = np.array([s["scores"][split][label]["robust_sigma"] for s in per_seed])
            r2 = np.array([s["scores"][split][label]["r2"] for s in per_seed])
            out[split][label] = {"sigma_mean": float(sigma.mean()), "sigma_min": float(sigma.min()), "sigma_max": float(sigma.max()), "r2_mean": float(r2.mean())}
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", required=True, help="folder of the per-seed run directories")
    parser.add_argument("--dr10", default=str(HERE.parent.parent / "shared" / "data" / "lamost-dr10"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--name", default="precision_lamost")
    parser.add_argument("--hgb-only", nargs=4, metavar=("STORE", "MODALITY", "SEED", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.hgb_only:
        store, modality, seed, out = args.hgb_only
        fit_hgb(Path(store), modality, int(seed), Path(out))
        return 0
    started, load_start = time.perf_counter(), os.getloadavg()
    runs, dr10 = Path(args.runs), Path(args.dr10).resolve()
    ingests = sorted({ROWS[r][0] for r in args.rows} | {v[0] for v in HGB.values()}, key=list(INGESTS).index)
    results: dict = {"rows": {}, "hgb": {}, "ingest": {}}
    first = runs / f"seed{args.seeds[0]}"
    for stage in ingests:  # ingested once: the other seeds' heads read the first seed's stores
        results["ingest"][stage] = run_stage(first, stage, args.seeds[0], dr10, args.threads)
    for name, (ingest, _) in HGB.items():
        out = first / f"{name}_predictions.json"
        timing = out.with_suffix(".timing.json")
        if not out.exists() or not timing.exists():
            timing.write_text(json.dumps(timed([sys.executable, __file__, "--runs", str(runs), "--hgb-only", str(RunDir(first).store(ingest)), INGESTS[ingest], str(args.seeds[0]), str(out)])))
    for row in args.rows:  # every seed of a row before the next row
        for seed in args.seeds:
            run_dir = runs / f"seed{seed}"
            store = None if run_dir == first else RunDir(first).store(ROWS[row][0]).resolve()
            results["rows"].setdefault(row, {"seeds": []})["seeds"].append({"seed": seed, **run_stage(run_dir, row, seed, dr10, args.threads, store)})
    stores = {stage: SpectralStore.open(RunDir(first).store(stage)) for stage in ingests}
    for name, (ingest, description) in HGB.items():
        out = first / f"{name}_predictions.json"
        timing = out.with_suffix(".timing.json")
        parts = split_parts(stores[ingest], INGESTS[ingest])
        saved = json.loads(out.read_text())
        predicted = {split: {label: np.asarray(saved[f"{split}_{label}"]) for label in LABELS} for split in ("val", "test")}
        results["hgb"][name] = {"description": description, **json.loads(timing.read_text()), "scores": scores(parts, predicted), "by_snr": by_snr(parts, predicted["test"])}
    for row in args.rows:
        ingest, errors, description = ROWS[row]
        parts = split_parts(stores[ingest], INGESTS[ingest], errors)
        per_seed = results["rows"][row]["seeds"]
        predictions = []
        for entry in per_seed:
            predicted = head_predictions(runs / f"seed{entry['seed']}", row, parts)
            entry["scores"] = scores(parts, predicted)
            predictions.append(predicted)
        ensemble = {split: {label: np.mean([p[split][label] for p in predictions], axis=0) for label in LABELS} for split in ("val", "test")}
        results["rows"][row].update(description=description, summary=summarise(per_seed), ensemble=scores(parts, ensemble), ensemble_by_snr=by_snr(parts, ensemble["test"]), n={k: len(v[0]) for k, v in parts.items()})
    results["meta"] = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
        "wall_s": round(time.perf_counter() - started, 1),
        "load_start": [round(v, 2) for v in load_start],
        "load_end": [round(v, 2) for v in os.getloadavg()],
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, {args.threads} thread per run",
        "seeds": args.seeds,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(results, indent=1))
    (RESULTS / f"{args.name}.md").write_text(markdown(results))
    print((RESULTS / f"{args.name}.md").read_text())
    return 0


def claimed(row: dict, base: dict, label: str) -> str:
    """The change of the test sigma's mean from ``base``, marked '(not claimed)' when smaller than either row's spread."""
    a, b = row["test"][label], base["test"][label]
    delta = a["sigma_mean"] - b["sigma_mean"]
    spread = max(a["sigma_max"] - a["sigma_min"], b["sigma_max"] - b["sigma_min"])
    return f"{delta:+.3g}" + ("" if abs(delta) > spread else " (not claimed)")


def fmt(value: float) -> str:
    return f"{value:.0f}" if value >= 10 else f"{value:.3f}"


def markdown(results: dict) -> str:
    meta = results["meta"]
    rows, hgb = results["rows"], results["hgb"]
    n = next(iter(rows.values()))["n"] if rows else {}
    lines = [
        "# Precision on real LAMOST DR10 spectra: the ablation (real spectra, LASP labels)",
        "",
        f"`{meta['command']}`, {meta['date']}; {meta['wall_s']:.0f} s in all (finished stages reused from earlier calls keep the timing of the call that ran them); "
        f"{meta['machine']}; load average (1, 5, 15 min) {meta['load_start']} at the start, {meta['load_end']} at the end (the 2 cores are shared with other jobs).",
        "",
        f"Spec `{SPEC}` with seeds {meta['seeds']}; train / val / test = {n.get('train')} / {n.get('val')} / {n.get('test')} spectra, split by obsid (test u >= 0.90).",
        "Cells: robust sigma (biweight scale of the residuals) on the test split, mean over the seeds [min-max], and mean R^2.",
        "HistGradientBoosting is deterministic on these inputs (no early stopping below 10,000 rows, no subsampling): one fit, no spread.",
        "",
        "| row | what changes | " + " | ".join(NAMES[k] for k in LABELS) + " | wall s / run | peak GB |",
        "|---|---|" + "---|" * len(LABELS) + "---|---|",
    ]
    for name, row in rows.items():
        test = row["summary"]["test"]
        cells = [f"{fmt(test[k]['sigma_mean'])} [{fmt(test[k]['sigma_min'])}-{fmt(test[k]['sigma_max'])}] / {test[k]['r2_mean']:.3f}" for k in LABELS]
        wall = np.mean([s["wall_s"] for s in row["seeds"]])
        peak = max(s["peak_gb"] for s in row["seeds"])
        lines.append(f"| {name} | {row['description']} | " + " | ".join(cells) + f" | {wall:.0f} | {peak:.2f} |")
    for name, row in rows.items():
        test = row["ensemble"]["test"]
        lines.append(f"| {name}, ensemble | mean of the {len(row['seeds'])} seeds' predictions (one value) | " + " | ".join(f"{fmt(test[k]['robust_sigma'])} / {test[k]['r2']:.3f}" for k in LABELS) + f" | {sum(s['wall_s'] for s in row['seeds']):.0f} | - |")
    for name, row in hgb.items():
        test = row["scores"]["test"]
        lines.append(f"| {name} | {row['description']} | " + " | ".join(f"{fmt(test[k]['robust_sigma'])} / {test[k]['r2']:.3f}" for k in LABELS) + f" | {row['wall_s']:.0f} | {row['peak_gb']:.2f} |")
    lines += ["| goal | | " + " | ".join(fmt(GOALS[k]) for k in LABELS) + " | | |", ""]
    if "mlp" in rows:
        base = rows["mlp"]["summary"]
        lines += ["Change of the mean test sigma from the baseline row `mlp` (not claimed when smaller than the spread of either row):", "",
                  "| row | " + " | ".join(NAMES[k] for k in LABELS) + " |", "|---|" + "---|" * len(LABELS)]
        for name, row in rows.items():
            if name != "mlp":
                lines.append(f"| {name} | " + " | ".join(claimed(row["summary"], base, k) for k in LABELS) + " |")
        lines.append("")
    lines += ["Validation split (what chooses between rows): mean robust sigma over the seeds, and the ensemble's.", "",
              "| row | " + " | ".join(NAMES[k] for k in LABELS) + " |", "|---|" + "---|" * len(LABELS)]
    for name, row in rows.items():
        val, ens = row["summary"]["val"], row["ensemble"]["val"]
        lines.append(f"| {name} | " + " | ".join(f"{fmt(val[k]['sigma_mean'])} (ensemble {fmt(ens[k]['robust_sigma'])})" for k in LABELS) + " |")
    for name, row in hgb.items():
        lines.append(f"| {name} | " + " | ".join(fmt(row["scores"]["val"][k]["robust_sigma"]) for k in LABELS) + " |")
    lines += ["", "Test robust sigma by S/N(g), Teff (K) / log g / [Fe/H] in each cell: each row's ensemble, and HistGradientBoosting.", "",
              "| row | " + " | ".join(f"S/N {low}-{high or 'inf'} (n {n})" for (low, high), n in ((b["snrg"], b["n"]) for b in next(iter(hgb.values()))["by_snr"])) + " |",
              "|---|" + "---|" * len(SNR_BINS)]
    for name, bins in [*((f"{k}, ensemble", r["ensemble_by_snr"]) for k, r in rows.items()), *((k, r["by_snr"]) for k, r in hgb.items())]:
        lines.append(f"| {name} | " + " | ".join(" / ".join(fmt(b[k]) for k in LABELS) for b in bins) + " |")
    ingest = results["ingest"]
    lines += ["", "Ingest (once; the other seeds read the first seed's stores), wall s / peak GB: " + "; ".join(f"{k} {t['wall_s']:.0f} s / {t['peak_gb']:.2f}" for k, t in ingest.items()), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
