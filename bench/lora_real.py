"""Real adaptation: the LAMOST model trained on SIMULATED LAMOST-like spectra, adapted on 100, 200 and
500 REAL LAMOST DR10 spectra (LASP labels), against models trained from scratch on the same stars and
scikit-learn HistGradientBoosting on the same draw and on every real training spectrum.

The base is registry/src/specclip_registry/specs/lora-lamost-real.yaml (the quickstart's simulate,
pretrain, align and LAMOST heads stages, plus the DR10 ingest). This script writes a spec that extends
it with one finetune stage per (method, size), runs it (finished stages are reused), and collects
each stage's metrics.json. The draw: the first N of a seed-fixed permutation of the DR10 train split
(by obsid); early stopping on N/10 stars of the val split; the fixed test set is the test split.

    .venv/bin/python bench/lora_real.py --run-dir /work/runs-lora/lora-real [--data-store STORE]
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import time
from pathlib import Path

import matplotlib
import yaml
from sklearn.ensemble import HistGradientBoostingRegressor

from specclip_core.data.splits import split_labels
from specclip_core.data.store import SpectralStore
from specclip_core.heads.inputs import spectra_inputs
from specclip_core.heads.metrics import regression_metrics
from specclip_core.stages.finetune import draw
from specclip_core.stages.heads import selected_rows

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = Path(__file__).parent
RESULTS = HERE / "results"
REGISTRY_SPEC = HERE.parent / "registry" / "src" / "specclip_registry" / "specs" / "lora-lamost-real.yaml"
LABELS = ["teff", "logg", "feh"]
FROM_BASE = {"feh": "fe_h"}
SEED = 0
UNLABELLED = 1836  # every DR10 spectrum of the train split, labels unused, adapts the encoder adapter first
# each base heads stage with the quickstart stages it is made from
BASES = {
    "heads_lamost_raw": ["simulate", "heads_lamost_raw"],
    "heads_lamost_pretrained": ["simulate", "pretrain_lamost", "heads_lamost_pretrained"],
    "heads_lamost_aligned": ["simulate", "pretrain_xp", "pretrain_lamost", "align", "heads_lamost_aligned"],
}
# method name -> (base heads stage, adapters), in the order they run
METHODS = {
    "lora_ae+lora2": ("heads_lamost_pretrained", ["lora_ae", "lora2"]),
    "lora_ae+lora2, unlabelled": ("heads_lamost_pretrained", ["lora_ae", "lora2"]),
    "lora2": ("heads_lamost_pretrained", ["lora2"]),
    "head": ("heads_lamost_pretrained", ["head"]),
    "full": ("heads_lamost_pretrained", ["full"]),
    "scratch": ("heads_lamost_pretrained", ["scratch"]),
    "lora4 (aligned)": ("heads_lamost_aligned", ["lora4"]),
    "lora_ae+lora3+lora4 (aligned)": ("heads_lamost_aligned", ["lora_ae", "lora3", "lora4"]),
    "spectra MLP: full": ("heads_lamost_raw", ["full"]),
    "spectra MLP: scratch": ("heads_lamost_raw", ["scratch"]),
    "spectra MLP: lora2": ("heads_lamost_raw", ["lora2"]),
}


def stage_name(method: str, n: int | str, seed: int = SEED, members: int = 1) -> str:
    name = f"ft_{''.join(c if c.isalnum() else '_' for c in method)}_{n}".replace("__", "_")
    return name + (f"_m{members}" if members > 1 else "") + (f"_s{seed}" if seed != SEED else "")


def size(text: str) -> int | str:
    """A --sizes value: a number of labelled stars, or "all" (every train-split star)."""
    return text if text == "all" else int(text)


def run_stages(spec_path: Path, run_dir: Path, threads: int, dr10: Path, only: list[str]) -> None:
    """``specclip run SPEC --only STAGES`` in its own process, the DR10 folder given as the spec's setting."""
    command = [sys.executable, "-m", "specclip_core.cli", "run", str(spec_path), "--run-dir", str(run_dir), "--quiet",
               "--threads", str(threads), "--set", f"settings.lamost_dr10={dr10}", "--only", *only]
    print(" ".join(command), flush=True)
    subprocess.run(command, check=True)


def hgb_metrics(store: SpectralStore, sizes: list[int]) -> dict[str, dict]:
    """HistGradientBoosting (defaults, one per label) on stats + flux of the same draws, and of the whole train split."""
    rows = selected_rows(store, LABELS, {})
    split = split_labels(store.ids[rows])
    test = rows[split == "test"]
    x_test = spectra_inputs(store.read("lamost_lrs", test))
    truth = store.labels(LABELS, test)
    out = {}
    for n in [*(n for n in sizes if n != "all"), None]:
        train = draw(rows[split == "train"], n, SEED, "n_labelled")
        x, y = spectra_inputs(store.read("lamost_lrs", train)), store.labels(LABELS, train)
        started = time.perf_counter()
        metrics = {}
        for label in LABELS:
            model = HistGradientBoostingRegressor(random_state=SEED).fit(x, y[label])
            metrics[label] = regression_metrics(truth[label], model.predict(x_test))
        out["all" if n is None else str(n)] = {"n_train": len(train), "seconds": round(time.perf_counter() - started, 1), "test": metrics}
        print(f"HGB on {len(train)}: " + ", ".join(f"{k} {m['robust_sigma']:.3g}" for k, m in metrics.items()), flush=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--run-dir", required=True)
    parser.add_argument(
        "--dr10", default=str(HERE.parent.parent / "shared" / "data" / "lamost-dr10"), help="the DR10 folder (spectra/, labels.csv)"
    )
    parser.add_argument("--data-store", help="an already ingested DR10 store to adapt on, instead of the spec's ingest_dr10 stage")
    parser.add_argument("--sizes", type=size, nargs="+", default=[100, 200, 500], help="labelled stars per draw, or all")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seeds", type=int, nargs="+", default=[SEED], help="the finetune stages' seeds: one draw (and training) each")
    parser.add_argument("--loss", default="mse", choices=["mse", "huber", "l1"], help="the finetune stages' loss")
    parser.add_argument("--noise-augment", type=float, default=0.0, help="the finetune stages' noise_augment")
    parser.add_argument("--members", type=int, default=1, help="the finetune stages' members (an ensemble of adapters)")
    parser.add_argument("--name", default="lora_real")
    parser.add_argument("--base-spec", default=str(REGISTRY_SPEC.resolve()), help="the spec the grid extends (a path or a registered name, e.g. lora-lamost-real-whole)")
    parser.add_argument(
        "--hgb-from",
        help="take the HistGradientBoosting figures from an earlier result (bench/results/NAME.json) instead of refitting them",
    )
    args = parser.parse_args()
    started = time.perf_counter()
    run_dir = Path(args.run_dir)
    data = {"store": str(Path(args.data_store).resolve())} if args.data_store else {"stage": "ingest_dr10"}
    grid = {stage_name(m, n, seed, args.members): (m, n, seed) for m in args.methods for n in args.sizes for seed in args.seeds}
    stages = {}
    for name, (method, n, seed) in grid.items():
        base, adapters = METHODS[method]
        stages[name] = {
            "kind": "finetune",
            "base": base,
            "data": data,
            "adapters": adapters,
            "labels": LABELS,
            "from_base": FROM_BASE,
            "n_labelled": None if n == "all" else n,
            "seed": seed,
            "members": args.members,
            "loss": args.loss,
            "noise_augment": args.noise_augment,
        }
        if "unlabelled" in method:
            stages[name]["unlabelled"] = UNLABELLED
    spec = {"extends": args.base_spec, "name": "lora-lamost-real-grid", "stages": stages}
    run_dir.mkdir(parents=True, exist_ok=True)
    spec_path = run_dir.parent / f"{run_dir.name}.grid.yaml"
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False))
    bases = dict.fromkeys(stage for m in args.methods for stage in BASES[METHODS[m][0]])
    only = list(bases) + ([] if args.data_store else ["ingest_dr10"]) + list(grid)
    run_stages(spec_path, run_dir, args.threads, args.dr10, only)

    store = SpectralStore.open(args.data_store or run_dir / "ingest_dr10" / "store.zarr")
    hgb = json.loads(Path(args.hgb_from).read_text())["hgb"] if args.hgb_from else hgb_metrics(store, args.sizes)
    results = {
        name: {"method": m, "n": n, "seed": seed, **json.loads((run_dir / name / "metrics.json").read_text())}
        for name, (m, n, seed) in grid.items()
    }
    for summary in results.values():
        summary.pop("fit", None)
    base_manifest = {
        b: json.loads((run_dir / b / "manifest.json").read_text())["summary"] for b in dict.fromkeys(METHODS[m][0] for m in args.methods)
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(
        json.dumps({"finetune": results, "hgb": hgb, "bases_simulated_test": {b: s["test"] for b, s in base_manifest.items()}}, indent=1)
    )
    write_markdown(args, results, hgb, time.perf_counter() - started)
    plot(args, results, hgb)
    return 0


def cell(m: dict) -> str:
    return f"{m['robust_sigma']:.3g} / {m['r2']:.2f}"


def seeds_cell(runs: list[dict], label: str) -> str:
    """Robust sigma / R^2 of one run, or their means over the runs (seeds) with the robust sigmas' range."""
    if len(runs) == 1:
        return cell(runs[0]["test"][label])
    sigmas = [r["test"][label]["robust_sigma"] for r in runs]
    r2 = sum(r["test"][label]["r2"] for r in runs) / len(runs)
    return f"{sum(sigmas) / len(sigmas):.3g} [{min(sigmas):.3g}-{max(sigmas):.3g}] / {r2:.2f}"


def grouped(results: dict) -> dict[tuple[str, int], list[dict]]:
    """(method, n) -> its runs, one per seed."""
    groups: dict[tuple[str, int], list[dict]] = {}
    for r in results.values():
        groups.setdefault((r["method"], r["n"]), []).append(r)
    return groups


def write_markdown(args, results: dict, hgb: dict, seconds: float) -> None:
    zero = next(iter(results.values()))
    options = (
        (f" --seeds {' '.join(map(str, args.seeds))}" if args.seeds != [SEED] else "")
        + (f" --loss {args.loss}" if args.loss != "mse" else "")
        + (f" --noise-augment {args.noise_augment:g}" if args.noise_augment else "")
        + (f" --members {args.members}" if args.members > 1 else "")
    )
    several = len(args.seeds) > 1
    lines = [
        "# Real adaptation: the LAMOST model trained on SIMULATED spectra, adapted on REAL LAMOST DR10 spectra",
        "",
        f"`python bench/lora_real.py --run-dir {args.run_dir}{' --data-store ' + args.data_store if args.data_store else ''} --sizes {' '.join(map(str, args.sizes))}"
        f"{' --methods ' + ' '.join(repr(m) for m in args.methods) if args.methods != list(METHODS) else ''}{' --name ' + args.name if args.name != 'lora_real' else ''}"
        f"{' --base-spec ' + args.base_spec if args.base_spec != str(REGISTRY_SPEC.resolve()) else ''}{options}"
        f"{' --hgb-from ' + args.hgb_from if args.hgb_from else ''}`{' (gradient-boosting figures from that earlier run of this script)' if args.hgb_from else ''}, "
        f"{datetime.datetime.now():%Y-%m-%d %H:%M}; {seconds:.0f} s in all on 2 shared CPU cores ({args.threads} thread).",
        "",
        f"Test set: the {zero['n_rows']['test']} DR10 spectra of the test split (by obsid), LASP labels; robust sigma (biweight scale) / R^2.",
        "Zero-shot: the base model as trained on SIMULATED spectra (APOGEE labels), unadapted. "
        f"Finetune loss {args.loss}, noise_augment {args.noise_augment:g}, members {args.members}.",
        *(
            [
                f"Each row: the mean over {len(args.seeds)} seeds ({', '.join(map(str, args.seeds))}: each its own draw of the labelled "
                "and validation stars and its own training) [lowest-highest]; gradient boosting on the same stars is the seed-0 draw's."
            ]
            if several
            else []
        ),
        "",
    ]
    groups = grouped(results)
    for n in args.sizes:
        lines += [
            f"## {n} real labelled spectra",
            "",
            "| method | base | trainable params | wall s | Teff (K) | logg | [Fe/H] |",
            "|---|---|---|---|---|---|---|",
        ]
        for (method, size), runs in groups.items():
            if size == n:
                wall = sum(r["wall_seconds"] for r in runs) / len(runs)
                lines.append(
                    f"| {method} | {runs[0]['base']} | {runs[0]['trainable_parameters']:,} | {wall:.0f} | "
                    + " | ".join(seeds_cell(runs, k) for k in LABELS)
                    + " |"
                )
        h = hgb[str(n)]
        lines.append(
            f"| HistGradientBoosting, same {n}{' (seed-0 draw)' if several else ''} | - | - | {h['seconds']:.0f} | "
            + " | ".join(cell(h["test"][k]) for k in LABELS)
            + " |"
        )
        lines.append("")
    h = hgb["all"]
    lines += [
        f"HistGradientBoosting on all {h['n_train']} real training spectra: "
        + ", ".join(f"{k} {cell(h['test'][k])}" for k in LABELS)
        + f" ({h['seconds']:.0f} s).",
        "",
        "Zero-shot (unadapted base) on the same test set: "
        + "; ".join(
            f"{b}: " + ", ".join(f"{k} {cell(r['zero_shot'][k])}" for k in LABELS)
            for b, r in {r["base"]: r for r in results.values()}.items()
        ),
        "",
        f"![robust sigma against labelled stars]({args.name}.png)",
        "",
    ]
    (RESULTS / f"{args.name}.md").write_text("\n".join(lines))
    print("\n".join(lines))


def plot(args, results: dict, hgb: dict) -> None:
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    groups = grouped(results)
    methods = list(dict.fromkeys(method for method, _ in groups))
    for ax, label in zip(axes, LABELS):
        for method in methods:
            points = sorted(
                (runs[0]["n_rows"]["train"], sum(r["test"][label]["robust_sigma"] for r in runs) / len(runs))
                for (m, _), runs in groups.items()
                if m == method
            )
            ax.plot(*zip(*points), marker="o", label=method)
        same = [hgb[str(n)] for n in args.sizes]
        ax.plot([h["n_train"] for h in same], [h["test"][label]["robust_sigma"] for h in same], "k--", marker="s", label="HGB, same stars (seed-0 draw)")
        ax.axhline(hgb["all"]["test"][label]["robust_sigma"], color="k", lw=1, label=f"HGB, all {hgb['all']['n_train']}")
        ax.set_xscale("log")
        ax.set_xlabel("real labelled DR10 spectra")
        ax.set_ylabel(f"robust sigma of {label}")
        ax.set_title(label)
    axes[0].legend(fontsize=7)
    fig.suptitle("Base trained on SIMULATED LAMOST spectra, adapted on REAL DR10 spectra (test split)", fontsize=10)
    fig.tight_layout()
    fig.savefig(RESULTS / f"{args.name}.png", dpi=80)


if __name__ == "__main__":
    sys.exit(main())
