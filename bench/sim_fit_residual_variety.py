"""Learn the star-to-star emulator error that the label-smooth correction leaves (specclip_sim.empirical.
ResidualVariety) from the training 70% of the real DR10 stars, and add it to the LAMOST calibration's
parts file (with its new SHA-256 in lamost_lrs.json).

Each training star is simulated from its LASP labels, rv and S/N with the calibration (its correction
and parts, without any variety; seed 100), both spectra are preprocessed by lamost_lrs, and the
residuals real - simulated (4000-5600 A, pixels usable in both) of the stars with S/N(g) >= 50 give
the principal components (inverse-variance weighted, masked pixels 0); every training star's scores
are its weighted least-squares projection on them.

    .venv/bin/python bench/sim_fit_residual_variety.py [--components 20] [--output-dir DIR]
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time

import numpy as np
from sim_common import RESULTS, add_parts, align, in_train_split, simulate_preprocessed, start_dr10_bench

from specclip_lamost.grid import LOG_STEP, MODEL_WAVELENGTH
from specclip_sim.calibration import load_calibration
from specclip_sim.observe import NativeObserver

MIN_SNR = 50.0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--components", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--output-dir", help="write the calibration and its parts file here instead of over the shipped ones")
    args = parser.parse_args()
    begun = start_dr10_bench()
    if begun is None:
        return 1
    started, load, store, ids, inputs = begun
    rows = np.flatnonzero(in_train_split(ids))
    calibration = load_calibration("lamost_lrs")
    observer = NativeObserver("lamost_lrs", calibration=calibration, variety=False)
    simulated, _, _ = simulate_preprocessed(observer, ids[rows], {k: v[rows] for k, v in inputs.items()}, seed=100, workers=args.workers, progress=False)
    real, simulated = align(store.spectra("lamost_lrs", rows), simulated)
    usable = ~real.mask & ~simulated.mask
    with np.errstate(divide="ignore"):
        weight = np.where(usable, 1.0 / (1.0 / real.ivar + 1.0 / simulated.ivar), 0.0)
    residual = np.where(usable, real.flux - simulated.flux, 0.0).astype(np.float64)
    snr = real.meta["snrg"]
    bright = snr >= MIN_SNR
    typical = np.nanmedian(np.where(usable[bright], weight[bright], np.nan), axis=1, keepdims=True)
    scaled = np.nan_to_num(residual[bright] * np.sqrt(weight[bright] / typical), nan=0.0, posinf=0.0, neginf=0.0)
    _, singular, vt = np.linalg.svd(scaled, full_matrices=False)
    components = vt[: args.components]
    normal = np.einsum("kp,np,jp->nkj", components, weight, components) + 1e-6 * np.eye(args.components)
    scores = np.linalg.solve(normal, np.einsum("kp,np->nk", components, weight * residual)[..., None])[..., 0]
    explained = residual - scores @ components
    before = np.sqrt(np.sum(weight * residual**2, axis=1) / usable.sum(axis=1))
    after = np.sqrt(np.sum(weight * explained**2, axis=1) / usable.sum(axis=1))
    labels = np.column_stack([real.meta["teff"], real.meta["logg"], real.meta["feh"]])

    add_parts(
        calibration,
        {
            "variety_grid": np.array([MODEL_WAVELENGTH[0], LOG_STEP]),
            "variety_components": components.astype(np.float32),
            "variety_scores": scores.astype(np.float32),
            "variety_labels": labels.astype(np.float32),
        },
        "variety",
        {
            "by": "bench/sim_fit_residual_variety.py",
            "data": f"{len(real)} DR10 training stars (sim_common.in_train_split), components from the {int(bright.sum())} with S/N(g) >= {MIN_SNR:g}; simulated with the correction and parts, seed 100",
            "model": f"{args.components} principal components of real - simulated lamost_lrs flux; scores of each training star; drawn from the 10 nearest in labels",
        },
        args.output_dir,
    )

    lines = [
        "# Star-to-star emulator error left by the correction: residual variety for LAMOST-like spectra (simulated data)",
        "",
        f"`python bench/sim_fit_residual_variety.py --components {args.components}`, {datetime.datetime.now():%Y-%m-%d %H:%M}; {load} (at start); {time.perf_counter() - started:.0f} s.",
        "",
        f"{len(real)} DR10 training stars against their simulated twins (correction and parts on); {args.components} components from the {int(bright.sum())} stars with S/N(g) >= {MIN_SNR:g}.",
        f"Share of the weighted residual power of those stars in the components: {np.sum(singular[: args.components] ** 2) / np.sum(singular**2):.1%}.",
        f"Per-star weighted RMS of real - simulated (sigma units; 1 = noise only), median: all training stars {np.median(before):.3f} -> {np.median(after):.3f} "
        f"without the components' part; S/N(g) >= {MIN_SNR:g}: {np.median(before[bright]):.3f} -> {np.median(after[bright]):.3f} (in-sample).",
        "",
    ]
    (RESULTS / "sim_fit_residual_variety.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
