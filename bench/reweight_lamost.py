"""Simulated LAMOST bases for the real-LAMOST model: weighted to DR10's mix, or fitting sim_fe_h (issue 13)

`lora-lamost-real-robust` trains its LAMOST spectra head on the SIMULATED twins of the apogee-xp
stars (63% giants) and adapts it with LoRA on the real DR10 training spectra (7% giants).
`heads_lamost_raw_dr10mix` is the same head with its training stars weighted so that their
(Teff, log g) follow the real DR10 training stars' (heads ``reweight``); `heads_lamost_raw_simfeh`
the same head with [Fe/H] trained on ``sim_fe_h``, the value each simulated spectrum was made with
(APOGEE's ``fe_h`` is missing for every star above 7000 K). The finetune stages
``lora2_all_gaussian_members5_holdout_{dr10mix,simfeh}`` adapt them as the shipped ``lamost-dr10-lora``
recipe adapts the unweighted base; `heads_lamost_raw_seed1` and `_seed2` (the unweighted base retrained from
other seeds) and its adaptation are the control that says how much a base's retraining alone moves
the adapted figures.

The choice is made on real spectra the adaptation never scores: each base's zero-shot robust sigma
(biweight scale, LASP labels) on the real DR10 **train and validation** splits (the bases never saw
a real spectrum; the weights used only the train split's labels). The test split is then reported
for the adapted models of both bases, over the finetune seeds given.

    .venv/bin/python bench/reweight_lamost.py --run RUNS/lora-robust \
        --adapted 'unweighted=RUNS/holdout-seed0,RUNS/holdout-seed1,RUNS/holdout-seed2' \
        --adapted 'dr10mix=RUNS/dr10mix-seed0,RUNS/dr10mix-seed1,RUNS/dr10mix-seed2'
"""

from __future__ import annotations

import argparse
import datetime
import json
import tempfile
from pathlib import Path

import numpy as np
from trust_ood import dr10_predicted

from specclip_core.data.splits import split_labels
from specclip_core.heads.metrics import robust_sigma

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "data"
LABELS = ("teff", "logg", "feh")  # LASP columns
FITTED = {"teff": "teff", "logg": "logg", "feh": "fe_h"}  # LASP column -> the simulated head's label
# base name -> (heads stage, its label for each LASP column)
BASES = {
    "unweighted": ("heads_lamost_raw", FITTED),
    "dr10mix": ("heads_lamost_raw_dr10mix", FITTED),
    "simfeh": ("heads_lamost_raw_simfeh", {**FITTED, "feh": "sim_fe_h"}),
    "unweighted, base seed 1": ("heads_lamost_raw_seed1", FITTED),
    "unweighted, base seed 2": ("heads_lamost_raw_seed2", FITTED),
}


def zero_shot(run: Path, stage: str, trained: dict[str, str], dr10: Path, out_dir: Path) -> dict[str, dict[str, float]]:
    table, truth = dr10_predicted(run, stage, dr10, out_dir)
    split = split_labels(np.asarray(table["id"]).astype(str))
    figures = {}
    for part in ("train", "val"):
        chosen = split == part
        figures[part] = {"n": int(chosen.sum())} | {
            lasp: robust_sigma(np.asarray(table[label], dtype=float)[chosen] - np.asarray(truth[lasp], dtype=float)[chosen]) for lasp, label in trained.items()
        }
    return figures


def zero_shots(run: Path, dr10: Path) -> dict[str, dict[str, dict[str, float]]]:
    with tempfile.TemporaryDirectory() as work:
        return {name: zero_shot(run, stage, trained, dr10, Path(work)) for name, (stage, trained) in BASES.items() if (run / stage / "manifest.json").exists()}


def adapted_test(directories: list[Path]) -> dict[str, list[float]]:
    metrics = [json.loads((d / "metrics.json").read_text()) for d in directories]
    return {label: [m["test"][label]["robust_sigma"] for m in metrics] for label in LABELS}


def weights_summary(run: Path) -> dict:
    manifest = json.loads((run / "manifest.json").read_text())
    return manifest["stages"][BASES["dr10mix"][0]]["summary"].get("reweight", {})


def _cell(values: list[float], digits: int) -> str:
    return f"{np.mean(values):.{digits}f} [{min(values):.{digits}f}-{max(values):.{digits}f}]" if len(values) > 1 else f"{values[0]:.{digits}f}"


def markdown(result: dict) -> str:
    digits = {"teff": 1, "logg": 3, "feh": 3}
    lines = ["# Simulated LAMOST bases (unweighted; weighted to DR10's mix; [Fe/H] from sim_fe_h), then LoRA on real DR10 (bench/reweight_lamost.py)", "", result["note"], ""]
    w = result["weights"]
    if w:
        lines += [f"Weights of the {w['train']['n']} SIMULATED training stars (to {w['like_stars']} real DR10 training stars' Teff, log g): effective number {w['train']['effective_n']:.0f}, largest {w['train']['max_weight']:.1f}.", ""]
    lines += ["## Zero-shot on real DR10 (choice made here: train and validation splits)", "", "| base | split | stars | Teff (K) | log g | [Fe/H] |", "|---|---|---|---|---|---|"]
    for base, splits in result["zero_shot"].items():
        for part, f in splits.items():
            lines.append(f"| {base} | {part} | {f['n']} | {f['teff']:.1f} | {f['logg']:.3f} | {f['feh']:.3f} |")
    lines += ["", "## Adapted (LoRA, 5 members, Gaussian spreads, held-out recalibration) on the real DR10 test split", "", "| base | seeds | Teff (K) | log g | [Fe/H] |", "|---|---|---|---|---|"]
    for base, figures in result["adapted_test"].items():
        lines.append(f"| {base} | {len(figures['teff'])} | " + " | ".join(_cell(figures[k], digits[k]) for k in LABELS) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="the lora-lamost-real-robust run with both base heads stages")
    parser.add_argument("--dr10", type=Path, default=SHARED / "lamost-dr10")
    parser.add_argument("--adapted", action="append", default=[], help="NAME=DIR,DIR,...: finished finetune stage directories (one per seed)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "reweight_lamost")
    args = parser.parse_args()
    adapted = {}
    for entry in args.adapted:
        name, directories = entry.split("=", 1)
        adapted[name] = adapted_test([Path(d) for d in directories.split(",")])
    result = {
        "note": f"{datetime.datetime.now():%Y-%m-%d %H:%M}; bases trained on SIMULATED spectra (APOGEE labels), scored on REAL DR10 spectra (LASP labels); robust sigma = biweight scale.",
        "weights": weights_summary(args.run),
        "zero_shot": zero_shots(args.run, args.dr10),
        "adapted_test": adapted,
    }
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2))
    args.out.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
