"""Sim-to-real over seeds: the results of several ``bench/sim_to_real.py --seed S --name NAME_seedS``
runs (bench/results/NAME_seedS.json), as mean and spread per label, for one or more simulated stores.

For each NAME: the sim-trained head on the held-out real DR10 stars inside the simulated label range
(and on all held-out stars); where the runs had ``--real-reference``, the real-trained head on the same
stars and the ratio sim / real on them (per seed, and of the means; each store's range picks its own stars). Writes bench/results/OUT.md.

    .venv/bin/python bench/sim_to_real_seeds.py --names sim_to_real_novariety sim_to_real_variety --seeds 0 1 2 --out sim_to_real_seeds
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys

import numpy as np
from sim_common import RESULTS

LABELS = {"teff": ("Teff (K)", "{:.0f}"), "logg": ("logg", "{:.3f}"), "feh": ("[Fe/H]", "{:.3f}")}
SIM = "real LAMOST DR10 (LASP labels)"
REAL = "real LAMOST DR10 (LASP labels), head trained on real DR10 training stars"
SUBSETS = {"inside": "held-out 30%, inside the simulated label range", "held-out": "held-out 30% (never seen by the empirical correction)"}


def sigmas(result: dict, head: str, subset: str) -> dict[str, float] | None:
    if head not in result["metrics"]:
        return None
    return {k: result["metrics"][head][SUBSETS[subset]][k]["robust_sigma"] for k in LABELS}


def spread(values: list[float], form: str) -> str:
    return f"{form.format(np.mean(values))} [{form.format(min(values))}-{form.format(max(values))}]"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--names", nargs="+", required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", default="sim_to_real_seeds")
    args = parser.parse_args()
    runs = {}
    for name in args.names:
        paths = [RESULTS / f"{name}_seed{s}.json" for s in args.seeds]
        missing = [str(p) for p in paths if not p.exists()]
        if missing:
            print(f"missing: {', '.join(missing)} (run bench/sim_to_real.py --seed S --name {name}_seedS)", file=sys.stderr)
            return 1
        runs[name] = [json.loads(p.read_text()) for p in paths]
    lines = [
        "# Sim-to-real over seeds: heads trained on SIMULATED LAMOST-like spectra, on held-out real DR10 spectra",
        "",
        f"`python bench/sim_to_real_seeds.py --names {' '.join(args.names)} --seeds {' '.join(map(str, args.seeds))} --out {args.out}`, "
        f"{datetime.datetime.now():%Y-%m-%d %H:%M}; from bench/results/NAME_seedS.json (each run's command is in its .md).",
        "",
        "Robust sigma, mean over the seeds [lowest-highest]; the seed sets both heads' initialisation and the DR10 twins.",
        "",
        "| store (simulated) | head trained on | stars | " + " | ".join(label for label, _ in LABELS.values()) + " |",
        "|---|---|---|" + "---|" * len(LABELS),
    ]
    references: dict[str, list[dict[str, float]]] = {}  # name -> the real-trained head's sigmas on that name's inside stars, per seed
    for name, results in runs.items():
        for subset in SUBSETS:
            sim = [sigmas(r, SIM, subset) for r in results]
            n = results[0]["metrics"][SIM][SUBSETS[subset]]["teff"]["n"]
            lines.append(f"| {name} | simulated | {n} {subset} | " + " | ".join(spread([s[k] for s in sim], form) for k, (_, form) in LABELS.items()) + " |")
            real = [sigmas(r, REAL, subset) for r in results]
            if all(real):
                if subset == "inside":
                    references[name] = real
                lines.append(f"| {name} | real DR10 training stars | {n} {subset} | " + " | ".join(spread([s[k] for s in real], form) for k, (_, form) in LABELS.items()) + " |")
    if references:
        lines += ["", "Sim-trained over real-trained robust sigma on the same held-out stars inside each store's simulated label range (goal <= 1.5): per seed, and of the means.", ""]
        lines += ["| store (simulated) | " + " | ".join(label for label, _ in LABELS.values()) + " |", "|---|" + "---|" * len(LABELS)]
        for name, results in runs.items():
            if name not in references:
                continue
            real = references[name]
            sim = [sigmas(r, SIM, "inside") for r in results]
            cells = []
            for k in LABELS:
                per_seed = " / ".join(f"{s[k] / q[k]:.2f}" for s, q in zip(sim, real, strict=True))
                cells.append(f"{per_seed}; means {np.mean([s[k] for s in sim]) / np.mean([q[k] for q in real]):.2f}")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    (RESULTS / f"{args.out}.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
