"""Time and peak memory of ingesting a large Gaia XP continuous table, read in chunks.

    python bench/xp_large_table.py [--rows 20000] [--chunk 4096 ...] [--dir DIR]

The table is made from the two real archive rows of
plugins/specclip-gaiaxp/tests/data/XP_CONTINUOUS_RAW.csv, repeated with new source ids (about 42 kB
of text per row: 20,000 rows are 850 MB). Each chunk size runs ``specclip data ingest`` in its own
process under /usr/bin/time; a run on the first 8 rows gives the process's baseline memory (Python,
numpy, astropy, torch, gaiaxpy). Writes bench/results/xp_large_table.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SAMPLE = HERE.parent / "plugins" / "specclip-gaiaxp" / "tests" / "data" / "XP_CONTINUOUS_RAW.csv"


def make_table(path: Path, rows: int, sample: Path = SAMPLE) -> int:
    """``rows`` rows of the real archive table ``sample``, repeated with new source ids; its size in bytes."""
    head, *lines = sample.read_text().splitlines(keepends=True)
    with open(path, "w") as out:
        out.write(head)
        for i in range(rows):
            sid, rest = lines[i % len(lines)].split(",", 1)
            out.write(f"{int(sid) + (i // len(lines)) * 1_000_003},{rest}")
    return path.stat().st_size


def ingest(table: Path, store: Path, chunk: int, threads: int | None) -> dict[str, float]:
    timing = store.with_suffix(".time")
    command = ["/usr/bin/time", "-f", "%e %U %S %M", "-o", str(timing), str(Path(sys.executable).with_name("specclip")), "data", "ingest",
               "gaia_xp", str(table), "-o", str(store), "--chunk", str(chunk)]
    env = {**os.environ, "SPECCLIP_PROGRESS": "0", **({"SPECCLIP_THREADS": str(threads)} if threads else {})}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode:
        raise SystemExit(f"ingest failed: {done.stderr[-2000:]}")
    wall, user, system, rss = timing.read_text().split()
    return {"wall": float(wall), "cpu": float(user) + float(system), "rss_mb": int(rss) / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--chunk", type=int, nargs="+", default=[4096])
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as scratch:
        scratch = Path(scratch)
        table, small = scratch / "xp_continuous_large.csv", scratch / "xp_continuous_small.csv"
        size = make_table(table, args.rows)
        make_table(small, 8)
        per_row = size / args.rows
        base = ingest(small, scratch / "small.zarr", 8, args.threads)
        lines = [
            "# Large Gaia XP continuous table: ingest time and peak memory by chunk size",
            "",
            f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs, {args.rows:,} rows ({size / 1e6:.0f} MB of CSV, "
            f"{per_row / 1e3:.1f} kB per row), made from the 2 real rows of XP_CONTINUOUS_RAW.csv with new source ids. "
            f"Baseline: the same command on 8 rows peaks at {base['rss_mb']:.0f} MB (the libraries).",
            "",
            "| chunk (rows) | chunk text (MB) | wall (s) | CPU (s) | rows/s | peak RSS (MB) | peak - baseline (MB) | (peak - baseline) / chunk text |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for chunk in args.chunk:
            result = ingest(table, scratch / f"chunk{chunk}.zarr", chunk, args.threads)
            text = min(chunk, args.rows) * per_row / 1e6
            extra = result["rss_mb"] - base["rss_mb"]
            lines.append(
                f"| {chunk} | {text:.0f} | {result['wall']:.0f} | {result['cpu']:.0f} | {args.rows / result['wall']:.0f} | "
                f"{result['rss_mb']:.0f} | {extra:.0f} | {extra / text:.2f} |"
            )
            print(lines[-1], flush=True)
    out = HERE / "results" / "xp_large_table.md"
    out.write_text("\n".join(lines) + "\n")
    print(out)


if __name__ == "__main__":
    main()
