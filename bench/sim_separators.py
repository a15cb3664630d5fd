"""What separates real LAMOST DR10 spectra from their simulated twins, feature by feature (simulated data).

The twins are those of bench/sim_realism.py (same labels, rv, S/N, seed 0, sim_realism.observer_for's
variants); everything is measured on the held-out 30% of the stars (sim_common.in_train_split), on the
preprocessed spectra (lamost_lrs, 4000-5600 A), for each variant:

- real - simulated: per pixel mean and scatter by Teff bin, and its smooth part (the continuum-fit
  residual: a 101-pixel running mean of real - simulated, RMS per star);
- noise: the high-frequency scatter d = x_i - (x_{i-1} + x_{i+1}) / 2 per pixel (robust scale over
  stars), real over simulated, overall, at the blue edge (4000-4040 A) and by S/N(g); its lag-1
  autocorrelation (pixel correlation from resampling); the real and simulated ivar's S/N against
  the header S/N;
- sky: the RMS of real - simulated over 5570-5590 A (O I 5578.9 A) over that of 5500-5560 A;
- masks: masked fraction, real and simulated;
- the population's residual: per star the RMS of real - simulated over 4000-5600 A and the RMS that
  both spectra's ivar alone would give (median over stars).

    .venv/bin/python bench/sim_separators.py [--variants no-parts calibrated]
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time

import matplotlib
import numpy as np
from astropy.stats import biweight_scale
from scipy.ndimage import uniform_filter1d
from sim_common import RESULTS, align, in_train_split, simulate_preprocessed, start_dr10_bench, variant_arguments
from sim_realism import observer_for

from specclip_lamost.grid import MODEL_WAVELENGTH
from specclip_sim.emulator import Emulator

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

TEFF_BINS = ((0, 6000), (6000, 8000), (8000, 1e9))
SNR_BINS = ((0, 20), (20, 50), (50, 100), (100, 1e9))
W = MODEL_WAVELENGTH


def high_frequency(flux: np.ndarray) -> np.ndarray:
    return flux[:, 1:-1] - 0.5 * (flux[:, :-2] + flux[:, 2:])


def robust_scale(values: np.ndarray, usable: np.ndarray) -> np.ndarray:
    return biweight_scale(np.ma.masked_array(values, ~usable), axis=0, ignore_nan=True).filled(np.nan)


def lag1(values: np.ndarray, usable: np.ndarray) -> float:
    v = np.where(usable, values - np.nanmedian(np.where(usable, values, np.nan), axis=1, keepdims=True), 0.0)
    both = usable[:, 1:] & usable[:, :-1]
    return float(np.sum(v[:, 1:] * v[:, :-1] * both) / np.sqrt(np.sum(v[:, 1:] ** 2 * both) * np.sum(v[:, :-1] ** 2 * both)))


def measure(real, sim) -> dict:
    test = ~in_train_split(real.ids)
    r, s = real.subset(np.flatnonzero(test)), sim.subset(np.flatnonzero(test))
    both = ~r.mask & ~s.mask
    diff = np.where(both, r.flux - s.flux, np.nan)
    teff, snr = r.meta["teff"], r.meta["snrg"]
    out: dict = {"n_test": int(test.sum())}
    out["mean_by_teff"] = {f"{lo:g}-{hi:g}": np.nanmean(diff[(teff >= lo) & (teff < hi)], axis=0).tolist() for lo, hi in TEFF_BINS}
    out["scatter_by_teff"] = {f"{lo:g}-{hi:g}": np.nanstd(diff[(teff >= lo) & (teff < hi)], axis=0).tolist() for lo, hi in TEFF_BINS}
    filled = np.where(both, r.flux - s.flux, 0.0)
    smooth = uniform_filter1d(filled, 101, axis=1) / np.maximum(uniform_filter1d(both.astype(float), 101, axis=1), 1e-3)
    out["continuum_rms"] = float(np.median(np.sqrt(np.mean(smooth**2, axis=1))))
    hr, hs = high_frequency(r.flux), high_frequency(s.flux)
    ur = ~r.mask[:, 1:-1] & ~r.mask[:, :-2] & ~r.mask[:, 2:]
    us = ~s.mask[:, 1:-1] & ~s.mask[:, :-2] & ~s.mask[:, 2:]
    w = W[1:-1]
    ratio = robust_scale(hr, ur) / robust_scale(hs, us)
    out["hf_ratio"] = ratio.tolist()
    out["hf_ratio_median"] = float(np.nanmedian(ratio))
    out["hf_ratio_blue_edge"] = float(np.nanmedian(ratio[w < 4040]))
    out["hf_ratio_by_snr"] = {}
    for lo, hi in SNR_BINS:
        stars = (snr >= lo) & (snr < hi)
        out["hf_ratio_by_snr"][f"{lo:g}-{hi:g}"] = float(np.nanmedian(robust_scale(hr[stars], ur[stars]) / robust_scale(hs[stars], us[stars])))
    low = snr < 30
    out["lag1_real"], out["lag1_sim"] = lag1(hr[low], ur[low]), lag1(hs[low], us[low])
    in_band = (W >= 4000) & (W <= 5500)
    out["ivar_snr_over_header_real"] = float(np.median(np.nanmedian(np.where(r.mask, np.nan, r.flux * np.sqrt(r.ivar))[:, in_band], axis=1) / snr))
    out["ivar_snr_over_header_sim"] = float(np.median(np.nanmedian(np.where(s.mask, np.nan, s.flux * np.sqrt(s.ivar))[:, in_band], axis=1) / snr))
    sky, near = (W >= 5570) & (W <= 5590), (W >= 5500) & (W <= 5560)
    out["sky_rms_ratio"] = float(np.sqrt(np.nanmean(diff[:, sky] ** 2)) / np.sqrt(np.nanmean(diff[:, near] ** 2)))
    hf_sky = (w >= 5570) & (w <= 5590)
    out["sky_hf_real_over_sim"] = float(np.nanmedian(ratio[hf_sky]))
    out["masked_real"], out["masked_sim"] = float(r.mask.mean()), float(s.mask.mean())
    with np.errstate(divide="ignore"):
        noise = np.sqrt(np.nanmean(np.where(both, 1.0 / r.ivar + 1.0 / s.ivar, np.nan), axis=1))
    residual = np.sqrt(np.nanmean(diff**2, axis=1))
    out["residual_rms"], out["noise_rms"] = float(np.median(residual)), float(np.median(noise))
    out["residual_over_noise"] = float(np.median(residual / noise))
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    variant_arguments(parser, ["no-parts", "calibrated"], "sim_separators")
    args = parser.parse_args()
    begun = start_dr10_bench()
    if begun is None:
        return 1
    started, load, store, ids, inputs = begun
    real_all = store.spectra("lamost_lrs")
    emulator = Emulator.load()
    results = {}
    for variant in args.variants:
        simulated, _, _ = simulate_preprocessed(observer_for(variant, emulator, args.calibration), ids, inputs, seed=0, workers=args.workers, progress=False)
        results[variant] = measure(*align(real_all, simulated))
        print(variant, {k: v for k, v in results[variant].items() if not isinstance(v, (list, dict))}, flush=True)

    lines = [
        "# What separates real LAMOST DR10 spectra from simulated twins (simulated data)",
        "",
        f"`python bench/sim_separators.py --variants {' '.join(args.variants)}{f' --calibration {args.calibration}' if args.calibration else ''} --name {args.name}`, {datetime.datetime.now():%Y-%m-%d %H:%M}; {load} (at start); {time.perf_counter() - started:.0f} s.",
        "",
        f"Held-out test stars ({next(iter(results.values()))['n_test']}), preprocessed lamost_lrs spectra (4000-5600 A); twins as in sim_realism.md (seed 0).",
        "High-frequency noise: robust scale over stars of x_i - (x_(i-1) + x_(i+1))/2 per pixel, real over simulated (1 = same).",
        "",
        "| variant (simulated) | HF noise real/sim, median | 4000-4040 A | " + " | ".join(f"S/N {k}" for k in results[args.variants[0]]["hf_ratio_by_snr"])
        + " | lag-1 corr. real / sim (S/N<30) | ivar S/N / header, real / sim | sky RMS 5570-5590 / 5500-5560 | HF real/sim 5570-5590 | continuum-residual RMS | masked real / sim | residual RMS (noise RMS) | residual / noise |",
        "|---|---|---|" + "---|" * len(SNR_BINS) + "---|---|---|---|---|---|---|---|",
    ]
    for v, r in results.items():
        lines.append(
            f"| {v} | {r['hf_ratio_median']:.3f} | {r['hf_ratio_blue_edge']:.3f} | " + " | ".join(f"{x:.3f}" for x in r["hf_ratio_by_snr"].values())
            + f" | {r['lag1_real']:.3f} / {r['lag1_sim']:.3f} | {r['ivar_snr_over_header_real']:.3f} / {r['ivar_snr_over_header_sim']:.3f} | {r['sky_rms_ratio']:.2f} "
            f"| {r['sky_hf_real_over_sim']:.2f} | {r['continuum_rms']:.4f} | {r['masked_real']:.2%} / {r['masked_sim']:.2%} | {r['residual_rms']:.4f} ({r['noise_rms']:.4f}) | {r['residual_over_noise']:.2f} |"
        )
    lines += ["", "Mean and scatter of real - simulated by Teff bin (test stars), RMS over 4000-5600 A of the per-pixel mean:", "", "| variant (simulated) | " + " | ".join(f"Teff {lo:g}-{hi:g} K" for lo, hi in TEFF_BINS) + " |", "|---|" + "---|" * len(TEFF_BINS)]
    for v, r in results.items():
        lines.append(f"| {v} | " + " | ".join(f"{np.sqrt(np.nanmean(np.square(m))):.4f}" for m in r["mean_by_teff"].values()) + " |")
    lines += ["", f"![real - simulated by Teff bin, noise ratio]({args.name}.png)", ""]
    (RESULTS / f"{args.name}.md").write_text("\n".join(lines))
    (RESULTS / f"{args.name}.json").write_text(json.dumps({v: {k: x for k, x in r.items() if not isinstance(x, (list, dict)) or k == "hf_ratio_by_snr"} for v, r in results.items()}, indent=1))
    print("\n".join(lines))

    fig, axes = plt.subplots(len(results) + 1, 1, figsize=(12, 3 * (len(results) + 1)), sharex=True)
    for ax, (v, r) in zip(axes, results.items()):
        for key, mean in r["mean_by_teff"].items():
            line = ax.plot(W, mean, lw=0.6, label=f"mean, Teff {key} K")[0]
            ax.fill_between(W, np.asarray(mean) - np.asarray(r["scatter_by_teff"][key]), np.asarray(mean) + np.asarray(r["scatter_by_teff"][key]), color=line.get_color(), alpha=0.08, lw=0)
        ax.set_ylim(-0.15, 0.15)
        ax.set_ylabel(f"real - sim ({v})")
        ax.legend(fontsize=7, ncol=3)
    for v, r in results.items():
        axes[-1].plot(W[1:-1], uniform_filter1d(np.nan_to_num(np.asarray(r["hf_ratio"]), nan=1.0), 5), lw=0.6, label=v)
    axes[-1].axhline(1.0, color="k", lw=0.5)
    axes[-1].set_ylabel("HF noise real / simulated")
    axes[-1].set_xlabel("wavelength (A, vacuum)")
    axes[-1].legend(fontsize=8)
    axes[0].set_title("Real LAMOST DR10 minus SIMULATED twins (held-out stars): mean +- scatter by Teff bin; high-frequency noise ratio")
    fig.tight_layout()
    fig.savefig(RESULTS / f"{args.name}.png", dpi=80)
    return 0


if __name__ == "__main__":
    sys.exit(main())
