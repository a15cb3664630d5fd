"""Spectra per second of ``specclip predict``, process start included, for LAMOST and Gaia XP inputs
with MLP heads and with npe (SBI) heads.

    python bench/predict_throughput.py --xp SOURCE:HEADS[,HEADS] ... --lamost SOURCE:HEADS[,HEADS] ...
        [--lamost-files 2000] [--xp-rows 20000] [--npe-lamost-files 500] [--npe-xp-rows 2000]
        [--workers 1 2] [--samples 1000] [--repeats 1] [--dir DIR]

SOURCE is a run directory or a model directory; HEADS names a heads stage in it (one timing per
stage); several SOURCE:HEADS may follow each option. LAMOST inputs are the first ``--lamost-files`` real DR10 spectra of
../shared/data/lamost-dr10/spectra (gzipped FITS, one spectrum each). XP inputs are one sampled CSV
made from the two real rows of the archive's XP_SAMPLED_RAW_dr3int6.csv, repeated with new source ids
(about 10 kB of text per row). npe heads, a hundred times slower per star, read the first
``--npe-lamost-files`` files and ``--npe-xp-rows`` rows. Each case runs the installed ``specclip predict`` in its own process
under /usr/bin/time with ``--workers N`` reader processes (torch threads: as specclip chooses).
npe heads draw ``--samples`` posterior samples per star (set on a copy of the source). Writes
bench/results/predict_throughput.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from xp_large_table import make_table

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "data"
LAMOST = SHARED / "lamost-dr10" / "spectra"
XP_SAMPLED = SHARED / "gaiaxp-archive-samples" / "XP_SAMPLED_RAW_dr3int6.csv"


def with_samples(source: Path, heads: str, samples: int, scratch: Path) -> Path:
    """A copy of ``source`` whose npe head ``heads`` draws ``samples`` posterior samples (a model
    directory's card is dropped: its checksum no longer holds for the changed head.json)."""
    layout = source / heads / "head" / "head.json"
    described = json.loads(layout.read_text())
    if described.get("head") != "npe":
        return source
    copy = scratch / f"{source.name}-{samples}"
    if not copy.exists():
        shutil.copytree(source, copy, ignore=shutil.ignore_patterns("*.zarr", "training", "model.json"))
        described["config"]["samples"] = samples
        (copy / heads / "head" / "head.json").write_text(json.dumps(described))
    return copy


def code_version() -> str:
    """The checkout's commit (``-dirty`` with uncommitted changes), so that a table says which code made it."""
    done = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=HERE, capture_output=True, text=True)
    return done.stdout.strip() or "unknown (not a git checkout)"


def predict(source: Path, heads: str, inputs: list[str], out: Path, workers: int) -> dict[str, float]:
    timing = out.with_suffix(".time")
    specclip = str(Path(sys.executable).with_name("specclip"))
    command = ["/usr/bin/time", "-f", "%e %U %S %M", "-o", str(timing), specclip, "predict", str(source), *inputs, "-o", str(out), "--heads", heads, "--quiet", "--workers", str(workers)]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "SPECCLIP_PROGRESS": "0"})
    if done.returncode:
        raise SystemExit(f"predict failed: {done.stderr[-2000:]}")
    wall, user, system, rss = timing.read_text().split()
    rows = sum(1 for line in out.read_text().splitlines() if line and not line.startswith("#")) - 1
    return {"wall": float(wall), "cpu": float(user) + float(system), "rss_mb": int(rss) / 1024, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--xp", nargs="+", default=[], metavar="SOURCE:HEADS[,HEADS]")
    parser.add_argument("--lamost", nargs="+", default=[], metavar="SOURCE:HEADS[,HEADS]")
    parser.add_argument("--lamost-files", type=int, default=2000)
    parser.add_argument("--xp-rows", type=int, default=20000)
    parser.add_argument("--npe-lamost-files", type=int, default=500)
    parser.add_argument("--npe-xp-rows", type=int, default=2000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=1, help="runs per case; the fastest is reported, every wall time listed")
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--output", type=Path, default=HERE / "results" / "predict_throughput.md")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(dir=args.dir) as scratch:
        scratch = Path(scratch)
        cases = []
        if args.lamost:
            files = sorted(str(p) for p in LAMOST.glob("spec-*.fits.gz"))
            cases.append(("LAMOST DR10, gzipped FITS (one spectrum per file)", args.lamost, {"mlp": files[: args.lamost_files], "npe": files[: args.npe_lamost_files]}))
        if args.xp:
            tables = {}
            for kind, n_rows in (("mlp", args.xp_rows), ("npe", args.npe_xp_rows)):
                tables[kind] = [str(scratch / f"xp_sampled_{n_rows}.csv")]
                make_table(Path(tables[kind][0]), n_rows, XP_SAMPLED)
            cases.append(("Gaia XP, one sampled CSV", args.xp, tables))
        for title, specs, inputs in cases:
            for source, heads in ((source, heads) for source, stages in (spec.split(":", 1) for spec in specs) for heads in stages.split(",")):
                run = with_samples(Path(source), heads, args.samples, scratch)
                kind = json.loads((Path(source) / heads / "head" / "head.json").read_text())["head"]
                for workers in args.workers:
                    runs = [predict(run, heads, inputs["npe" if kind == "npe" else "mlp"], scratch / "cat.csv", workers) for _ in range(args.repeats)]
                    result = min(runs, key=lambda r: r["wall"])
                    result["walls"] = sorted(r["wall"] for r in runs)
                    rows.append((title, f"{Path(source).name}: {heads} ({kind})", workers, result))
                    print(title, heads, kind, workers, result, flush=True)
    lines = [
        "# `specclip predict` throughput (process start included)",
        "",
        f"Command: `python bench/predict_throughput.py {' '.join(sys.argv[1:])}`; {os.cpu_count()} CPUs; code {code_version()}; {time.strftime('%Y-%m-%d %H:%M')}.",
        f"npe heads draw {args.samples} posterior samples per star. XP rows are two real archive spectra repeated with new ids.",
        "",
        f"Each case ran {args.repeats} time(s): the fastest run's figures, and every run's wall time.",
        "",
        "| inputs | model or run: heads | reader workers | spectra | wall (s) | spectra/s | CPU (s) | peak RSS (MB) | every wall (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for title, heads, workers, r in rows:
        walls = ", ".join(f"{wall:.1f}" for wall in r["walls"])
        lines.append(f"| {title} | {heads} | {workers} | {r['rows']} | {r['wall']:.1f} | {r['rows'] / r['wall']:.0f} | {r['cpu']:.1f} | {r['rss_mb']:.0f} | {walls} |")
    args.output.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
