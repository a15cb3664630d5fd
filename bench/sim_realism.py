"""Can a classifier tell simulated LAMOST-like spectra from real ones? (population-level realism)

Each of the 2,224 real LAMOST DR10 spectra gets a simulated twin made from its LASP Teff, logg,
[Fe/H], its rv (c z) and its header S/N(g), A_K = 0 (unknown), through the whole chain (emulator,
instrument, native spec-*.fits.gz files, the LAMOST reader, lamost_lrs preprocessing). Real and
simulated preprocessed spectra (1462 pixels, 4000-5600 A) are then classified by scikit-learn:

- logistic regression (standardised pixels, L2, C chosen by 5-fold CV on the training stars);
- histogram gradient boosting.

Stars are split 70/30 by a hash of their id; both versions of a star are on the same side, so the
test AUC measures real-vs-simulated, not memory of a star. What it relies on: the logistic
regression's standardised coefficients per pixel, and for the boosted trees the drop of test AUC
when a 40-pixel block is shuffled across test spectra (permutation importance).

Variants (``--variants``) record how the simulation's settings change the AUC:
  nominal     R 1800 (nominal), uniform mask runs, measured throughput, no empirical correction
  no-correction  the shipped calibration without its empirical correction: effective R, real mask patterns
  calibrated  the shipped calibration (what `data simulate` uses), with its empirical correction of the
              emulator when it has one (learned on the training stars of this very split only) and
              every part of its parts file (specclip_sim.empirical, learned on the same training stars)
  no-noise, no-sky, no-flux-shapes, no-variety, no-background  calibrated without that part; no-parts  without any of them
  plus any "R<value>" (calibrated, at that R) or "uniform-masks" (calibrated with uniform masks).

    .venv/bin/python bench/sim_realism.py [--variants nominal calibrated]
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
import warnings

import matplotlib
import numpy as np
from sim_common import RESULTS, align, in_train_split, simulate_preprocessed, start_dr10_bench, variant_arguments
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegressionCV
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from specclip_lamost.grid import MODEL_WAVELENGTH
from specclip_sim.calibration import load_calibration, read_calibration
from specclip_sim.emulator import Emulator
from specclip_sim.observe import NativeObserver

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

BLOCK = 40


def observer_for(variant: str, emulator: Emulator, calibration_file: str | None = None) -> NativeObserver:
    """The observer of a variant, with the shipped calibration or the one in ``calibration_file``."""
    calibration = load_calibration("lamost_lrs") if calibration_file is None else read_calibration(calibration_file)
    if variant == "nominal":
        return NativeObserver("lamost_lrs", resolving_power=1800.0, calibration=calibration, emulator=emulator, masks="uniform", correction=False, noise=False, sky=False, flux_shapes=False, variety=False, background=False)
    if variant == "calibrated":
        return NativeObserver("lamost_lrs", calibration=calibration, emulator=emulator)
    if variant == "no-correction":
        return NativeObserver("lamost_lrs", calibration=calibration, emulator=emulator, correction=False, noise=False, sky=False, flux_shapes=False, variety=False, background=False)
    if variant == "no-parts":
        return NativeObserver("lamost_lrs", calibration=calibration, emulator=emulator, noise=False, sky=False, flux_shapes=False, variety=False, background=False)
    if variant in ("no-noise", "no-sky", "no-flux-shapes", "no-variety", "no-background"):
        part = variant[3:].replace("-", "_")
        return NativeObserver("lamost_lrs", calibration=calibration, emulator=emulator, **{part: False})
    if variant == "uniform-masks":
        return NativeObserver("lamost_lrs", calibration=calibration, emulator=emulator, masks="uniform")
    if variant.startswith("R"):
        return NativeObserver("lamost_lrs", resolving_power=float(variant[1:]), calibration=calibration, emulator=emulator)
    raise SystemExit(f"unknown variant {variant!r}")


def classify(real, simulated, seed: int = 0) -> dict:
    ids = real.ids
    train = in_train_split(ids)
    x = np.concatenate([real.flux, simulated.flux]).astype(np.float64)
    y = np.concatenate([np.zeros(len(real)), np.ones(len(simulated))])
    snr = np.concatenate([real.meta["snrg"], simulated.meta["snr"]])
    teff = np.concatenate([real.meta["teff"], real.meta["teff"]])
    tr = np.concatenate([train, train])
    te = ~tr
    out = {"n_train_stars": int(train.sum()), "n_test_stars": int((~train).sum())}

    started = time.perf_counter()
    logistic = make_pipeline(StandardScaler(), LogisticRegressionCV(Cs=np.logspace(-4, 0, 5), cv=5, scoring="roc_auc", max_iter=3000))
    logistic.fit(x[tr], y[tr])
    p_lr = logistic.predict_proba(x[te])[:, 1]
    out["lr_auc"] = float(roc_auc_score(y[te], p_lr))
    out["lr_C"] = float(logistic[-1].C_[0])
    out["lr_coef"] = logistic[-1].coef_[0].tolist()
    out["lr_seconds"] = time.perf_counter() - started

    started = time.perf_counter()
    trees = HistGradientBoostingClassifier(max_iter=300, learning_rate=0.1, early_stopping=True, random_state=seed)
    trees.fit(x[tr], y[tr])
    p_gb = trees.predict_proba(x[te])[:, 1]
    out["gb_auc"] = float(roc_auc_score(y[te], p_gb))
    rng = np.random.default_rng(seed)
    drops = []
    xt = x[te].copy()
    for lo in range(0, x.shape[1], BLOCK):
        shuffled = xt.copy()
        shuffled[:, lo : lo + BLOCK] = xt[rng.permutation(len(xt)), lo : lo + BLOCK]
        drops.append(out["gb_auc"] - roc_auc_score(y[te], trees.predict_proba(shuffled)[:, 1]))
    out["gb_block_importance"] = [float(d) for d in drops]
    out["gb_seconds"] = time.perf_counter() - started

    by_snr = {}
    for lo, hi in ((0, 20), (20, 50), (50, 100), (100, 1e9)):
        stars = te & (np.concatenate([real.meta["snrg"], real.meta["snrg"]]) >= lo) & (np.concatenate([real.meta["snrg"], real.meta["snrg"]]) < hi)
        if len(np.unique(y[stars])) == 2:
            by_snr[f"{lo:g}-{hi:g}"] = (int(stars.sum() // 2), float(roc_auc_score(y[stars], p_lr[stars[te]])), float(roc_auc_score(y[stars], p_gb[stars[te]])))
    out["by_snr"] = by_snr
    by_teff = {}
    for lo, hi in ((0, 6000), (6000, 8000), (8000, 1e9)):
        stars = te & (teff >= lo) & (teff < hi)
        if len(np.unique(y[stars])) == 2:
            by_teff[f"{lo:g}-{hi:g}"] = (int(stars.sum() // 2), float(roc_auc_score(y[stars], p_lr[stars[te]])), float(roc_auc_score(y[stars], p_gb[stars[te]])))
    out["by_teff"] = by_teff
    out["mean_difference"] = (real.flux[~train].mean(0) - simulated.flux[~train].mean(0)).tolist()  # test stars
    out["masked_real"] = float(real.mask.mean())
    out["masked_sim"] = float(simulated.mask.mean())
    out["snr_check"] = float(np.median(simulated.meta["snr"] / real.meta["snrg"]))
    del snr
    return out


def top_ranges(values: np.ndarray, wavelength: np.ndarray, k: int = 6, width: int = 10) -> list[str]:
    """The k wavelengths with the largest |values|, at least ``width`` pixels apart."""
    order = np.argsort(-np.abs(values))
    picked: list[int] = []
    for i in order:
        if all(abs(i - j) > width for j in picked):
            picked.append(int(i))
        if len(picked) == k:
            break
    return [f"{wavelength[i]:.0f}" for i in sorted(picked)]


def main() -> int:
    warnings.filterwarnings("ignore", category=FutureWarning)  # scikit-learn's notices about its next API
    parser = argparse.ArgumentParser()
    variant_arguments(parser, ["nominal", "calibrated"], "sim_realism")
    args = parser.parse_args()
    begun = start_dr10_bench()
    if begun is None:
        return 1
    started, load_at_start, store, ids, inputs = begun
    real_all = store.spectra("lamost_lrs")
    emulator = Emulator.load()
    results = {}
    for variant in args.variants:
        observer = observer_for(variant, emulator, args.calibration)
        simulated, seconds, rejected = simulate_preprocessed(observer, ids, inputs, seed=0, workers=args.workers, progress=False)
        real, sim = align(real_all, simulated)
        result = classify(real, sim)
        result.update(
            variant=variant, resolving_power=observer.resolving_power, masks=observer.masks, n=len(real), rejected=len(rejected), seconds=seconds,
            corrected=observer.correction is not None, noise=observer.noise is not None, sky=observer.sky is not None, flux_shapes=observer.flux_shapes is not None,
            variety=observer.variety is not None, background=observer.background is not None,
        )
        results[variant] = result
        print(f"{variant}: R {observer.resolving_power:.0f}, masks {observer.masks}: LR AUC {result['lr_auc']:.3f}, GB AUC {result['gb_auc']:.3f}", flush=True)

    w = MODEL_WAVELENGTH
    lines = [
        "# Real vs simulated LAMOST DR10 spectra: a classifier's view (simulated data)",
        "",
        f"`python bench/sim_realism.py --variants {' '.join(args.variants)}{f' --calibration {args.calibration}' if args.calibration else ''} --name {args.name}`, {datetime.datetime.now():%Y-%m-%d %H:%M}; {load_at_start} (at start); {time.perf_counter() - started:.0f} s.",
        "",
        "Each real DR10 spectrum against its simulated twin (same LASP labels, rv, S/N; A_K = 0), both preprocessed by lamost_lrs",
        "(1462 pixels, 4000-5600 A). Held-out test AUC on 30% of the stars (both versions of a star on one side); 0.5 = indistinguishable.",
        "",
        "Parts (specclip_sim.empirical, from the calibration's parts file): correlated noise with the real per-pixel amplitude, real sky-residual",
        "windows, real flux-calibration shapes (instead of the random 5% error), residual variety (star-to-star emulator error of real stars of similar labels),",
        "background (the noise variance's sky and read-noise background of real spectra of similar S/N, instead of one throughput and a constant pedestal).",
        "",
        "| variant (simulated) | R | masks | empirical correction | noise | sky | flux shapes | variety | background | stars | logistic regression AUC | gradient boosting AUC | masked px real / simulated |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    yes = lambda flag: "yes" if flag else "no"  # noqa: E731
    for v, r in results.items():
        lines.append(
            f"| {v} | {r['resolving_power']:.0f} | {r['masks']} | {yes(r['corrected'])} | {yes(r['noise'])} | {yes(r['sky'])} | {yes(r['flux_shapes'])} | {yes(r.get('variety'))} | {yes(r.get('background'))} "
            f"| {r['n']} ({r['n_test_stars']} test) | {r['lr_auc']:.3f} | {r['gb_auc']:.3f} | {r['masked_real']:.2%} / {r['masked_sim']:.2%} |"
        )
    for v, r in results.items():
        lines += ["", f"### {v} (simulated): test AUC by S/N(g) and by Teff (logistic regression / gradient boosting)", "", "| S/N(g) | test stars | LR | GB |", "|---|---|---|---|"]
        lines += [f"| {k} | {n} | {a:.3f} | {b:.3f} |" for k, (n, a, b) in r["by_snr"].items()]
        lines += ["", "| Teff (K) | test stars | LR | GB |", "|---|---|---|---|"]
        lines += [f"| {k} | {n} | {a:.3f} | {b:.3f} |" for k, (n, a, b) in r["by_teff"].items()]
        coef = np.asarray(r["lr_coef"])
        blocks = np.asarray(r["gb_block_importance"])
        order = np.argsort(-blocks)[:6]
        lines += [
            "",
            f"Logistic regression (C = {r['lr_C']:.0e}): largest |standardised coefficients| at {', '.join(top_ranges(coef, w))} A.",
            "Gradient boosting: 40-pixel blocks whose shuffling lowers the test AUC most: "
            + ", ".join(f"{w[i * BLOCK]:.0f}-{w[min((i + 1) * BLOCK, len(w)) - 1]:.0f} A ({blocks[i]:.3f})" for i in order) + ".",
        ]
    lines += ["", f"![classifier weights against wavelength]({args.name}.png)", ""]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.md").write_text("\n".join(lines))
    (RESULTS / f"{args.name}.json").write_text(json.dumps({v: {k: x for k, x in r.items() if k not in ("lr_coef", "mean_difference")} for v, r in results.items()}, indent=1))
    print("\n".join(lines))

    fig, axes = plt.subplots(3, 1, figsize=(12, 9), sharex=True)
    for v, r in results.items():
        axes[0].plot(w, np.abs(r["lr_coef"]), lw=0.6, label=f"{v} (AUC {r['lr_auc']:.2f})")
        centres = [w[min(i + BLOCK // 2, len(w) - 1)] for i in range(0, len(w), BLOCK)]
        axes[1].step(centres, r["gb_block_importance"], where="mid", lw=0.8, label=f"{v} (AUC {r['gb_auc']:.2f})")
        axes[2].plot(w, r["mean_difference"], lw=0.6, label=v)
    axes[0].set_ylabel("|LR coefficient|")
    axes[1].set_ylabel("AUC drop (GB, 40-px block shuffled)")
    axes[2].set_ylabel("mean real - simulated (test stars)")
    axes[2].set_xlabel("wavelength (A, vacuum)")
    axes[0].set_title("What tells real LAMOST DR10 from SIMULATED twins (logistic regression, gradient boosting)")
    for ax in axes:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / f"{args.name}.png", dpi=80)
    return 0


if __name__ == "__main__":
    sys.exit(main())
