"""The three stars seen by both LAMOST (DR10) and Gaia XP: simulated from their APOGEE labels (the
labels the paired store uses) and compared with their real LAMOST spectra after the same lamost_lrs
preprocessing. Residual RMS of the normalised flux over 4000-5600 A, on pixels unmasked in both.

Each star is simulated three ways (all through native files, the reader and lamost_lrs):
  - "APOGEE, matched": APOGEE Teff/logg/[Fe/H]/A_K, with the real spectrum's rv (c z) and S/N(g),
    with and without the calibration's empirical correction;
  - "APOGEE, paired store": its row of the paired store (random rv and S/N, as used for training),
    when a paired store is given with --paired;
  - "LASP, matched": LAMOST's own pipeline labels, rv and S/N (separates label differences from
    emulator/instrument differences);
  - "APOGEE, matched, no parts": without the calibration's parts drawn from real spectra (noise,
    sky windows, flux shapes; specclip_sim.empirical), and, with --previous-calibration FILE,
    "APOGEE, matched, previous calibration": with an earlier calibration file (before and after).
The noise-only RMS expected from both spectra's ivar is listed for reference.

    .venv/bin/python bench/sim_three_stars.py [--paired STORE] [--previous-calibration FILE]
"""

from __future__ import annotations

import argparse
import datetime
import sys

import matplotlib
import numpy as np
from sim_common import DR10, RESULTS, THREE_STARS, dr10_store, in_train_split, machine

from specclip_core.data.datasets import fetch_dataset
from specclip_core.data.store import SpectralStore
from specclip_lamost.grid import MODEL_WAVELENGTH
from specclip_sim.calibration import read_calibration
from specclip_sim.observe import NativeObserver
from specclip_sim.wavelength import C_KMS

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

WINDOW = (4000.0, 5600.0)


def rms(real_flux, real_ivar, real_mask, sim_flux, sim_ivar, sim_mask) -> tuple[float, float, int]:
    w = MODEL_WAVELENGTH
    good = (w >= WINDOW[0]) & (w <= WINDOW[1]) & ~real_mask & ~sim_mask
    d = real_flux[good] - sim_flux[good]
    noise = np.sqrt(np.mean(1 / real_ivar[good] + 1 / sim_ivar[good]))
    return float(np.sqrt(np.mean(d**2))), float(noise), int(good.sum())


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--paired", help="a paired store made by `specclip data simulate lamost_lrs --like apogee-xp`")
    parser.add_argument("--previous-calibration", help="an earlier calibration file, for a before/after column")
    args = parser.parse_args()
    if not DR10.exists():
        print(f"needs {DR10}", file=sys.stderr)
        return 1
    dr10 = dr10_store()
    xp = SpectralStore.open(fetch_dataset("apogee-xp"))
    xp_row = {sid: i for i, sid in enumerate(xp.ids)}
    dr10_row = {sid: i for i, sid in enumerate(dr10.ids)}
    obsids = list(THREE_STARS)
    real = dr10.spectra("lamost_lrs", np.array([dr10_row[o] for o in obsids]))
    apogee = xp.labels(rows=np.array([xp_row[THREE_STARS[o]] for o in obsids]))
    lasp = real.meta
    rv, snr = lasp["z"] * C_KMS, lasp["snrg"]
    observer = NativeObserver("lamost_lrs")
    plain = NativeObserver("lamost_lrs", correction=False)
    a_k = np.where(np.isfinite(apogee["ak_targ"]) & (apogee["ak_targ"] > -1), apogee["ak_targ"], 0.0)
    apogee_inputs = {"teff": apogee["teff"], "logg": apogee["logg"], "feh": apogee["fe_h"], "a_k": a_k, "rv": rv, "snr": snr}
    runs = {
        "APOGEE, matched rv & S/N": (observer, apogee_inputs),
        "APOGEE, matched, no correction": (plain, apogee_inputs),
        "LASP, matched rv & S/N": (observer, {"teff": lasp["teff"], "logg": lasp["logg"], "feh": lasp["feh"], "a_k": np.zeros(3), "rv": rv, "snr": snr}),
        "APOGEE, matched, no parts": (NativeObserver("lamost_lrs", noise=False, sky=False, flux_shapes=False), apogee_inputs),
    }
    if args.previous_calibration:
        runs["APOGEE, matched, previous calibration"] = (NativeObserver("lamost_lrs", calibration=read_calibration(args.previous_calibration)), apogee_inputs)
    simulated = {}
    for name, (which, inputs) in runs.items():
        chunk = which.observe(inputs, np.array(obsids), seed=0)
        assert not chunk.rejected and list(chunk.spectra.ids) == obsids
        simulated[name] = chunk.spectra
    if args.paired:
        paired = SpectralStore.open(args.paired)
        where = {sid: i for i, sid in enumerate(paired.ids)}
        rows = np.array([where[THREE_STARS[o]] for o in obsids])
        simulated["APOGEE, paired store (random rv & S/N)"] = paired.spectra("lamost_lrs", rows)

    lines = [
        "# Three stars seen by LAMOST and Gaia XP: real LAMOST DR10 vs simulated (simulated data)",
        "",
        f"`python bench/sim_three_stars.py{' --paired ' + args.paired if args.paired else ''}{' --previous-calibration ' + args.previous_calibration if args.previous_calibration else ''}`, {datetime.datetime.now():%Y-%m-%d %H:%M}; {machine()}.",
        f"Simulation: specclip-sim, R = {observer.resolving_power:.0f} (calibrated), through native files, the LAMOST reader and lamost_lrs preprocessing.",
        f"RMS of real - simulated normalised flux over {WINDOW[0]:.0f}-{WINDOW[1]:.0f} A on pixels unmasked in both; in brackets the RMS the noise of both alone would give.",
        "",
        "| LAMOST OBSID / Gaia DR3 | APOGEE Teff, logg, [Fe/H], A_K | LASP Teff, logg, [Fe/H] | S/N(g) | taught the correction | " + " | ".join(f"RMS: {k}" for k in simulated) + " |",
        "|---|---|---|---|---|" + "---|" * len(simulated),
    ]
    results = {}
    taught = in_train_split(obsids)
    for i, obsid in enumerate(obsids):
        cells = []
        for name, sim in simulated.items():
            value, noise, n = rms(real.flux[i], real.ivar[i], real.mask[i], sim.flux[i], sim.ivar[i], sim.mask[i])
            results[(obsid, name)] = (value, noise)
            cells.append(f"{value:.4f} ({noise:.4f})")
        lines.append(
            f"| {obsid} / {THREE_STARS[obsid]} | {apogee['teff'][i]:.0f}, {apogee['logg'][i]:.2f}, {apogee['fe_h'][i]:.2f}, {apogee['ak_targ'][i]:.3f} | "
            f"{lasp['teff'][i]:.0f}, {lasp['logg'][i]:.2f}, {lasp['feh'][i]:.2f} | {snr[i]:.0f} | {'yes' if taught[i] else 'no'} | " + " | ".join(cells) + " |"
        )
    lines += [
        "",
        "\"taught the correction\": the star is among the DR10 stars the empirical correction was learned from (its LAMOST",
        "spectrum, with LASP labels); for it the corrected columns are in-sample.",
        "",
        "![three stars](sim_three_stars.png)",
        "",
    ]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "sim_three_stars.md").write_text("\n".join(lines))
    print("\n".join(lines))

    w = MODEL_WAVELENGTH
    fig, axes = plt.subplots(3, 1, figsize=(12, 10), sharex=True)
    first = next(iter(simulated))
    for i, (ax, obsid) in enumerate(zip(axes, obsids)):
        good = ~real.mask[i]
        ax.plot(w[good], real.flux[i][good], "k", lw=0.7, label=f"real LAMOST DR10 {obsid}")
        sim = simulated[first]
        good_s = ~sim.mask[i]
        ax.plot(w[good_s], sim.flux[i][good_s], "r", lw=0.7, alpha=0.8, label=f"SIMULATED from APOGEE labels (rms {results[(obsid, first)][0]:.3f})")
        both = good & good_s
        ax.plot(w[both], real.flux[i][both] - sim.flux[i][both] + 0.35, color="0.5", lw=0.5, label="real - simulated + 0.35")
        ax.set_title(
            f"Gaia DR3 {THREE_STARS[obsid]}: APOGEE Teff {apogee['teff'][i]:.0f} K, logg {apogee['logg'][i]:.2f}, [Fe/H] {apogee['fe_h'][i]:.2f}; S/N(g) {snr[i]:.0f} (simulated vs real)",
            fontsize=9,
        )
        ax.set_ylabel("normalised flux")
        ax.legend(fontsize=7, loc="lower right")
    axes[-1].set_xlabel("wavelength (A, vacuum)")
    fig.tight_layout()
    fig.savefig(RESULTS / "sim_three_stars.png", dpi=80)
    return 0


if __name__ == "__main__":
    sys.exit(main())
