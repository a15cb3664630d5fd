"""Learn the parts of LAMOST-like simulations drawn from real spectra (specclip_sim.empirical) from the
training 70% of the real DR10 stars (sim_common.in_train_split), and ship them with the LAMOST
calibration (plugins/specclip-lamost/src/specclip_lamost/calibrations/lamost_lrs_parts.npz, named with its
SHA-256 in lamost_lrs.json).

Each training star's native spectrum (3,909 px) is compared with its noiseless simulated twin (LASP
labels, rv, the shipped calibration with its correction, no flux-calibration error, on the native grid):

1. flux shapes: log(real / twin) fitted per star by a degree-12 Legendre series in log(lambda) over
   3750-5900 A (inverse-variance weights with a 1% floor, one 4-sigma clipping pass);
2. residuals in sigma units: chi = (real - twin * shape) * sqrt(ivar);
3. noise: per pixel, the robust scale (biweight) of chi over the stars of S/N(g) < 30 (where the
   emulator's own errors are small against the noise; 1 outside 3800-5850 A), and chi's
   autocorrelation at lags 1-4 (4000-5600 A, sky windows excluded) turned into a kernel;
4. sky: windows of +-10 A around the night-sky lines in 4000-5600 A (O I 5578.9, Hg I 4047.7,
   4359.6, 5462.3 A, vacuum) where the noise amplitude of step 3 (low S/N: the emulator's errors at
   stellar lines do not count) exceeds its 101-px running median by more than 15%; each training
   star whose window pixels are all usable gives one template.

    .venv/bin/python bench/sim_fit_lamost_parts.py
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
from astropy.stats import biweight_scale
from numpy.polynomial import legendre
from scipy.ndimage import median_filter
from sim_common import DR10, RESULTS, in_train_split, start_dr10_bench

from specclip_lamost.grid import LOG_STEP
from specclip_lamost.readers import read_lamost
from specclip_sim.calibration import calibration_path, file_sha256, load_calibration
from specclip_sim.distributions import FluxCalibrationError
from specclip_sim.empirical import kernel_from_autocorrelation
from specclip_sim.observe import NativeObserver
from specclip_sim.simulate import SimulationSettings

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

SHAPE_RANGE = (3750.0, 5900.0)
SHAPE_DEGREE = 12
NOISE_RANGE = (3800.0, 5850.0)
LOW_SNR = 30.0
SKY_LINES = (4047.7, 4359.6, 5462.3, 5578.9)
SKY_HALF_WIDTH = 10.0
SKY_EXCESS = 1.15
LAGS = 4


def read_native(files: list[str], n_pixels: int, start: float) -> tuple[np.ndarray, np.ndarray]:
    """Flux and ivar (0 where masked or absent) of real spectra placed on the calibration grid."""
    flux = np.zeros((len(files), n_pixels), np.float64)
    ivar = np.zeros_like(flux)
    for i, name in enumerate(files):
        spectrum = read_lamost(DR10 / name)
        w, f, iv, m = spectrum.wavelength, spectrum.flux[0], spectrum.ivar[0], spectrum.mask[0]
        offset = int(round((np.log10(w[0]) - np.log10(start)) / LOG_STEP))
        lo, hi = max(offset, 0), min(offset + len(w), n_pixels)
        flux[i, lo:hi] = f[lo - offset : hi - offset]
        ivar[i, lo:hi] = np.where(m, 0.0, iv)[lo - offset : hi - offset]
    return flux, ivar


def fit_shapes(wavelength, real, ivar, twin) -> tuple[np.ndarray, np.ndarray]:
    """Legendre coefficients (N, D+1) of log(real / twin) and the fitted log shape (N, L)."""
    lo, hi = np.log(SHAPE_RANGE)
    inside = (wavelength >= SHAPE_RANGE[0]) & (wavelength <= SHAPE_RANGE[1])
    u = np.clip(2.0 * (np.log(wavelength) - lo) / (hi - lo) - 1.0, -1.0, 1.0)
    basis = legendre.legvander(u, SHAPE_DEGREE)
    good = (ivar > 0) & (real > 0) & (twin > 0) & inside
    with np.errstate(divide="ignore", invalid="ignore"):
        y = np.where(good, np.log(real / twin), 0.0)
        weight = np.where(good, 1.0 / (1.0 / (real**2 * ivar) + 0.01**2), 0.0)
    coefficients = None
    for _ in range(2):
        normal = np.einsum("np,pd,pe->nde", weight, basis, basis) + 1e-6 * np.eye(SHAPE_DEGREE + 1)
        coefficients = np.linalg.solve(normal, np.einsum("np,pd->nd", weight * y, basis)[..., None])[..., 0]
        residual = (y - coefficients @ basis.T) * np.sqrt(weight)
        weight = np.where(np.abs(residual) < 4.0, weight, 0.0)
    return coefficients, coefficients @ basis.T


def autocorrelation(chi: np.ndarray, usable: np.ndarray, lags: int) -> np.ndarray:
    values = np.where(usable, chi, 0.0)
    zero = np.sum(values**2) / usable.sum()
    out = [1.0]
    for k in range(1, lags + 1):
        both = usable[:, k:] & usable[:, :-k]
        out.append(float(np.sum(values[:, k:] * values[:, :-k] * both) / both.sum() / zero))
    return np.array(out)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=200)
    args = parser.parse_args()
    begun = start_dr10_bench()
    if begun is None:
        return 1
    started, load, store, ids, inputs = begun
    train = in_train_split(ids)
    rows = np.flatnonzero(train)
    with open(DR10 / "labels.csv", newline="") as handle:
        file_of = {row["obsid"]: row["file"] for row in csv.DictReader(handle)}
    calibration = load_calibration("lamost_lrs")
    n_native = len(calibration.throughput)
    wavelength = calibration.native_wavelength(n_native)
    real, ivar = read_native([file_of[i] for i in ids[rows]], n_native, calibration.wavelength_start)
    settings = SimulationSettings(flux_calibration=FluxCalibrationError(rms=0.0))
    observer = NativeObserver("lamost_lrs", calibration=calibration, settings=settings, noise=False, sky=False, flux_shapes=False, variety=False)
    twin_inputs = {k: v[rows] for k, v in inputs.items()}
    twin_inputs["snr"] = np.full(len(rows), 1e6)
    raw = observer.simulator.simulate(twin_inputs, ids[rows], observer.snr_values, args.seed)
    offset = calibration.pixel_offset(np.asarray(observer.instrument.native_wavelength))
    twin = np.zeros_like(real)
    twin[:, max(offset, 0) : max(offset, 0) + raw.flux.shape[1]] = raw.flux[:, : n_native - max(offset, 0)]
    snr = inputs["snr"][rows]
    teff = inputs["teff"][rows]

    coefficients, log_shape = fit_shapes(wavelength, real, ivar, twin)
    usable = (ivar > 0) & (twin > 0)
    chi = np.where(usable, (real - twin * np.exp(log_shape)) * np.sqrt(ivar), 0.0)
    chi = np.where(np.abs(chi) < 50, chi, 0.0)
    usable &= np.abs(chi) < 50

    low = snr < LOW_SNR
    in_noise_range = (wavelength >= NOISE_RANGE[0]) & (wavelength <= NOISE_RANGE[1])
    scale = np.ones(n_native)
    masked_chi = np.ma.masked_array(chi[low], ~usable[low])
    scale[in_noise_range] = biweight_scale(masked_chi[:, in_noise_range], axis=0, ignore_nan=True).filled(1.0)
    scale = np.where(np.isfinite(scale) & (scale > 0.2), scale, 1.0)

    spread = np.sqrt(np.sum(chi**2, axis=0) / np.maximum(usable.sum(axis=0), 1))
    baseline = median_filter(scale, size=101, mode="nearest")
    sky_pixels, sky_lines = [], []
    for line in SKY_LINES:
        window = np.flatnonzero(np.abs(wavelength - line) <= SKY_HALF_WIDTH)
        excess = float(scale[window].max() / baseline[window].mean())
        sky_lines.append({"line": line, "excess": excess, "used": excess > SKY_EXCESS})
        if excess > SKY_EXCESS:
            sky_pixels.append(window)
    sky_pixels = np.concatenate(sky_pixels) if sky_pixels else np.zeros(0, np.int64)
    complete = usable[:, sky_pixels].all(axis=1)
    templates = chi[complete][:, sky_pixels]

    in_model = (wavelength >= 4000) & (wavelength <= 5600)
    not_sky = np.ones(n_native, bool)
    not_sky[sky_pixels] = False
    rho = autocorrelation(chi[low][:, in_model & not_sky] / scale[in_model & not_sky], usable[low][:, in_model & not_sky], LAGS)
    kernel = kernel_from_autocorrelation(rho)

    parts_path = calibration_path("lamost_lrs").with_name("lamost_lrs_parts.npz")
    np.savez_compressed(
        parts_path,
        noise_scale=scale.astype(np.float32),
        noise_kernel=kernel.astype(np.float32),
        sky_pixels=sky_pixels.astype(np.int32),
        sky_templates=templates.astype(np.float16),
        sky_snr=snr[complete].astype(np.float32),
        shape_range=np.array(SHAPE_RANGE),
        shape_coefficients=coefficients.astype(np.float32),
        shape_teff=teff.astype(np.float32),
    )
    measured = dict(calibration.measured)
    measured["parts"] = {
        "by": "bench/sim_fit_lamost_parts.py",
        "date": datetime.date.today().isoformat(),
        "data": f"{len(rows)} LAMOST DR10 training stars (sim_common.in_train_split) against noiseless twins (seed {args.seed})",
        "noise": f"biweight scale of chi over {int(low.sum())} stars of S/N(g) < {LOW_SNR:g}, {NOISE_RANGE[0]:g}-{NOISE_RANGE[1]:g} A; kernel from lags 1-{LAGS} autocorrelation {np.round(rho[1:], 4).tolist()}",
        "sky": f"{len(templates)} templates over {len(sky_pixels)} px around {[s['line'] for s in sky_lines if s['used']]} A",
        "flux_shapes": f"{len(coefficients)} degree-{SHAPE_DEGREE} Legendre shapes of log(real / twin), {SHAPE_RANGE[0]:g}-{SHAPE_RANGE[1]:g} A",
    }
    calibration.model_copy(update={"parts_file": parts_path.name, "parts_sha256": file_sha256(parts_path), "measured": measured}).save(calibration_path("lamost_lrs"))

    seconds = time.perf_counter() - started
    scale_model = scale[in_model]
    w_model = wavelength[in_model]
    by_snr = []
    for lo_snr, hi_snr in ((0, 20), (20, 30), (30, 50), (50, 100), (100, 1e9)):
        stars = (snr >= lo_snr) & (snr < hi_snr)
        s = biweight_scale(np.ma.masked_array(chi[stars][:, in_model & not_sky], ~usable[stars][:, in_model & not_sky]), axis=0, ignore_nan=True).filled(np.nan)
        by_snr.append(f"| {lo_snr:g}-{hi_snr:g} | {int(stars.sum())} | {np.nanmedian(s):.3f} | {np.nanmedian(s[w_model[not_sky[in_model]] < 4040]):.3f} |")
    shape_model = log_shape[:, in_model]
    shape_model = shape_model - shape_model.mean(axis=1, keepdims=True)
    lines = [
        "# Parts of LAMOST-like simulations drawn from real DR10 spectra (simulated twins)",
        "",
        f"`python bench/sim_fit_lamost_parts.py --seed {args.seed}`, {datetime.datetime.now():%Y-%m-%d %H:%M}; {load} (at start); {seconds:.0f} s.",
        "",
        f"{len(rows)} DR10 training stars (sim_common.in_train_split) against their noiseless simulated twins on the native grid. chi = (real - twin * shape) * sqrt(ivar).",
        f"Written: `{parts_path.name}` ({parts_path.stat().st_size / 1024:.0f} KiB), named with its SHA-256 in lamost_lrs.json.",
        "",
        "## Noise (real chi against the pipeline's ivar; 1 = ivar is right)",
        "",
        f"Noise amplitude over 4000-5600 A from stars with S/N(g) < {LOW_SNR:g} ({int(low.sum())}): median {np.median(scale_model):.3f}, "
        f"4000-4040 A {np.median(scale_model[w_model < 4040]):.3f}, 5500-5600 A {np.median(scale_model[w_model > 5500]):.3f}, 1st-99th percentile {np.percentile(scale_model, 1):.3f}-{np.percentile(scale_model, 99):.3f}.",
        f"Pixel autocorrelation of chi at lags 1-{LAGS} (resampling): {', '.join(f'{r:.3f}' for r in rho[1:])}; kernel {', '.join(f'{k:.3f}' for k in kernel)}.",
        "",
        "Robust scale of chi (4000-5600 A without sky windows) by S/N(g): above 1 at high S/N is the emulator's error (after its correction), not noise.",
        "",
        "| S/N(g) | stars | median scale | median scale 4000-4040 A |",
        "|---|---|---|---|",
        *by_snr,
        "",
        "## Sky lines (peak noise amplitude near the line over its 101-px running median, S/N(g) < 30)",
        "",
        "| line (A, vacuum) | excess | modelled |",
        "|---|---|---|",
        *[f"| {s['line']:.1f} | {s['excess']:.2f} | {'yes' if s['used'] else 'no'} |" for s in sky_lines],
        "",
        f"{len(templates)} templates (stars whose window pixels are all usable), {len(sky_pixels)} px.",
        "",
        "## Flux-calibration shapes (log real / twin, 4000-5600 A, mean removed)",
        "",
        f"Per-star RMS: median {np.median(np.std(shape_model, axis=1)):.4f}, 90th percentile {np.percentile(np.std(shape_model, axis=1), 90):.4f} "
        f"(the random flux-calibration error it replaces: 5% RMS over 3700-9100 A).",
        "",
        "![noise, sky and shapes](sim_fit_lamost_parts.png)",
        "",
    ]
    (RESULTS / "sim_fit_lamost_parts.md").write_text("\n".join(lines))
    (RESULTS / "sim_fit_lamost_parts.json").write_text(json.dumps({"rho": rho.tolist(), "kernel": kernel.tolist(), "sky": sky_lines, "seconds": seconds}, indent=1))
    print("\n".join(lines))

    fig, axes = plt.subplots(3, 1, figsize=(12, 9))
    axes[0].plot(wavelength[in_model], scale_model, lw=0.6, label=f"noise amplitude (S/N(g) < {LOW_SNR:g})")
    axes[0].plot(wavelength[in_model], spread[in_model] / np.median(spread[in_model]), lw=0.6, alpha=0.7, label="RMS of chi, all stars (relative)")
    axes[0].set_ylabel("real noise / ivar noise")
    axes[0].legend(fontsize=8)
    for line in SKY_LINES:
        axes[0].axvline(line, color="grey", lw=0.5, ls=":")
    zoom = np.abs(wavelength - 5578.9) < 30
    for k in range(min(20, len(templates))):
        axes[1].plot(wavelength[sky_pixels][np.abs(wavelength[sky_pixels] - 5578.9) < 30], templates[k][np.abs(wavelength[sky_pixels] - 5578.9) < 30], lw=0.5)
    axes[1].plot(wavelength[zoom], spread[zoom], "k", lw=1.2, label="RMS of chi")
    axes[1].set_ylabel("chi near 5578.9 A (real)")
    axes[1].legend(fontsize=8)
    for k in range(0, len(coefficients), max(1, len(coefficients) // 30)):
        axes[2].plot(wavelength[in_model], shape_model[k], lw=0.5)
    axes[2].set_ylabel("log(real / twin) shape")
    axes[2].set_xlabel("wavelength (A, vacuum)")
    axes[0].set_title("LAMOST DR10 (real) against noiseless SIMULATED twins: noise, sky residuals, flux shapes")
    fig.tight_layout()
    fig.savefig(RESULTS / "sim_fit_lamost_parts.png", dpi=80)
    return 0


if __name__ == "__main__":
    sys.exit(main())
