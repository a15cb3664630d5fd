"""Out-of-distribution flags on real spectra for models trained on SIMULATED ones (issue 10).

The quickstart's LAMOST heads (``heads_lamost_*``: trained on SIMULATED LAMOST-like twins of the
apogee-xp stars) predict the 2,224 real LAMOST DR10 spectra through ``specclip predict``'s own code
(:func:`specclip_core.predict.predict_catalog`). A star is "outside" when its LASP label (teff, logg or
[Fe/H]) lies outside the range of the labels the head was trained on (``head/ood.json``). The AUC
(scikit-learn ``roc_auc_score``) says how well each out-of-distribution score separates the outside
stars from the inside ones: ``ood_knn_pct``, ``ood_recon_chi2`` (where the encoder has a decoder),
``ood_range_p`` (the probability that a label lies outside the training range),
the number of raised flags, and whether any flag is raised. Then an XP model's catalogue of the two
Gaia archive sample sources (XP_CONTINUOUS_RAW.csv) with the flags it raises.

    .venv/bin/python bench/trust_ood.py --run RUNS/quickstart --stages heads_lamost_raw heads_lamost_pretrained
    .venv/bin/python bench/trust_ood.py --stages --xp-run RUNS/xp-trust [--xp-stage heads_mlp_gaussian] --out bench/results/trust_ood_xp
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from astropy.table import Table
from sklearn.metrics import roc_auc_score

from specclip_core.data.splits import split_labels
from specclip_core.heads.ood import OODReference
from specclip_core.predict import predict_catalog
from specclip_core.rundir import RunDir

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "data"
LASP_TO_TRAINED = {"teff": ("teff",), "logg": ("logg",), "feh": ("fe_h", "sim_fe_h")}  # LASP column -> what a head may have trained it as


def trained_name(lasp: str, label_range: dict) -> str:
    """The head's label for a LASP column (a head trained on SIMULATED spectra may fit ``sim_fe_h``)."""
    names = [name for name in LASP_TO_TRAINED[lasp] if name in label_range]
    if not names:
        raise SystemExit(f"the head has no label for LASP {lasp!r} (looked for {LASP_TO_TRAINED[lasp]}; it has {sorted(label_range)})")
    return names[0]


def outside_training_range(labels: Table, label_range: dict[str, tuple[float, float]]) -> np.ndarray:
    """True where any LASP label lies outside the range its trained counterpart had in training."""
    outside = np.zeros(len(labels), dtype=bool)
    for lasp in LASP_TO_TRAINED:
        low, high = label_range[trained_name(lasp, label_range)]
        values = np.asarray(labels[lasp], dtype=float)
        outside |= np.isfinite(values) & ((values < low) | (values > high))
    return outside


def separation(table: Table, outside: np.ndarray) -> dict[str, dict[str, float]]:
    """AUC of each score for outside vs inside, and the fraction of each group that its flag marks."""
    flag_columns = [c for c in table.colnames if c.startswith("flag_")]
    scores = {"ood_knn_pct": np.asarray(table["ood_knn_pct"], dtype=float)}
    for name in ("ood_recon_chi2", "ood_range_p"):
        if name in table.colnames:
            scores[name] = np.asarray(table[name], dtype=float)
    scores["number_of_flags"] = np.sum([np.asarray(table[c], dtype=bool) for c in flag_columns], axis=0).astype(float)
    scores["any_flag"] = (scores["number_of_flags"] > 0).astype(float)
    flags = {c: np.asarray(table[c], dtype=bool) for c in flag_columns}
    flags["any_flag"] = scores["any_flag"] > 0
    out = {name: {"auc": float(roc_auc_score(outside, values))} for name, values in scores.items()}
    for name, values in flags.items():
        out.setdefault(name, {}).update({"flagged_outside": float(values[outside].mean()), "flagged_inside": float(values[~outside].mean())})
    return out


def dr10_predicted(run: Path, stage: str, dr10: Path, out_dir: Path) -> tuple[Table, Table]:
    """``specclip predict``'s catalogue of every DR10 spectrum by the heads ``stage`` of ``run`` (the
    predicted rows only) and the LASP labels of the same rows, in the same order."""
    catalog = out_dir / f"dr10_{stage}.fits"
    predict_catalog(run, [str(dr10 / "spectra")], catalog, heads=[stage], progress=False)
    table = Table.read(catalog)
    table = table[np.asarray(table["reason"], dtype=str) == ""]
    labels = Table.read(dr10 / "labels.csv", format="ascii.csv")
    by_obsid = {str(o): i for i, o in enumerate(labels["obsid"])}
    return table, labels[np.array([by_obsid[str(i)] for i in table["id"]])]


def lamost_separation(run: Path, stage: str, dr10: Path, out_dir: Path) -> dict:
    started = time.perf_counter()
    table, labels = dr10_predicted(run, stage, dr10, out_dir)
    seconds = time.perf_counter() - started
    label_range = OODReference.load(RunDir(run).head(stage)).label_range
    outside = outside_training_range(labels, label_range)
    reweighted = "reweight" in json.loads((RunDir(run).stage(stage) / "manifest.json").read_text())["summary"]
    unread = split_labels(np.asarray(table["id"]).astype(str)) != "train"  # stars whose labels the weights never read
    return {
        "stage": stage,
        "n_stars": int(len(table)),
        "n_outside": int(outside.sum()),
        "training_label_range": {k: label_range[trained_name(k, label_range)] for k in LASP_TO_TRAINED},
        "predict_seconds": round(seconds, 1),
        "scores": separation(table, outside),
        **({"unread": {"n_stars": int(unread.sum()), "n_outside": int(outside[unread].sum()), "scores": separation(table[unread], outside[unread])}} if reweighted else {}),
    }


def xp_archive_flags(run: Path, stage: str, out_dir: Path) -> list[dict]:
    catalog = out_dir / "xp_archive_samples.fits"
    predict_catalog(run, [str(SHARED / "gaiaxp-archive-samples" / "XP_CONTINUOUS_RAW.csv")], catalog, heads=[stage], progress=False)
    table = Table.read(catalog)
    keep = [c for c in table.colnames if c == "id" or c == "reason" or c.startswith(("ood_", "flag", "teff", "logg", "fe_h", "alpha_m"))]
    columns = {c: np.ma.filled(table[c], "" if table[c].dtype.kind in "SU" else np.nan) for c in keep}  # FITS reads empty strings and NaN back masked
    return [{c: (str(v[row]) if v.dtype.kind in "SU" else v[row].item()) for c, v in columns.items()} for row in range(len(table))]


def markdown(result: dict) -> str:
    lines = ["# Out-of-distribution flags on real spectra (bench/trust_ood.py)", "", result["note"], ""]
    for entry in result["lamost"]:
        groups = [(f"{entry['stage']}: {entry['n_stars']} real DR10 stars", entry)]
        if "unread" in entry:
            groups.append((f"{entry['stage']}, the {entry['unread']['n_stars']} stars outside DR10's train split (whose labels the training weights never read)", entry["unread"]))
        for title, group in groups:
            lines += [f"## {title}, {group['n_outside']} outside the SIMULATED training label range", "", "| score | AUC outside vs inside | flagged outside | flagged inside |", "|---|---|---|---|"]
            for name, figures in group["scores"].items():
                auc = f"{figures['auc']:.3f}" if "auc" in figures else ""
                flagged = [f"{figures[k]:.3f}" if k in figures else "" for k in ("flagged_outside", "flagged_inside")]
                lines.append(f"| {name} | {auc} | {flagged[0]} | {flagged[1]} |")
            lines.append("")
    if result.get("xp_archive"):
        lines += [f"## XP archive samples ({result['xp_stage']})", "", "```", json.dumps(result["xp_archive"], indent=1), "```"]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, help="a finished quickstart run (for --stages)")
    parser.add_argument("--stages", nargs="*", default=["heads_lamost_raw", "heads_lamost_pretrained", "heads_lamost_aligned"], help="LAMOST heads stages of --run (none: only the XP archive samples)")
    parser.add_argument("--dr10", type=Path, default=SHARED / "lamost-dr10")
    parser.add_argument("--xp-run", type=Path, help="a finished run with an XP heads stage")
    parser.add_argument("--xp-stage", default="heads_mlp_gaussian")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "trust_ood")
    args = parser.parse_args()
    work = Path("/tmp") / f"trust_ood_{int(time.time())}"
    work.mkdir(parents=True)
    result = {"note": "Real spectra throughout.", "lamost": [lamost_separation(args.run, stage, args.dr10, work) for stage in args.stages]}
    if args.stages:
        result["note"] = "Heads trained on SIMULATED LAMOST-like spectra, applied to real LAMOST DR10 spectra; 'outside' = a LASP label outside the training label range."
    if args.xp_run:
        result["xp_stage"], result["xp_archive"] = args.xp_stage, xp_archive_flags(args.xp_run, args.xp_stage, work)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2, default=float))
    args.out.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
