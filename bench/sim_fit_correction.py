"""Learn the empirical correction of the emulator for LAMOST-like spectra (specclip_sim.correction)
from the training 70% of the real DR10 stars (sim_common.in_train_split), and add it to the shipped
calibration (plugins/specclip-lamost/src/specclip_lamost/calibrations/lamost_lrs.json).

Each training star is simulated from its LASP labels, rv and S/N with the calibration (without any
correction; with its parts drawn from real spectra except the residual variety, which is learned after
the correction by bench/sim_fit_residual_variety.py), both spectra are preprocessed by lamost_lrs, and real - simulated is fitted per pixel
by a cubic polynomial in (log10 Teff, logg, [Fe/H]). The held-out 30% are never used here; the
realism and sim-to-real benches report on them.

    .venv/bin/python bench/sim_fit_correction.py [--degree 3] [--ridge 0.01]
"""

from __future__ import annotations

import argparse
import datetime
import sys

import numpy as np
from sim_common import DR10, RESULTS, align, dr10_labels_for_simulation, dr10_store, in_train_split, machine, simulate_preprocessed

from specclip_lamost.grid import LOG_STEP, MODEL_WAVELENGTH
from specclip_sim.calibration import calibration_path, load_calibration
from specclip_sim.correction import fit_correction
from specclip_sim.observe import NativeObserver


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--degree", type=int, default=3)
    parser.add_argument("--ridge", type=float, default=1e-2)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if not DR10.exists():
        print(f"needs {DR10}", file=sys.stderr)
        return 1
    load = machine()
    store = dr10_store()
    ids, inputs = dr10_labels_for_simulation(store)
    train = in_train_split(ids)
    rows = np.flatnonzero(train)
    real = store.spectra("lamost_lrs", rows)
    calibration = load_calibration("lamost_lrs")
    observer = NativeObserver("lamost_lrs", calibration=calibration, correction=False, variety=False)  # the variety is learned after the correction
    simulated, _, _ = simulate_preprocessed(observer, ids[rows], {k: v[rows] for k, v in inputs.items()}, seed=100, workers=args.workers, progress=False)
    real, simulated = align(real, simulated)
    usable = ~real.mask & ~simulated.mask
    labels = np.column_stack([real.meta["teff"], real.meta["logg"], real.meta["feh"]])
    measured = {
        "by": "bench/sim_fit_correction.py",
        "date": datetime.date.today().isoformat(),
        "data": f"{len(real)} LAMOST DR10 stars (the training 70% by sim_common.in_train_split), LASP labels; simulated at R {observer.resolving_power:.0f} without correction, seed 100",
        "model": f"real - simulated lamost_lrs flux, per pixel a degree-{args.degree} polynomial in (log10 Teff, logg, [Fe/H]), inverse-variance weights, ridge {args.ridge}",
    }
    correction = fit_correction(
        real.flux, real.ivar, simulated.flux, simulated.ivar, usable, labels, float(MODEL_WAVELENGTH[0]), LOG_STEP,
        degree=args.degree, ridge=args.ridge, measured=measured,
    )
    fitted = correction.design(labels) @ np.asarray(correction.theta)
    before = np.sqrt(np.mean(np.where(usable, real.flux - simulated.flux, 0) ** 2, axis=1))
    after = np.sqrt(np.mean(np.where(usable, real.flux - simulated.flux - fitted, 0) ** 2, axis=1))
    calibration.model_copy(update={"correction": correction}).save(calibration_path("lamost_lrs"))
    lines = [
        "# Empirical correction of the emulator for LAMOST-like spectra (simulated data)",
        "",
        f"`python bench/sim_fit_correction.py --degree {args.degree} --ridge {args.ridge}`, {datetime.datetime.now():%Y-%m-%d %H:%M}; {load}.",
        "",
        f"Learned from {len(real)} DR10 training stars (LASP labels Teff {labels[:, 0].min():.0f}-{labels[:, 0].max():.0f} K, "
        f"logg {labels[:, 1].min():.2f}-{labels[:, 1].max():.2f}, [Fe/H] {labels[:, 2].min():.2f}-{labels[:, 2].max():.2f}; labels outside are clamped): "
        f"{len(correction.exponents)} terms x {correction.n_pixels} pixels, added to the emulated normalised flux in 4000-5600 A.",
        f"On these training stars, the median per-star RMS of real - simulated (preprocessed, 4000-5600 A) goes from {np.median(before):.4f} "
        f"to {np.median(after):.4f} when the fitted correction is subtracted (in-sample; the held-out figures are in sim_realism.md and sim_to_real.md).",
        f"Size of the correction: median |correction| over stars and pixels {np.median(np.abs(fitted)):.4f}, 99th percentile {np.percentile(np.abs(fitted), 99):.3f}.",
        "",
    ]
    (RESULTS / "sim_fit_correction.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
