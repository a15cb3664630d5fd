"""Speed of making the paired store (simulated LAMOST-like spectra for the apogee-xp stars).

1. The emulator part alone: InstrumentSimulator.simulate for all apogee-xp stars (APOGEE labels,
   missing ones imputed as the command does) at the calibrated lamost_lrs settings, in one process
   (numpy's own threads), in chunks of 4096; no files.
2. The whole command, `specclip data simulate lamost_lrs --like apogee-xp --overwrite [-o STORE]`, as
   a subprocess: simulation, writing spec-*.fits.gz files, reading them back with the LAMOST reader,
   lamost_lrs preprocessing (Appendix-B continuum), copying the XP rows and writing the store; wall
   time, peak memory of the largest process (``resource`` RUSAGE_CHILDREN), store size.

    .venv/bin/python bench/sim_paired_speed.py [--output STORE] [--skip-command]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from sim_common import RESULTS, machine

from specclip_core.data.datasets import fetch_dataset
from specclip_core.data.store import SpectralStore
from specclip_sim.emulator import Emulator
from specclip_sim.observe import NativeObserver
from specclip_sim.paired import DEFAULT_COLUMNS, default_output, simulation_inputs


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--output", help="store path for the command (default: its default, in the specclip cache)")
    parser.add_argument("--skip-command", action="store_true")
    args = parser.parse_args()
    lines = ["# Speed: simulated LAMOST-like spectra for the apogee-xp stars (simulated data)", ""]

    load_start = machine()
    started = time.perf_counter()
    emulator = Emulator.load()
    load_seconds = time.perf_counter() - started
    started = time.perf_counter()
    observer = NativeObserver("lamost_lrs", emulator=emulator)
    convolve_seconds = time.perf_counter() - started
    source = SpectralStore.open(fetch_dataset("apogee-xp"))
    labels = source.labels()
    inputs, keep, _, _ = simulation_inputs(labels, DEFAULT_COLUMNS, "impute", 0)
    ids = source.ids[keep]
    inputs = {k: v[keep] for k, v in inputs.items()}
    n = len(ids)
    started = time.perf_counter()
    capped = []
    for lo in range(0, n, 4096):
        spectra = observer.simulator.simulate({k: v[lo : lo + 4096] for k, v in inputs.items()}, ids[lo : lo + 4096], observer.snr_values, seed=lo)
        capped.append(spectra.meta["capped_fraction"])
    simulate_seconds = time.perf_counter() - started
    lines += [
        f"`python bench/sim_paired_speed.py`, {datetime.datetime.now():%Y-%m-%d %H:%M}; {load_start} (at start).",
        "",
        "## The emulator part (one process, no files)",
        "",
        "| step | seconds |",
        "|---|---|",
        f"| load the converted emulator | {load_seconds:.1f} |",
        f"| convolve to R {observer.resolving_power:.0f} and resample onto the 3,909-pixel native grid (once) | {convolve_seconds:.1f} |",
        f"| simulate {n:,} spectra (noise, masks, extinction, calibration error) | {simulate_seconds:.1f} |",
        "",
        f"{n / simulate_seconds:,.0f} spectra/s; load average after: {' / '.join(f'{v:.1f}' for v in os.getloadavg())}.",
    ]
    if not args.skip_command:
        output = Path(args.output) if args.output else default_output("apogee-xp", "lamost_lrs", 0, None)
        command = [str(Path(sys.executable).with_name("specclip")), "data", "simulate", "lamost_lrs", "--like", "apogee-xp", "--overwrite", "-o", str(output)]
        load_before = machine()
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        wall = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2
        if done.returncode != 0:
            print(done.stderr, file=sys.stderr)
            return 1
        store = SpectralStore.open(output)
        timings = store.meta["timings"]
        lines += [
            "",
            "## The whole command",
            "",
            f"`{' '.join(command[1:])}` ({load_before} before it): **{wall:.0f} s wall** "
            f"({timings['workers']} worker processes), peak memory of the largest process {peak:.1f} GiB.",
            f"Store: {output}, {len(store):,} rows, {folder_bytes(output) / 1024**2:.0f} MiB on disk.",
            "",
            "| step (summed over the worker processes) | wall seconds | CPU seconds |",
            "|---|---|---|",
        ]
        lines += [f"| {k} | {v:.1f} | {timings.get('cpu_seconds', {}).get(k, float('nan')):.1f} |" for k, v in timings["seconds"].items() if k != "wall"]
        lines += [f"| wall, inside the command (without start-up) | {timings['seconds']['wall']:.1f} | |", "", "Command output:", "", "```", done.stderr.strip()[-1500:], done.stdout.strip(), "```"]
        (RESULTS / "sim_paired_store.json").write_text(json.dumps({"path": str(output), "rows": len(store), "meta": store.meta}, indent=1, default=str))
    lines.append("")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "sim_paired_speed.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
