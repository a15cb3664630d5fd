"""Kill -9 at random points of every stage, then ``--resume``: the stores and weights equal an
uninterrupted run's, every time.

    python bench/kill_resume.py [--trials 20] [--stages ingest simulate pretrain_lamost align heads]

A small run on real data: ingest of 300 real LAMOST DR10 spectra (../shared/data/lamost-dr10) with
their labels, a SIMULATED LAMOST-like twin of 1,000 apogee-xp stars (specclip-sim), MLP autoencoders
pretrained on each modality, a CLIP alignment and MLP heads on the real spectra's embeddings. An
uninterrupted run is the reference (a second one checks that the comparison ignores only timings).
Each trial copies the reference's other stages, runs the chosen one (``--only``), kills
the process group with SIGKILL at a uniformly random moment of it (measured from the moment its
``.partial`` directory appears, over the stage's reference duration), then runs it again with
``--resume`` and compares every output of the stage (what later stages read) with the reference:
store arrays and labels, every tensor of every safetensors file, every other file byte for byte
except manifests, reports, training logs and summaries (they hold timings: two uninterrupted runs
differ in them, and in nothing else). Writes bench/results/kill_resume.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "data" / "lamost-dr10"
SPEC = """name: kill-resume
seed: 0
stages:
  ingest: {{kind: ingest, modality: lamost_lrs, paths: ["{spectra}"], labels: "{labels}", id_column: obsid, chunk: 64}}
  simulate: {{kind: simulate, modality: lamost_lrs, like: apogee-xp, limit: 1000}}
  pretrain_xp:
    kind: pretrain
    modality: gaia_xp
    data: {{stage: simulate}}
    encoder: {{name: mlp_autoencoder, size: small}}
    objectives: [{{name: reconstruction, loss: mse}}]
    train: {{epochs: 4, batch_size: 64, patience: null}}
  pretrain_lamost:
    kind: pretrain
    modality: lamost_lrs
    data: {{stage: simulate}}
    tokenizer: {{name: vector}}
    encoder: {{name: mlp_autoencoder, size: small}}
    objectives: [{{name: reconstruction, loss: mse}}]
    train: {{epochs: 6, batch_size: 64, patience: null}}
  align:
    kind: align
    needs: [pretrain_xp, pretrain_lamost]
    data: {{stage: simulate}}
    projections: {{gaia_xp: {{name: mlp, hidden: 128}}, lamost_lrs: {{name: mlp, hidden: 128}}}}
    shared_dim: 64
    train: {{epochs: 6, batch_size: 128, patience: null, drop_last: true}}
  heads:
    kind: heads
    needs: [align]
    data: {{stage: ingest}}
    modality: lamost_lrs
    input: embedding
    labels: [teff, logg, feh]
    head: {{name: mlp, hidden: [64], joint: true}}
    train: {{epochs: 40, batch_size: 64, patience: null}}
"""
ORDER = ["ingest", "simulate", "pretrain_xp", "pretrain_lamost", "align", "heads"]
TIMED = {"manifest.json", "ingest_report.json", "ingest_report.md", "report.md", "simulate_report.json", "simulate_report.md",
         "metrics.csv", "summary.json", "metrics.json"}  # the training logs and summaries hold seconds; weights and stores are compared


def specclip(*args: str, quiet: bool = True) -> list[str]:
    return [str(Path(sys.executable).with_name("specclip")), *args, *(["--quiet"] if quiet else [])]


def digest(stage_dir: Path) -> dict[str, str]:
    """A hash per output of a finished stage: stores by content, safetensors by tensors, the rest by bytes."""
    from safetensors.numpy import load_file

    from specclip_core.data.store import SpectralStore, is_store

    out: dict[str, str] = {}
    stores = [p for p in stage_dir.rglob("*.zarr") if is_store(p)]
    for store_path in stores:
        store = SpectralStore.open(store_path)
        h = hashlib.sha256(store.ids.astype(str).tobytes())
        for modality in store.modalities:
            for name, values in sorted(store.read(modality).items()):
                h.update(name.encode() + values.tobytes())
        for name, values in sorted(store.labels().items()):
            h.update(name.encode() + values.astype(str).tobytes())
        out[str(store_path.relative_to(stage_dir))] = h.hexdigest()
    for path in sorted(stage_dir.rglob("*")):
        if not path.is_file() or path.name in TIMED or any(s in path.parents for s in stores):
            continue
        if path.suffix == ".safetensors":
            tensors = load_file(path)
            h = hashlib.sha256()
            for name in sorted(tensors):
                h.update(name.encode() + tensors[name].tobytes())
            out[str(path.relative_to(stage_dir))] = h.hexdigest()
        else:
            out[str(path.relative_to(stage_dir))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def run_whole(spec: Path, run_dir: Path, env: dict[str, str]) -> dict[str, float]:
    """Run uninterrupted; return each stage's duration (from its .partial directory appearing to its finishing)."""
    process = subprocess.Popen(specclip("run", str(spec), "--run-dir", str(run_dir)), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    started: dict[str, float] = {}
    durations: dict[str, float] = {}
    while process.poll() is None:
        now = time.perf_counter()
        for stage in ORDER:
            if stage not in started and (run_dir / f"{stage}.partial").exists():
                started[stage] = now
            if stage in started and stage not in durations and (run_dir / stage / "manifest.json").exists():
                durations[stage] = now - started[stage]
        time.sleep(0.01)
    if process.returncode:
        raise SystemExit(f"reference run failed: {process.stderr.read()[-3000:]}")
    return durations


def trial(spec: Path, reference: Path, work: Path, stage: str, duration: float, rng: random.Random, env: dict[str, str]) -> dict:
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    for other in ORDER:
        if other != stage:
            shutil.copytree(reference / other, work / other)
    shutil.copy(reference / "spec.yaml", work / "spec.yaml")
    delay = rng.uniform(0, duration)
    process = subprocess.Popen(
        specclip("run", str(spec), "--run-dir", str(work), "--only", stage), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    while process.poll() is None and not (work / f"{stage}.partial").exists():
        time.sleep(0.005)
    time.sleep(delay)
    killed = process.poll() is None
    if killed:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    resumed = subprocess.run(specclip("run", str(spec), "--run-dir", str(work), "--only", stage, "--resume"), env=env, capture_output=True, text=True)
    result = {"stage": stage, "delay": delay, "killed": killed, "resume_rc": resumed.returncode, "equal": False, "differs": []}
    if resumed.returncode:
        result["error"] = resumed.stderr[-500:]
        return result
    a, b = digest(reference / stage), digest(work / stage)
    result["differs"] = [f"{stage}/{name}" for name in sorted(set(a) | set(b)) if a.get(name) != b.get(name)]
    result["equal"] = not result["differs"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--stages", nargs="+", default=["ingest", "simulate", "pretrain_lamost", "align", "heads"])
    parser.add_argument("--files", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    if not SHARED.is_dir():
        raise SystemExit(f"{SHARED}: not found (the real LAMOST DR10 spectra)")
    rng = random.Random(args.seed)
    env = {**os.environ, "SPECCLIP_PROGRESS": "0", "SPECCLIP_THREADS": "1"}
    results = []
    with tempfile.TemporaryDirectory(dir=args.dir) as scratch:
        scratch = Path(scratch)
        spectra = scratch / "spectra"
        spectra.mkdir()
        for path in sorted((SHARED / "spectra").glob("spec-*.fits.gz"))[: args.files]:
            os.symlink(path, spectra / path.name)
        spec = scratch / "kill-resume.yaml"
        spec.write_text(SPEC.format(spectra=spectra, labels=SHARED / "labels.csv"))
        reference, again = scratch / "reference", scratch / "again"
        durations = run_whole(spec, reference, env)
        run_whole(spec, again, env)
        unstable = {s: [n for n in set(digest(reference / s)) | set(digest(again / s)) if digest(reference / s).get(n) != digest(again / s).get(n)] for s in ORDER}
        unstable = {s: names for s, names in unstable.items() if names}
        print("stage durations (s):", {s: round(d, 1) for s, d in durations.items()}, "; two uninterrupted runs differ in:", unstable or "nothing", flush=True)
        for stage in args.stages:
            for k in range(args.trials):
                result = trial(spec, reference, scratch / "trial", stage, durations[stage], rng, env)
                results.append(result)
                print(json.dumps(result), flush=True)
    lines = [
        "# Kill -9 at random points, then --resume",
        "",
        f"{time.strftime('%Y-%m-%d')}, 2 CPU cores (SPECCLIP_THREADS=1 for every run). Run: {args.files} real LAMOST DR10 spectra "
        "ingested in chunks of 64; 1,000 apogee-xp stars with SIMULATED LAMOST-like twins; MLP autoencoders, CLIP alignment, "
        "MLP heads (small, few epochs). Reference stage durations: " + ", ".join(f"{s} {d:.1f} s" for s, d in durations.items()) + ". "
        f"Two uninterrupted runs differ in: {unstable or 'nothing'}.",
        "",
        "| stage killed | trials | killed while running | resume failed | outputs equal to the reference | differ |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for stage in args.stages:
        rows = [r for r in results if r["stage"] == stage]
        lines.append(
            f"| {stage} | {len(rows)} | {sum(r['killed'] for r in rows)} | {sum(r['resume_rc'] != 0 for r in rows)} | "
            f"{sum(r['equal'] for r in rows)} | {sum(not r['equal'] for r in rows)} |"
        )
    failures = [r for r in results if not r["equal"]]
    lines += ["", f"Failures: {json.dumps(failures[:5]) if failures else 'none'}."]
    out = HERE / "results" / "kill_resume.md"
    out.write_text("\n".join(lines) + "\n")
    print(out)


if __name__ == "__main__":
    main()
