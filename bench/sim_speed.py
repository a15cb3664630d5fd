"""How long specclip-sim takes to simulate 40,226 LAMOST-like spectra (simulated data).

Instrument: R = 1800, log-linear vacuum grid from 3700 A in steps of 1e-4 dex to 9100 A (3,909
pixels), S/N drawn from the LAMOST DR10 S/N(g) values in ../shared/data when present (otherwise a
log-normal stand-in, said in the output). Labels are drawn from a plausible APOGEE-like mixture of
giants and dwarfs (the real label table comes later). Writes bench/results/sim_speed.md.
With --calibrated, the instrument of `specclip data simulate lamost_lrs` instead: the shipped LAMOST
calibration (its R, throughput, real mask patterns, empirical correction and every part drawn from
real spectra: correlated noise, sky windows, flux shapes).

    .venv/bin/python bench/sim_speed.py [--n 40226] [--seed 0] [--calibrated -o FILE]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import time
from pathlib import Path

import numpy as np

from specclip_core.interfaces import Instrument
from specclip_sim.distributions import load_snr_values
from specclip_sim.emulator import Emulator
from specclip_sim.observe import NativeObserver
from specclip_sim.simulate import InstrumentSimulator, SimulationSettings

HERE = Path(__file__).resolve().parent
SNR_TABLE = HERE.parent.parent / "shared" / "data" / "lamost-dr10" / "labels.csv"


def lamost_like() -> Instrument:
    wavelength = 10 ** (np.log10(3700.0) + 1e-4 * np.arange(3909))
    return Instrument(1800.0, wavelength, "LAMOST-like: R 1800, 3700-9100 A, 1e-4 dex (simulated)")


def plausible_labels(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    giant = rng.random(n) < 0.6
    teff = np.where(giant, rng.normal(4700, 350, n), rng.normal(5600, 700, n))
    logg = np.where(giant, rng.normal(2.5, 0.6, n), rng.normal(4.3, 0.3, n))
    return {
        "teff": np.clip(teff, 3200, 12000),
        "logg": np.clip(logg, 0.0, 5.2),
        "feh": np.clip(rng.normal(-0.2, 0.35, n), -2.8, 0.6),
        "a_k": rng.exponential(0.08, n),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=40226)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-o", "--output", default=str(HERE / "results" / "sim_speed.md"))
    parser.add_argument("--calibrated", action="store_true", help="the shipped LAMOST calibration with all its parts")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    if SNR_TABLE.exists():
        snr, snr_source = load_snr_values(SNR_TABLE), f"LAMOST DR10 S/N(g), {SNR_TABLE.name} (2,224 values)"
    else:
        snr, snr_source = np.exp(rng.normal(np.log(58), 0.9, 5000)), "log-normal stand-in (shared data absent)"
    labels = plausible_labels(args.n, rng)
    ids = np.array([f"bench-{i}" for i in range(args.n)])
    load_avg = os.getloadavg()

    t0 = time.perf_counter()
    emulator = Emulator.load()
    t1 = time.perf_counter()
    if args.calibrated:
        simulator = NativeObserver("lamost_lrs", emulator=emulator).simulator
    else:
        simulator = InstrumentSimulator(lamost_like(), emulator, SimulationSettings(snr_band=(3950.0, 5500.0)))
    t2 = time.perf_counter()
    spectra = simulator.simulate(labels, ids, snr, seed=args.seed)
    t3 = time.perf_counter()
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20

    meta = spectra.meta
    lines = [
        "# specclip-sim: simulation speed (simulated spectra)",
        "",
        f"`python bench/sim_speed.py --n {args.n} --seed {args.seed}{' --calibrated' if args.calibrated else ''}`, {time.strftime('%Y-%m-%d %H:%M')}.",
        f"Machine: {os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), shared with other work "
        f"(load average at start {load_avg[0]:.1f} / {load_avg[1]:.1f} / {load_avg[2]:.1f}), so timings are noisy.",
        "",
        f"Instrument: {simulator.instrument.description}"
        + (f"; calibrated: R {simulator.instrument.resolving_power:.0f}, correction {simulator.correction is not None}, noise {simulator.noise is not None}, sky {simulator.sky is not None}, flux shapes {simulator.flux_shapes is not None}, variety {simulator.variety is not None}, background {simulator.background is not None}" if args.calibrated else "")
        + f". S/N: {snr_source}.",
        "Labels: a plausible APOGEE-like mix (60% giants, 40% dwarfs), not the real table.",
        "",
        "| step | seconds |",
        "|---|---|",
        f"| load converted emulator (safetensors) | {t1 - t0:.1f} |",
        f"| convolve to R and resample (once per instrument) | {t2 - t1:.1f} |",
        f"| simulate {args.n:,} spectra ({len(spectra.wavelength)} px) | {t3 - t2:.1f} |",
        f"| total | {t3 - t0:.1f} |",
        "",
        f"Throughput {args.n / (t3 - t2):,.0f} spectra/s; peak resident memory {peak_gib:.1f} GiB.",
        f"Stars clipped into a model's range: {meta['clipped'].mean():.1%}; outside the training grid's "
        f"coverage: {1 - meta['covered'].mean():.1%}; median fraction of pixels capped to [0, 1]: "
        f"{np.median(meta['capped_fraction']):.1%}; masked pixels: {spectra.mask.mean():.2%}.",
        "",
    ]
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
