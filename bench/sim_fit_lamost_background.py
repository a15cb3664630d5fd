"""Learn the noise variance's background for LAMOST-like spectra (specclip_sim.empirical.BackgroundNoise)
from the pipeline ivar of the training 70% of the real DR10 spectra, and add it to the LAMOST
calibration's parts file (with its new SHA-256 in lamost_lrs.json).

The pipeline's variance of a faint star follows the sky (its lines at 4359.6 and 5578.9 A, a blue edge
where little light arrives), a bright star's its own flux: the ivar at O I 5578.9 A is 0.04 x its
neighbourhood's below S/N 30 and 0.5 x above 100, where the simulator's one throughput and constant
pedestal give 0.15 at every S/N. specclip_sim.empirical.fit_background models each spectrum's variance
as a source term plus background profiles (2 over the whole grid and one per sky window of the
calibration's sky part) with its own amplitudes; a simulated star takes those of a real star of
similar S/N. Checked out of sample: the held-out 30% stars' ivar at chosen wavelengths relative to
5540-5560 A, by S/N, real against the model (their own smoothed flux, amplitudes drawn by S/N).

    .venv/bin/python bench/sim_fit_lamost_background.py [--components 2] [--output-dir DIR]
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import sys
import time

import matplotlib
import numpy as np
from scipy.ndimage import median_filter
from sim_common import DR10, RESULTS, add_parts, in_train_split, start_dr10_bench
from sim_fit_lamost_parts import read_native

from specclip_sim.calibration import load_calibration
from specclip_sim.empirical import fit_background
from specclip_sim.noise import variance as noise_variance
from specclip_sim.simulate import SimulationSettings

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

REFERENCE = (5540.0, 5560.0)
CHECKED = (4000.0, 4050.0, 4200.0, 4359.7, 4500.0, 5000.0, 5578.5)
SNR_BINS = ((0, 20), (20, 50), (50, 100), (100, np.inf))
PEDESTAL = SimulationSettings().background_fraction
"""The constant pedestal (a fraction of the band flux) the simulator uses without a learned background."""


def windows_of(pixels: np.ndarray, wavelength: np.ndarray) -> list[tuple[float, float]]:
    """(first, last) wavelength of each run of consecutive pixels."""
    breaks = np.flatnonzero(np.diff(pixels) > 1)
    starts, stops = np.r_[pixels[0], pixels[breaks + 1]], np.r_[pixels[breaks], pixels[-1]]
    return [(float(wavelength[a]), float(wavelength[b])) for a, b in zip(starts, stops, strict=True)]


def ivar_ratios(variance: np.ndarray, usable: np.ndarray, wavelength: np.ndarray, snr: np.ndarray) -> dict[float, list[float]]:
    """Median over stars of var(5540-5560 A) / var(wavelength), per checked wavelength and S/N bin."""
    reference = (wavelength >= REFERENCE[0]) & (wavelength <= REFERENCE[1])
    out = {}
    for w in CHECKED:
        i = int(np.argmin(np.abs(wavelength - w)))
        row = []
        for lo, hi in SNR_BINS:
            stars = (snr >= lo) & (snr < hi) & usable[:, i] & usable[:, reference].all(axis=1)
            row.append(float(np.median(variance[stars][:, reference].mean(axis=1) / variance[stars, i])) if stars.any() else float("nan"))
        out[w] = row
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--components", type=int, default=2, help="background profiles over the whole grid (plus one per sky window)")
    parser.add_argument("--iterations", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0, help="draws of the amplitudes for the held-out check")
    parser.add_argument("--output-dir", help="write the calibration and its parts file here instead of over the shipped ones")
    args = parser.parse_args()
    begun = start_dr10_bench()
    if begun is None:
        return 1
    started, load, _, ids, inputs = begun
    with open(DR10 / "labels.csv", newline="") as handle:
        file_of = {row["obsid"]: row["file"] for row in csv.DictReader(handle)}
    calibration = load_calibration("lamost_lrs")
    n_native = len(calibration.throughput)
    wavelength = calibration.native_wavelength(n_native)
    flux, ivar = read_native([file_of[i] for i in ids], n_native, calibration.wavelength_start)
    snr, train = inputs["snr"], in_train_split(ids)
    parts = calibration.parts()
    windows = windows_of(parts.sky.pixels, wavelength) if parts is not None and parts.sky is not None else []
    fit_started = time.perf_counter()
    background, misfit = fit_background(flux[train], ivar[train], wavelength, snr[train], calibration.snr_band, windows, args.components, args.iterations)
    fit_seconds = time.perf_counter() - fit_started

    held = ~train
    smooth = median_filter(np.clip(flux[held], 0.0, None), size=(1, 15), mode="nearest")
    usable = (ivar[held] > 0) & (smooth > 0)
    real_variance = np.where(usable, 1.0 / np.where(usable, ivar[held], 1.0), np.inf)
    in_band = (wavelength >= calibration.snr_band[0]) & (wavelength <= calibration.snr_band[1])
    amplitudes = background.draw(np.random.default_rng(args.seed), snr[held])
    # the simulator's own variance (specclip_sim.noise), with the learned background and with the pedestal it replaces
    model_variance = noise_variance(smooth, snr[held], in_band, PEDESTAL, background.throughput, amplitudes @ background.profiles)
    flat = noise_variance(smooth, snr[held], in_band, PEDESTAL, np.asarray(calibration.throughput))
    real_ratios = ivar_ratios(real_variance, usable, wavelength, snr[held])
    model_ratios = ivar_ratios(model_variance, usable, wavelength, snr[held])
    flat_ratios = ivar_ratios(flat, usable, wavelength, snr[held])

    add_parts(
        calibration,
        {
            "background_throughput": background.throughput.astype(np.float32),
            "background_profiles": background.profiles.astype(np.float32),
            "background_amplitudes": background.amplitudes.astype(np.float32),
            "background_snr": background.snr.astype(np.float32),
        },
        "background",
        {
            "by": "bench/sim_fit_lamost_background.py",
            "data": f"pipeline ivar of {int(train.sum())} DR10 training stars (sim_common.in_train_split); {len(background.snr)} kept (positive source and band flux)",
            "model": f"variance = source / T + F_ref * amplitudes @ profiles: {args.components} profiles over the grid and one in each sky window {[f'{a:.1f}-{b:.1f}' for a, b in windows]} A; amplitudes drawn by S/N",
        },
        args.output_dir,
    )

    header = "| wavelength (A) | " + " | ".join(f"S/N {lo:g}-{hi:g}" for lo, hi in SNR_BINS) + " |"
    lines = [
        "# The noise variance's background, learned from real LAMOST DR10 ivar (for SIMULATED spectra)",
        "",
        f"`python bench/sim_fit_lamost_background.py --components {args.components}{f' --output-dir {args.output_dir}' if args.output_dir else ''}`, "
        f"{datetime.datetime.now():%Y-%m-%d %H:%M}; {load} (at start); {time.perf_counter() - started:.0f} s (fit {fit_seconds:.0f} s).",
        "",
        f"Fitted on the pipeline ivar of {int(train.sum())} DR10 training stars (native grid, {n_native} px): variance = a F~ / T + sum_k c_k B_k, "
        f"{args.components} profiles over the grid and one in each sky window ({', '.join(f'{a:.1f}-{b:.1f}' for a, b in windows)} A); "
        f"median relative RMS misfit per spectrum {np.median(misfit):.3f} (in sample).",
        "",
        f"Held-out check ({int(held.sum())} stars, never fitted): median over stars of var({REFERENCE[0]:.0f}-{REFERENCE[1]:.0f} A) / var(wavelength), i.e. the ivar at a",
        "wavelength relative to its value near 5550 A; real pipeline ivar / this model (amplitudes drawn by S/N) / the model it replaces",
        f"(one throughput, pedestal {PEDESTAL:g} of the band flux, the same at every S/N):",
        "",
        header,
        "|---|" + "---|" * len(SNR_BINS),
    ]
    for w in CHECKED:
        lines.append(f"| {w:g} | " + " | ".join(f"{r:.3f} / {m:.3f} / {f:.3f}" for r, m, f in zip(real_ratios[w], model_ratios[w], flat_ratios[w], strict=True)) + " |")
    by_bin = []
    for lo, hi in SNR_BINS:
        stars = (background.snr >= lo) & (background.snr < hi)
        by_bin.append(f"S/N {lo:g}-{hi:g}: " + ", ".join(f"{v:.3g}" for v in np.median(background.amplitudes[stars], axis=0)))
    lines += ["", "Median background amplitudes (relative to the band's source flux) of the real stars: " + "; ".join(by_bin) + ".", "", "![background profiles and ivar ratios](sim_fit_lamost_background.png)", ""]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "sim_fit_lamost_background.md").write_text("\n".join(lines))
    (RESULTS / "sim_fit_lamost_background.json").write_text(json.dumps({"real": real_ratios, "model": model_ratios, "replaced": flat_ratios, "misfit_median": float(np.median(misfit))}, indent=1))
    print("\n".join(lines))

    fig, axes = plt.subplots(2, 1, figsize=(11, 7), sharex=True)
    axes[0].plot(wavelength, background.throughput, lw=0.7, label="source throughput T")
    for k, row in enumerate(background.profiles):
        axes[0].plot(wavelength, row, lw=0.7, label=f"background profile {k + 1}")
    axes[0].set_yscale("log")
    axes[0].set_ylabel("relative")
    axes[0].legend(fontsize=7)
    reference = (wavelength >= REFERENCE[0]) & (wavelength <= REFERENCE[1])
    model = (wavelength >= 4000) & (wavelength <= 5600)
    for (lo, hi), colour in zip(SNR_BINS, ("C0", "C1", "C2", "C3"), strict=True):
        stars = (snr[held] >= lo) & (snr[held] < hi) & usable[:, reference].all(axis=1)
        with np.errstate(all="ignore"):
            real_profile = np.nanmedian(np.where(usable[stars], real_variance[stars][:, reference].mean(axis=1, keepdims=True) / real_variance[stars], np.nan), axis=0)
            model_profile = np.median(model_variance[stars][:, reference].mean(axis=1, keepdims=True) / model_variance[stars], axis=0)
        axes[1].plot(wavelength[model], real_profile[model], color=colour, lw=0.6, label=f"real, S/N {lo:g}-{hi:g}")
        axes[1].plot(wavelength[model], model_profile[model], color=colour, lw=0.6, ls="--", label="model (simulated)")
    axes[1].set_ylabel("ivar / ivar near 5550 A (held out)")
    axes[1].set_xlabel("wavelength (A, vacuum)")
    axes[1].legend(fontsize=6, ncol=4)
    axes[0].set_title("Noise variance of real LAMOST DR10 spectra: source throughput and background profiles (for SIMULATED spectra)")
    fig.tight_layout()
    fig.savefig(RESULTS / "sim_fit_lamost_background.png", dpi=80)
    return 0


if __name__ == "__main__":
    sys.exit(main())
