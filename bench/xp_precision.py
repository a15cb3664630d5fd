"""The Gaia XP precision study (issue 13): every row of the ablation table over 3 seeds.

Each row is a heads stage of the registered spec ``xp-precision`` (a setting changed against the
base row, never copied code). The encoder stages (the OAE's pretraining, the photometry store and
its join with the spectra) run once, in one run directory; each row then runs once per seed, its
heads trained from the run's seed + ``seed_offset`` (``--set stages.ROW.seed_offset=N``), one
``specclip run xp-precision --only ROW`` process each, so that its wall time and peak memory (max
RSS of the process, from ``os.wait4``) are its own. The finished stage directory of each (row, seed)
is copied to ``<runs>/rows/<row>/seed-<N>/`` before the next seed overwrites it; a pair already
there is not run again (``--redo`` reruns it). The spread over seeds is thus that of the heads'
initialisation and shuffling on one pretrained encoder (pretraining seed 0).

The table: per row and label, the mean and spread (standard deviation over seeds) of the robust
sigma (Tukey biweight scale of the residuals) and of R^2, on the validation split (on which every
choice is made) and on the test split (reported, never tuned on), and the change of the mean
against the base row, claimed only when larger than the spread of both rows.

    nice -n 10 .venv/bin/python bench/xp_precision.py --runs /work/runs-precxp   # -> bench/results/xp_precision.md/.json
    .venv/bin/python bench/xp_precision.py --runs DIR --table-only                # rewrite the table from finished rows
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from specclip_core.spec import load_spec
from specclip_core.util import atomic_write_text

SPEC = "xp-precision"
LABELS = ("teff", "logg", "fe_h", "alpha_m")
GOALS = {"teff": 80.0, "logg": 0.13, "fe_h": 0.085, "alpha_m": 0.042}
BASE = "gaussian"
ROWS = {
    "gaussian": ("XP only", "base: Gaussian MLP (xp-trust's heads_mlp_gaussian)"),
    "point": ("XP only", "point-estimate MLP (MSE), joint 256-128"),
    "gaussian_photometry": ("XP + photometry", "+ photometry modality (5 colours + mean magnitude, specclip-phot)"),
    "gaussian_errors_input": ("XP only", "+ per-pixel flux errors as inputs"),
    "gaussian_label_errors": ("XP only", "+ APOGEE label errors in the likelihood"),
    "gaussian_ensemble": ("XP only", "ensemble of 3 Gaussian MLPs (mixture)"),
    "gaussian_log": ("XP only", "fits log10 Teff (log_labels)"),
    "gaussian_photometry_ensemble": ("XP + photometry", "+ photometry, ensemble of 3"),
}
"""Row (heads stage) -> (inputs column, what it changes); also the order they run in."""
RESULTS = Path(__file__).resolve().parent / "results"


ENCODER_STAGES = ("pretrain", "photometry", "join_photometry")


def run_stage(run_dir: Path, stage: str, settings: list[str]) -> dict[str, float]:
    """Run one stage of the spec in its own process; its wall seconds, peak RSS (MB) and whether it was reused."""
    command = [str(Path(sys.executable).parent / "specclip"), "run", SPEC, "--run-dir", str(run_dir), "--only", stage, "--resume", "--quiet"]
    for setting in settings:
        command += ["--set", setting]
    started = time.time()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code:
        raise SystemExit(f"{shlex.join(command)} failed ({code}):\n{output[-4000:]}")
    return {"wall_s": round(time.time() - started, 1), "peak_mb": round(usage.ru_maxrss / 1024, 1), "reused": f"[{stage}] reused" in output}


def manifest(stage_dir: Path) -> dict:
    return json.loads((stage_dir / "manifest.json").read_text())


def row_dir(runs: Path, row: str, seed: int) -> Path:
    return runs / "rows" / row / f"seed-{seed}"


def read_ledger(runs: Path) -> dict:
    path = runs / "measurements.json"
    return json.loads(path.read_text()) if path.exists() else {}


def measure(runs: Path, seeds: list[int], rows: list[str], redo: bool, run_dir: Path) -> dict:
    """Run the encoder stages once and every (row, seed) in ``run_dir``; the ledger of wall times and
    peak memory. A ``run_dir`` other than ``<runs>/xp-precision`` (a second process beside the first)
    links the first's finished pretraining instead of pretraining again."""
    main = runs / SPEC
    if run_dir != main and (main / "pretrain" / "manifest.json").exists() and not (run_dir / "pretrain").exists():
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "pretrain").symlink_to(main / "pretrain")
    ledger = read_ledger(runs)

    def record(entry: str, measured: dict, key: str) -> None:
        ledger.update(read_ledger(runs))  # a second process may have added its rows
        if not measured["reused"] or ledger.get(entry, {}).get("key") != key:
            ledger[entry] = {"key": key, **measured}
        print(f"{entry}: {ledger[entry]}", flush=True)
        atomic_write_text(runs / "measurements.json", json.dumps(ledger, indent=2))

    needed = [stage for stage in ENCODER_STAGES if stage == "pretrain" or any("photometry" in row for row in rows)]
    for stage in needed:
        record(stage, run_stage(run_dir, stage, []), manifest(run_dir / stage)["key"])
    for row in rows:
        for seed in seeds:
            target = row_dir(runs, row, seed)
            if (target / "manifest.json").exists() and f"{row}/{seed}" in ledger and not redo:
                print(f"{row}/{seed}: finished before, kept ({target})", flush=True)
                continue
            measured = run_stage(run_dir, row, [f"stages.{row}.seed_offset={seed}"])
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(run_dir / row, target, ignore=shutil.ignore_patterns("*.safetensors"))
            record(f"{row}/{seed}", measured, manifest(target)["key"])
    return ledger


def spread(values: list[float]) -> tuple[float, float]:
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")


def collect(runs: Path, seeds: list[int], rows: list[str], ledger: dict) -> dict:
    """Row -> label -> {test, validation}: mean and spread over seeds of robust sigma and R^2; and costs."""
    result = {}
    for row in rows:
        done = [seed for seed in seeds if (row_dir(runs, row, seed) / "manifest.json").exists()]
        if not done:
            continue
        summaries = [manifest(row_dir(runs, row, seed))["summary"] for seed in done]
        entry: dict = {"seeds": done, "labels": {}}
        for label in LABELS:
            entry["labels"][label] = {
                part: {
                    "sigma": spread([s[key][label]["robust_sigma"] for s in summaries]),
                    "r2": spread([s[key][label]["r2"] for s in summaries]),
                    "per_seed": [s[key][label]["robust_sigma"] for s in summaries],
                    "n": summaries[0][key][label]["n"],
                }
                for part, key in (("test", "test"), ("validation", "validation"))
            }
        costs = [ledger[f"{row}/{seed}"] for seed in done if f"{row}/{seed}" in ledger]
        entry["wall_s"] = spread([c["wall_s"] for c in costs]) if costs else None
        entry["peak_mb"] = max(c["peak_mb"] for c in costs) if costs else None
        result[row] = entry
    result["_encoder_stages"] = {stage: ledger[stage] for stage in ENCODER_STAGES if stage in ledger}
    result["_pretraining"] = pretraining_cost(runs / SPEC / "pretrain" / "training" / "metrics.csv")
    return result


def pretraining_cost(metrics_csv: Path) -> dict | None:
    """The training loop's own figures for the pretraining (also when it was resumed): epochs, the
    sum of the epochs' seconds and the largest per-epoch peak memory."""
    if not metrics_csv.exists():
        return None
    with open(metrics_csv) as handle:
        epochs = list(csv.DictReader(handle))
    return {"epochs": len(epochs), "seconds": round(sum(float(e["seconds"]) for e in epochs), 1), "peak_mb": max(float(e["peak_memory_mb"]) for e in epochs)}


def fmt(value: float, label: str) -> str:
    return f"{value:.0f}" if label == "teff" else f"{value:.3f}"


def cell(stats: dict, label: str) -> str:
    (mean, sd), (r2, _) = stats["sigma"], stats["r2"]
    return f"{fmt(mean, label)} ± {fmt(sd, label) if np.isfinite(sd) else 'n/a'} / {r2:.3f}"


def change(result: dict, row: str, label: str, part: str) -> str:
    """Change of the mean robust sigma against the base row, in per cent; claimed (bold) only when
    larger than the spread over seeds of both rows."""
    if row == BASE or BASE not in result:
        return ""
    (mean, sd), (base, base_sd) = result[row]["labels"][label][part]["sigma"], result[BASE]["labels"][label][part]["sigma"]
    text = f"{100 * (mean - base) / base:+.0f}%"
    if not (np.isfinite(sd) and np.isfinite(base_sd)):
        return f" ({text}, one seed: not claimed)"
    return f" (**{text}**)" if abs(mean - base) > max(sd, base_sd) else f" ({text}, within spread)"


def table(result: dict, part: str, rows: list[str]) -> list[str]:
    lines = [
        "| row | inputs | " + " | ".join(LABELS) + " | seeds | wall s (mean) | peak MB |",
        "|---|---|" + "---|" * len(LABELS) + "---|---|---|",
    ]
    for row in rows:
        if row not in result:
            continue
        entry = result[row]
        cells = [cell(entry["labels"][label][part], label) + change(result, row, label, part) for label in LABELS]
        wall = f"{entry['wall_s'][0]:.0f}" if entry["wall_s"] else "n/a"
        lines.append(f"| `{row}`: {ROWS[row][1]} | {ROWS[row][0]} | " + " | ".join(cells) + f" | {len(entry['seeds'])} | {wall} | {entry['peak_mb'] or 'n/a'} |")
    lines.append("| goal (issue 13) | XP only | " + " | ".join(f"<= {fmt(GOALS[label], label)}" for label in LABELS) + " | | | |")
    return lines


def write(result: dict, rows: list[str], seeds: list[int], command: str, wall: float, load: tuple[float, float, float], name: str = "xp_precision") -> None:
    encoders = result["_encoder_stages"]
    costs = "; ".join(f"{stage} {entry['wall_s']:.0f} s, {entry['peak_mb']:.0f} MB" for stage, entry in encoders.items() if not entry["reused"]) or "not measured here"
    lines = [
        "# Gaia XP precision study (real spectra, APOGEE DR17 labels)",
        "",
        f"Written by `bench/xp_precision.py` on {time.strftime('%Y-%m-%d %H:%M %Z')}: `{command}`; seeds {seeds};"
        f" {os.cpu_count()} CPU cores shared with other work (load average at the end {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}),"
        f" one thread per run; this invocation {wall:.0f} s wall.",
        "",
        f"Spec `{SPEC}` (registry/src/specclip_registry/specs/{SPEC}.yaml): each row is one heads stage on the frozen"
        " embeddings of the xp-small OAE (pretrained once, seed 0); the seeds are those of the heads"
        f" (`seed_offset`). Encoder stages (wall, peak RSS, where run by this script): {costs}."
        + (f" Pretraining (the loop's own figures): {pre['epochs']} epochs, {pre['seconds']:.0f} s, peak {pre['peak_mb']:.0f} MB." if (pre := result["_pretraining"]) else ""),
        "Each cell: robust sigma (biweight scale of residuals) mean ± standard deviation over seeds / mean R^2."
        f" In brackets: change of the mean against the base row `{BASE}`, bold only when larger than the spread of both rows."
        " Wall time (mean over seeds) and peak memory (max over seeds) are per heads process.",
        "",
        "## Validation split (choices are made here)",
        "",
        *table(result, "validation", rows),
        "",
        "## Test split (u >= 0.90)",
        "",
        *table(result, "test", rows),
        "",
    ]
    output = RESULTS / name
    output.with_suffix(".md").write_text("\n".join(lines))
    output.with_suffix(".json").write_text(json.dumps({"command": command, "seeds": seeds, "rows": result}, indent=2))
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, required=True, help="folder of the run directories (outside the repository)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rows", nargs="+", default=list(ROWS), help="heads stages of the spec to run and tabulate")
    parser.add_argument("--table-only", action="store_true", help="rewrite the table from finished rows, run nothing")
    parser.add_argument("--redo", action="store_true", help="rerun (row, seed) pairs that finished before")
    parser.add_argument("--name", default="xp_precision", help="results file name under bench/results (.md and .json)")
    parser.add_argument("--run-dir", type=Path, help="where the stages run (default <runs>/xp-precision; another one lets a second process run other rows beside the first)")
    args = parser.parse_args()
    started = time.time()
    known = load_spec(SPEC).stages
    unknown = [row for row in args.rows if row not in known or row not in ROWS]
    if unknown:
        raise SystemExit(f"--rows: {unknown} are not rows of the table (stages of {SPEC} named in ROWS: {[r for r in ROWS if r in known]})")
    args.runs.mkdir(parents=True, exist_ok=True)
    if args.table_only:
        ledger = read_ledger(args.runs)
    else:
        ledger = measure(args.runs, args.seeds, args.rows, args.redo, args.run_dir or args.runs / SPEC)
    result = collect(args.runs, args.seeds, args.rows, ledger)
    write(result, args.rows, args.seeds, shlex.join(["python", "bench/xp_precision.py", *sys.argv[1:]]), time.time() - started, os.getloadavg(), args.name)


if __name__ == "__main__":
    main()
