"""Validate the lamost_lrs continuum normalisation against the LAMOST pipeline's own.

Reads every DR10 spectrum of ../shared/data/lamost-dr10 (2,224 files), preprocesses them exactly as
an ingest does (``LamostLRS.preprocess``: Appendix-B continuum on the native grid, flux / continuum,
resampled onto the 1462-pixel model grid) and compares the result with the file's NORMALIZATION
column (the pipeline's normalised flux) resampled onto the same grid, over 4000-5600 A, by S/N(g)
(header SNRG) and by spectral type. Writes bench/results/lamost_continuum.md and two figures.

    .venv/bin/python bench/lamost_continuum.py [--data ../shared/data] [--out bench/results]
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from astropy.io import fits  # noqa: E402

from specclip_core.interfaces import Spectra  # noqa: E402
from specclip_lamost.continuum import BLUE_RANGE, fit_continuum  # noqa: E402
from specclip_lamost.grid import NATIVE_WAVELENGTH  # noqa: E402
from specclip_lamost.modality import LamostLRS  # noqa: E402
from specclip_lamost.readers import read_lamost  # noqa: E402
from specclip_lamost.resample import Interpolation  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SNR_BINS = [(0, 20), (20, 50), (50, 100), (100, 200), (200, np.inf)]
MODEL = LamostLRS()


def default_data() -> Path:
    return Path(os.environ.get("SPECCLIP_SHARED_DATA", REPO.parent / "shared" / "data"))


def load(path: Path) -> tuple[Spectra, np.ndarray]:
    """The raw spectrum (plugin reader) and the file's NORMALIZATION column."""
    spectra = read_lamost(path)
    normalisation = fits.getdata(path, "COADD")["NORMALIZATION"][0].astype(np.float64)
    return spectra, normalisation


def normalisation_kind(spectra: list[Spectra], pipeline: list[np.ndarray]) -> dict[str, float]:
    """Evidence of what NORMALIZATION is: its level, and how smooth FLUX / NORMALIZATION is."""
    level, flux_level, rough_ratio, rough_flux, ones_blue, ones_red = [], [], [], [], [], []
    for raw, norm in zip(spectra, pipeline):
        if norm.size != raw.flux.shape[1] or np.all(norm <= -9000):
            continue
        w, flux, good = raw.wavelength, raw.flux[0].astype(np.float64), ~raw.mask[0]
        band = (w >= 4000) & (w <= 5600) & good & (norm > 0)
        level.append(np.median(norm[band]))
        flux_level.append(np.median(flux[band]))
        implied = flux[band] / norm[band]
        rough_ratio.append(np.median(np.abs(np.diff(implied, 2))) / np.median(implied))
        rough_flux.append(np.median(np.abs(np.diff(flux[band], 2))) / np.median(flux[band]))
        ones = np.flatnonzero(norm != 1.0)
        ones_blue.append(w[ones[0]] if ones.size else np.nan)
        ones_red.append(w[ones[-1]] if ones.size else np.nan)
    return {
        "n": len(level),
        "norm_median": float(np.median(level)),
        "flux_median": float(np.median(flux_level)),
        "rough_implied": float(np.median(rough_ratio)),
        "rough_flux": float(np.median(rough_flux)),
        "first_not_one": float(np.nanmedian(ones_blue)),
        "last_not_one": float(np.nanmedian(ones_red)),
    }


def compare(spectra: list[Spectra], pipeline: list[np.ndarray], usable: list[bool], blue_range: tuple[float, float]) -> dict[str, np.ndarray]:
    """Per spectrum: median |ours - pipeline| and median (ours - pipeline) on the model grid."""
    n = len(spectra)
    mad, signed = np.full(n, np.nan), np.full(n, np.nan)
    by_grid: dict[bytes, list[int]] = {}
    for i, raw in enumerate(spectra):
        if usable[i]:
            by_grid.setdefault(raw.wavelength.tobytes(), []).append(i)
    for rows in by_grid.values():
        raw = Spectra.concatenate([spectra[i] for i in rows])
        good = ~raw.mask
        continuum = fit_continuum(raw.wavelength, raw.flux, good, blue_range)
        onto = Interpolation.between(raw.wavelength, MODEL.wavelength)
        ours = onto.values(raw.flux / continuum)
        theirs = onto.values(np.stack([pipeline[i] for i in rows]))
        bad = onto.bad(~good | ~np.isfinite(raw.flux))
        for k, i in enumerate(rows):
            diff = (ours[k] - theirs[k])[~bad[k]]
            mad[i], signed[i] = np.median(np.abs(diff)), np.median(diff)
    return {"mad": mad, "signed": signed}


def synthetic_bias(snrs: tuple[float, ...] = (10, 20, 50, 100, 500), n: int = 50, seed: int = 7) -> list[tuple[float, float, float]]:
    """(S/N, median, 90th percentile of |fit / truth - 1|) over 4000-5600 A for a simulated star of known continuum:
    a smooth curve times Balmer, metal and 300 weak lines, with Gaussian noise at S/N per pixel."""
    rng = np.random.default_rng(seed)
    w = NATIVE_WAVELENGTH
    x = (w - 6000) / 3000
    truth = 1000 * (1.2 - 0.3 * x - 0.5 * x**2 + 0.2 * x**3) * (1 - 0.35 * np.exp(-(((w - 3800) / 250) ** 2)))
    lines = np.ones_like(w)
    for centre, depth, width in [(4102, 0.5, 12), (4341, 0.55, 12), (4861, 0.5, 10), (5175, 0.3, 4), (4227, 0.3, 2.5), (5890, 0.35, 3)]:
        lines *= 1 - depth * np.exp(-0.5 * ((w - centre) / width) ** 2)
    for centre in rng.uniform(3900, 9000, 300):
        lines *= 1 - rng.uniform(0.02, 0.15) * np.exp(-0.5 * ((w - centre) / 1.5) ** 2)
    band = (w >= 4000) & (w <= 5600)
    out = []
    for snr in snrs:
        flux = truth * lines + rng.normal(0.0, 1.0, (n, w.size)) * truth / snr
        ratio = fit_continuum(w, flux)[:, band] / truth[band] - 1
        out.append((snr, float(np.median(ratio)), float(np.percentile(np.abs(ratio), 90))))
    return out


def table(mad: np.ndarray, signed: np.ndarray, groups: list[tuple[str, np.ndarray]]) -> list[str]:
    lines = ["| bin | N | median of MAD | 16-84 % of MAD | 90 % of MAD | median signed (ours - pipeline) |", "|---|---|---|---|---|---|"]
    for label, rows in groups:
        rows = rows & np.isfinite(mad)
        if not rows.any():
            continue
        m = mad[rows]
        lines.append(
            f"| {label} | {rows.sum()} | {np.median(m):.4f} | {np.percentile(m, 16):.4f}-{np.percentile(m, 84):.4f} "
            f"| {np.percentile(m, 90):.4f} | {np.median(signed[rows]):+.4f} |"
        )
    return lines


def snr_groups(snr: np.ndarray) -> list[tuple[str, np.ndarray]]:
    out = []
    for low, high in SNR_BINS:
        label = f"S/N(g) < {high:g}" if low == 0 else (f"S/N(g) > {low:g}" if np.isinf(high) else f"{low:g} <= S/N(g) < {high:g}")
        out.append((label, (snr >= low) & (snr < high)))
    return out + [("all", np.ones_like(snr, dtype=bool))]


def plot_examples(spectra, pipeline, snr, rows, path: Path) -> None:
    """Flux with both continua (left) and both normalised fluxes (right) for spectra across S/N."""
    fig, axes = plt.subplots(len(rows), 2, figsize=(15, 3.1 * len(rows)), gridspec_kw={"width_ratios": [1, 1.3]})
    for ax, i in zip(axes, rows):
        raw, norm = spectra[i], pipeline[i]
        w, flux, good = raw.wavelength, raw.flux[0], ~raw.mask[0]
        continuum = fit_continuum(w, raw.flux, raw.mask == 0)[0]
        with np.errstate(divide="ignore", invalid="ignore"):
            theirs = np.where((norm > 0) & (norm != 1.0), flux / norm, np.nan)
        top = np.nanpercentile(flux[good], 99.5) * 1.25
        ax[0].plot(w, np.where(good, flux, np.nan), color="0.3", lw=0.4, label="flux")
        ax[0].plot(w, continuum, color="C0", lw=1.4, label="our continuum")
        ax[0].plot(w, theirs, color="C1", lw=1.2, ls="--", label="pipeline continuum (FLUX / NORMALIZATION)")
        ax[0].set(xlim=(3700, 9100), ylim=(0, top), ylabel="flux")
        ax[0].set_title(f"OBSID {raw.ids[0]}  {raw.meta['subclass'][0]}  S/N(g) {snr[i]:.0f}", fontsize=9)
        band = (w >= 3900) & (w <= 5700)
        ax[1].axvspan(4000, 5600, color="0.93")
        ax[1].plot(w[band], np.where(good, norm, np.nan)[band], color="C1", lw=0.6, label="pipeline normalised")
        ax[1].plot(w[band], np.where(good, flux / continuum, np.nan)[band], color="C0", lw=0.6, label="ours")
        ax[1].set(xlim=(3900, 5700), ylim=(0, 1.4), ylabel="normalised flux")
    axes[0, 0].legend(fontsize=7, loc="upper right")
    axes[0, 1].legend(fontsize=7, loc="lower right")
    axes[-1, 0].set_xlabel("wavelength (A, vacuum)")
    axes[-1, 1].set_xlabel("wavelength (A); shaded: model range 4000-5600 A")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_low_high(spectra, pipeline, snr, rows, path: Path) -> None:
    """A S/N ~ 10 and a S/N ~ 500 spectrum: flux and continuum fits over the blue segment and beyond."""
    fig, axes = plt.subplots(len(rows), 1, figsize=(13, 3.6 * len(rows)))
    for ax, i in zip(axes, rows):
        raw, norm = spectra[i], pipeline[i]
        w, flux, good = raw.wavelength, raw.flux[0], ~raw.mask[0]
        continuum = fit_continuum(w, raw.flux, raw.mask == 0)[0]
        with np.errstate(divide="ignore", invalid="ignore"):
            theirs = np.where((norm > 0) & (norm != 1.0), flux / norm, np.nan)
        ax.axvspan(4000, 5600, color="0.93")
        ax.plot(w, np.where(good, flux, np.nan), color="0.3", lw=0.5, label="flux")
        ax.plot(w, continuum, color="C0", lw=1.6, label="our continuum (Appendix B)")
        ax.plot(w, theirs, color="C1", lw=1.2, ls="--", label="pipeline continuum")
        ax.set(xlim=(3700, 9100), ylim=(0, np.nanpercentile(flux[good], 99.5) * 1.25), ylabel="flux")
        ax.set_title(f"OBSID {raw.ids[0]}  {raw.meta['subclass'][0]}  S/N(g) {snr[i]:.1f}", fontsize=10)
    axes[0].legend(fontsize=8, loc="upper right")
    axes[-1].set_xlabel("wavelength (A, vacuum); shaded: model range")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=default_data(), help="the shared data folder")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes reading files")
    args = parser.parse_args()
    files = sorted((args.data / "lamost-dr10" / "spectra").glob("spec-*.fits*"))
    if not files:
        raise SystemExit(f"no DR10 spectra under {args.data / 'lamost-dr10' / 'spectra'}")
    args.out.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    with ProcessPoolExecutor(args.workers) as pool:
        loaded = list(pool.map(load, files, chunksize=32))
    read_seconds = time.perf_counter() - started
    spectra, pipeline = [s for s, _ in loaded], [n for _, n in loaded]
    snr = np.array([s.meta["snrg"][0] for s in spectra])
    subclass = np.array([s.meta["subclass"][0] for s in spectra])
    no_norm = [s.ids[0] for s, n in zip(spectra, pipeline) if n.size == s.flux.shape[1] and np.all(n <= -9000)]
    wrong_size = [(s.ids[0], n.size, s.flux.shape[1]) for s, n in zip(spectra, pipeline) if n.size != s.flux.shape[1]]
    usable = [n.size == s.flux.shape[1] and not np.all(n <= -9000) for s, n in zip(spectra, pipeline)]

    started = time.perf_counter()
    shipped = compare(spectra, pipeline, usable, BLUE_RANGE)
    compare_seconds = time.perf_counter() - started
    from_3700 = compare(spectra, pipeline, usable, (3700.0, BLUE_RANGE[1]))
    kind = normalisation_kind(spectra, pipeline)

    order = np.argsort(snr)
    valid = order[np.asarray(usable)[order]]
    targets = [12, 35, 75, 150, 450]
    examples = [int(valid[np.argmin(np.abs(snr[valid] - t))]) for t in targets]
    low_high = [int(valid[np.argmin(np.abs(snr[valid] - t))]) for t in (10, 500)]
    plot_examples(spectra, pipeline, snr, examples, args.out / "lamost_continuum_examples.png")
    plot_low_high(spectra, pipeline, snr, low_high, args.out / "lamost_continuum_snr10_snr500.png")

    types = [(f"type {t}", np.char.startswith(subclass.astype(str), t)) for t in "AFGK"]
    mad, signed = shipped["mad"], shipped["signed"]
    lines = [
        "# lamost_lrs continuum vs the LAMOST pipeline's normalisation (DR10)",
        "",
        f"Written by `bench/lamost_continuum.py` from {len(files)} DR10 spectra in `{args.data / 'lamost-dr10'}`.",
        "",
        "## What the NORMALIZATION column is",
        "",
        f"Over 4000-5600 A its median value is {kind['norm_median']:.3f} (flux: {kind['flux_median']:.0f} in the",
        f"file's units), and FLUX / NORMALIZATION is smooth (median relative second difference {kind['rough_implied']:.1e},",
        f"against {kind['rough_flux']:.1e} for FLUX itself): NORMALIZATION is the pipeline's **normalised flux**, and its",
        "continuum is FLUX / NORMALIZATION. It is exactly 1.0 outside the range the pipeline fits (here from",
        f"{kind['first_not_one']:.0f} A to {kind['last_not_one']:.0f} A, medians over {kind['n']} spectra).",
        "",
        "## Agreement on the model grid (4000-5600 A, 1462 pixels)",
        "",
        "Per spectrum: the median over unmasked model pixels of |ours - pipeline|, where ours is the",
        "normalised flux `LamostLRS.preprocess` gives (Appendix-B continuum) and the pipeline's is",
        "NORMALIZATION interpolated onto the same grid. The table gives the distribution of that",
        "per-spectrum value. S/N(g) is the header SNRG of each file.",
        "",
        *table(mad, signed, snr_groups(snr)),
        "",
        "By spectral type (header SUBCLASS):",
        "",
        *table(mad, signed, types),
        "",
        f"Compared: {int(np.isfinite(mad).sum())} spectra. Left out: {len(no_norm)} with no pipeline normalisation",
        f"(NORM = 0 in the header, NORMALIZATION = -9999: OBSID {', '.join(no_norm)}) and {len(wrong_size)} whose",
        "NORMALIZATION column has another length than its FLUX column ("
        + ", ".join(f"OBSID {i}: {a} vs {b} pixels" for i, a, b in wrong_size)
        + "). Both kinds read and preprocess normally.",
        "",
        "The difference is a ratio of continua: ours - pipeline = (normalised flux) x (C_pipeline / C_ours - 1),",
        "so noise cancels and the numbers measure only how the two continua differ in shape and level.",
        "A positive signed difference means our continuum lies below the pipeline's: the pipeline",
        "places its continuum above the line-blanketed upper envelope of G and K stars, while the",
        "Appendix-B fit (10 lifting iterations of the 7-pixel median-filtered flux) stays on that envelope.",
        "",
        "## Iteration: where the blue segment starts",
        "",
        f"With the blue segment from 3700 A (the grid start) instead of {BLUE_RANGE[0]:.0f} A:",
        "",
        *table(from_3700["mad"], from_3700["signed"], snr_groups(snr) + types),
        "",
        f"The shipped setting ({BLUE_RANGE[0]:.0f}-{BLUE_RANGE[1]:.0f} A) is the first table.",
        "",
        "## Known continuum: a simulated star",
        "",
        "The fit is an upper envelope, so noise lifts it. On a simulated star of known continuum (smooth curve times",
        "Balmer, metal and 300 weak lines; 50 noise realisations per S/N), fitted continuum / true continuum - 1 over",
        "4000-5600 A:",
        "",
        "| S/N per pixel | median | 90 % of abs |",
        "|---|---|---|",
        *[f"| {snr:g} | {median:+.4f} | {p90:.4f} |" for snr, median, p90 in synthetic_bias()],
        "",
        "## Figures",
        "",
        "- `lamost_continuum_examples.png`: five spectra spanning S/N (OBSID "
        + ", ".join(f"{spectra[i].ids[0]} at {snr[i]:.0f}" for i in examples)
        + "): flux with our continuum and the pipeline's (left), both normalised fluxes (right).",
        "- `lamost_continuum_snr10_snr500.png`: a S/N ~ 10 and a S/N ~ 500 spectrum with both continua (OBSID "
        + " and ".join(f"{spectra[i].ids[0]} at S/N {snr[i]:.1f}" for i in low_high)
        + ").",
        "",
        "## Timing",
        "",
        f"Reading {len(files)} files (plugin reader plus NORMALIZATION, {args.workers} processes): {read_seconds:.1f} s;",
        f"continuum + resampling of all spectra on one core: {compare_seconds:.1f} s",
        f"({len(files) / compare_seconds:.0f} spectra/s).",
        "",
    ]
    (args.out / "lamost_continuum.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
