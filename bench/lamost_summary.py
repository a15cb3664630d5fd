"""Summarise finished LAMOST runs (the catalogue's lamost-small spec and variants).

For each run directory:

- every heads stage scored on the **validation** split (what tuning may look at: the head is
  reloaded and applied to the validation rows) and on the **test** split (the stage's own
  test_predictions.csv), robust sigma (Tukey biweight scale) and R^2, with 16-84 % bootstrap
  intervals on the test split (2,000 resamples of the test rows);
- a linear probe: the core's ridge head on the encoder's embeddings (penalty chosen on validation);
- the pretraining curve (best validation masked MSE, epochs, throughput);
- the neighbours stages (repeat visits), if any;
- one figure of one-to-one plots (labels x heads stages) of the first run.

Usage (from the repository root):
    python bench/lamost_summary.py runs/lamost-small [more runs ...] -o bench/results/lamost_small
writes OUT.md, OUT.json and OUT.png.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
from pathlib import Path

import numpy as np
from astropy.stats import biweight_scale
from sklearn.metrics import r2_score

from specclip_core.data.splits import split_labels
from specclip_core.data.store import SpectralStore
from specclip_core.heads.inputs import embed_rows, head_inputs
from specclip_core.heads.linear import RidgeHead
from specclip_core.heads.metrics import regression_metrics
from specclip_core.heads.saved import load_head
from specclip_core.interfaces import LabelledInputs
from specclip_core.nn.embedders import load_embedder
from specclip_core.rundir import encoder_dir, read_predictions
from specclip_core.stages.heads import selected_rows

LABELS = ["teff", "logg", "feh"]
UNITS = {"teff": "K", "logg": "dex", "feh": "dex"}


def bootstrap(truth: np.ndarray, predicted: np.ndarray, n: int = 2000, seed: int = 0) -> dict[str, list[float]]:
    keep = np.isfinite(truth) & np.isfinite(predicted)
    truth, predicted = truth[keep], predicted[keep]
    rng = np.random.default_rng(seed)
    sigmas, r2s = [], []
    for _ in range(n):
        pick = rng.integers(0, truth.size, truth.size)
        sigmas.append(biweight_scale(predicted[pick] - truth[pick]))
        r2s.append(r2_score(truth[pick], predicted[pick]))
    return {"robust_sigma_16_84": np.percentile(sigmas, [16, 84]).tolist(), "r2_16_84": np.percentile(r2s, [16, 84]).tolist()}


def manifests(run: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sorted(run.glob("*/manifest.json"))}


def store_of(run: Path, manifest: dict) -> SpectralStore:
    import yaml

    spec = yaml.safe_load((run / "spec.yaml").read_text())
    stage = spec["stages"][manifest["stage"]]
    data = stage.get("data") or spec["data"]
    if "store" in data:
        return SpectralStore.open(data["store"])
    return SpectralStore.open(run / data["stage"] / "store.zarr")


def score_heads(run: Path, name: str, manifest: dict) -> dict:
    settings = manifest["settings"]
    store = store_of(run, manifest)
    labels = settings["labels"]
    rows = selected_rows(store, labels, {})
    split = split_labels(store.ids[rows])
    val_rows = rows[split == "val"]
    info = json.loads((run / name / "head" / "inputs.json").read_text())
    encoder = load_embedder(encoder_dir(run / info["encoder_stage"], info["modality"])) if info["input"] == "embedding" else None
    inputs = head_inputs(info["input"], store, info["modality"], val_rows, encoder, progress=False)
    head = load_head(run / name / "head")
    predicted = head.predict(inputs)
    truth_val = store.labels(labels, val_rows)
    truth, test_predicted = read_predictions(run / name / "test_predictions.csv")
    out = {"input": info["input"], "head": info["head"], "encoder_stage": info["encoder_stage"], "val": {}, "test": {}}
    for label in labels:
        out["val"][label] = regression_metrics(truth_val[label], predicted[label])
        out["test"][label] = regression_metrics(truth[label], test_predicted[label]) | bootstrap(truth[label], test_predicted[label])
    out["test_predictions"] = {label: (truth[label].tolist(), test_predicted[label].tolist()) for label in labels}
    return out


def linear_probe(run: Path, pretrain: str, store: SpectralStore, modality: str) -> dict:
    rows = selected_rows(store, LABELS, {})
    split = split_labels(store.ids[rows])
    x = embed_rows(load_embedder(encoder_dir(run / pretrain, modality)), store, rows, progress=False)
    parts = {s: LabelledInputs(x[split == s], store.labels(LABELS, rows[split == s]), store.ids[rows[split == s]]) for s in ("train", "val", "test")}
    head = RidgeHead()
    head.fit(parts["train"], parts["val"], Path("/tmp"))
    result = {"alpha": head.alpha}
    for s in ("val", "test"):
        predicted = head.predict(parts[s].inputs)
        result[s] = {label: regression_metrics(parts[s].labels[label], predicted[label]) for label in LABELS}
    return result


def pretrain_curve(run: Path, name: str) -> dict:
    with open(run / name / "training" / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    val = [float(r["val_loss"]) for r in rows]
    best = int(np.argmin(val))
    summary = manifests(run)[name]["summary"]
    return {
        "epochs": len(rows),
        "best_epoch": best + 1,
        "best_val_masked_mse": val[best],
        "final_train_loss": float(rows[-1]["train_loss"]),
        "spectra_per_s": summary.get("spectra_per_second"),
        "peak_memory_mb": summary.get("peak_memory_mb"),
        "n_train": summary.get("n_train"),
        "n_val": summary.get("n_val"),
        "parameters": summary.get("n_parameters"),
        "seconds": summary.get("seconds"),
        "settings": manifests(run)[name]["settings"],
    }


def fmt(entry: dict) -> str:
    sigma = entry["robust_sigma"]
    text = f"{sigma:.0f}" if sigma >= 100 else f"{sigma:.3f}"
    return f"{text} / {entry['r2']:.3f}"


def fmt_interval(entry: dict) -> str:
    lo, hi = entry["robust_sigma_16_84"]
    r_lo, r_hi = entry["r2_16_84"]
    s = (lambda v: f"{v:.0f}") if entry["robust_sigma"] >= 100 else (lambda v: f"{v:.3f}")
    return f"{fmt(entry)} ({s(lo)}-{s(hi)}; {r_lo:.3f}-{r_hi:.3f})"


def figure(run_name: str, heads: dict, out_png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(heads)
    fig, axes = plt.subplots(len(LABELS), len(names), figsize=(3.2 * len(names), 3.2 * len(LABELS)), dpi=110, squeeze=False)
    for i, label in enumerate(LABELS):
        for j, name in enumerate(names):
            truth, predicted = (np.asarray(v) for v in heads[name]["test_predictions"][label])
            ax = axes[i, j]
            lo, hi = np.percentile(np.concatenate([truth, predicted]), [0.5, 99.5])
            pad = 0.05 * (hi - lo)
            ax.scatter(truth, predicted, s=6, alpha=0.6)
            ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], "k--", lw=0.8)
            ax.set(xlim=(lo - pad, hi + pad), ylim=(lo - pad, hi + pad))
            m = heads[name]["test"][label]
            ax.text(0.04, 0.96, f"$\\sigma$={fmt(m).split(' / ')[0]}\n$R^2$={m['r2']:.3f}\nN={m['n']}", transform=ax.transAxes, va="top", fontsize=8)
            if i == 0:
                ax.set_title(f"{name}\n({heads[name]['head']} on {heads[name]['input']})", fontsize=9)
            if j == 0:
                ax.set_ylabel(f"predicted {label} [{UNITS[label]}]")
            ax.set_xlabel(f"LASP {label} [{UNITS[label]}]")
    fig.suptitle(f"{run_name}: test split (real LAMOST DR10)", fontsize=10)
    fig.tight_layout()
    fig.savefig(out_png)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args()
    report: dict = {"load_average": os.getloadavg(), "runs": {}}
    md = [f"# LAMOST runs summary\n\nWritten by `bench/lamost_summary.py {' '.join(map(str, args.runs))}` (load average at the end {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores).\n"]
    for run in args.runs:
        found = manifests(run)
        entry: dict = {"heads": {}, "pretrain": {}, "linear_probe": {}, "neighbours": {}}
        for name, manifest in found.items():
            if manifest["kind"] == "heads":
                entry["heads"][name] = score_heads(run, name, manifest)
            elif manifest["kind"] == "pretrain":
                entry["pretrain"][name] = pretrain_curve(run, name)
                store = store_of(run, manifest)
                entry["linear_probe"][name] = linear_probe(run, name, store, manifest["summary"]["modality"])
            elif manifest["kind"] == "neighbours":
                entry["neighbours"][name] = manifest["summary"]
        report["runs"][str(run)] = entry
        md.append(f"\n## {run}\n")
        for name, curve in entry["pretrain"].items():
            t = curve["settings"].get("train", {})
            md.append(
                f"- `{name}`: {curve['parameters'] / 1e6:.2f}M parameters, {curve['n_train']} train / {curve['n_val']} val spectra, "
                f"lr {t.get('lr')}, batch {t.get('batch_size')}, {curve['epochs']} epochs (best {curve['best_epoch']}), "
                f"best val masked MSE {curve['best_val_masked_mse']:.4f}, {curve['spectra_per_s']:.1f} spectra/s, {curve['seconds'] / 60:.1f} min"
            )
        md.append("\n| stage | head on | split | " + " | ".join(f"{label} sigma / R^2" for label in LABELS) + " |")
        md.append("|---|---|---|" + "---|" * len(LABELS))
        for name, h in entry["heads"].items():
            md.append(f"| {name} | {h['head']} on {h['input']} | val | " + " | ".join(fmt(h["val"][label]) for label in LABELS) + " |")
            md.append(f"| {name} | {h['head']} on {h['input']} | test | " + " | ".join(fmt_interval(h["test"][label]) for label in LABELS) + " |")
        for name, probe in entry["linear_probe"].items():
            for s in ("val", "test"):
                md.append(f"| linear probe of {name} | ridge on embedding | {s} | " + " | ".join(fmt(probe[s][label]) for label in LABELS) + " |")
        md.append("\nsigma: Tukey biweight scale of residuals (K for teff, dex otherwise); test cells add the 16-84 % bootstrap interval of sigma; R^2.\n")
        for name, result in entry["neighbours"].items():
            cells = ", ".join(f"{k}: {v['fraction']:.3f} of {v['n_spectra']} ({v['n_groups']} groups)" for k, v in result.items() if isinstance(v, dict) and "fraction" in v)
            md.append(f"- neighbours `{name}` ({result.get('grouping', '')}): {cells}")
    first = str(args.runs[0])
    heads = report["runs"][first]["heads"]
    if heads:
        figure(Path(first).name, heads, args.output.with_suffix(".png"))
        md.append(f"\nOne-to-one plots of {first}: `{args.output.with_suffix('.png').name}`.\n")
    for run in report["runs"].values():
        for h in run["heads"].values():
            h.pop("test_predictions")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.with_suffix(".json").write_text(json.dumps(report, indent=2, default=float))
    args.output.with_suffix(".md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
