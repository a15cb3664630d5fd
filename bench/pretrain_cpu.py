"""Pretraining throughput and peak memory for one modality on this machine's CPU, batch 64.

Runs the core benchmark (``specclip bench pretrain --modality MODALITY``: forward, backward and an
AdamW step on batches of the modality's exact shape, each configuration in a fresh process, 3
warm-up steps not timed) for the masked transformer and the MLP autoencoder, small and paper size,
and records the machine's load average before and after each configuration: on a shared machine the
numbers are a lower bound of what the cores can do.

Usage (repository root):
    python bench/pretrain_cpu.py --modality lamost_lrs --n-train 1836     # -> bench/results/lamost_lrs_pretrain_cpu.md
    python bench/pretrain_cpu.py --modality gaia_xp --n-train 32336
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time
from pathlib import Path

CONFIGS = [  # (encoder, size, untimed warm-up steps, timed steps): the paper-size transformer takes minutes a step on 2 cores
    ("masked_transformer", "small", 3, 10),
    ("masked_transformer", "paper", 1, 2),
    ("mlp_autoencoder", "small", 3, 10),
    ("mlp_autoencoder", "paper", 3, 10),
]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modality", required=True)
    parser.add_argument("--n-train", type=int, required=True, help="training spectra of the real dataset, for the epoch-time estimate")
    parser.add_argument("-o", "--output", type=Path, help="default: bench/results/<modality>_pretrain_cpu")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    args.output = args.output or Path(f"bench/results/{args.modality}_pretrain_cpu")
    results = []
    for encoder, size, warmup, steps in CONFIGS:
        before = os.getloadavg()
        started = time.time()
        done = subprocess.run(
            ["specclip", "bench", "pretrain", "--modality", args.modality, "--encoders", encoder, "--sizes", size,
             "--batch-size", str(args.batch_size), "--steps", str(steps), "--warmup", str(warmup), "--device", "cpu", "-o", str(args.output.with_name(f"_{encoder}_{size}"))],
            capture_output=True, text=True, check=True,
        )
        part = args.output.with_name(f"_{encoder}_{size}")
        result = json.loads(part.with_suffix(".json").read_text())[0]
        part.with_suffix(".json").unlink()
        part.with_suffix(".md").unlink()
        result |= {"steps": steps, "warmup": warmup, "load_before": [round(v, 2) for v in before], "load_after": [round(v, 2) for v in os.getloadavg()], "wall_s": round(time.time() - started, 1)}
        results.append(result)
        print(f"{encoder} {size}: {result['spectra_per_s']} spectra/s, {result['peak_memory_mb']} MB, load {before[0]:.1f} -> {os.getloadavg()[0]:.1f}", flush=True)
        del done
    lines = [
        f"# {args.modality} pretraining throughput on CPU",
        "",
        f"Written by `bench/pretrain_cpu.py --modality {args.modality}` on {time.strftime('%Y-%m-%d %H:%M')}: the core's `specclip bench pretrain"
        f" --modality {args.modality} --batch-size {args.batch_size} --device cpu` per configuration (forward + backward + AdamW step on random"
        " batches of the modality's shape with its default tokenizer; masked modelling for the transformer, reconstruction for the"
        " autoencoder; fp32; 3 untimed warm-up steps, 1 for the paper-size transformer), each in a fresh process.",
        "",
        f"Machine: {os.cpu_count()} CPU cores ({cpu_model()}), torch threads {results[0]['threads']}. **Shared with other engineers' jobs**: the"
        " load average (1/5/15 min) before and after each configuration is given; with a load above the core count the rates are"
        " lower bounds of what these cores do alone, and they vary by tens of per cent from run to run.",
        "",
        "| encoder | size | tokens | parameters | timed steps | spectra/s | peak memory (process max RSS, MB) | load before | load after |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['encoder']} | {r['size']} | {r['tokens']} | {r['parameters'] / 1e6:.2f}M | {r['steps']} | {r['spectra_per_s']:.1f} | {r['peak_memory_mb']:.0f} |"
            f" {'/'.join(f'{v:.1f}' for v in r['load_before'])} | {'/'.join(f'{v:.1f}' for v in r['load_after'])} |"
        )
    paper = next(r for r in results if r["encoder"] == "masked_transformer" and r["size"] == "paper")
    epoch_h = args.n_train / paper["spectra_per_s"] / 3600
    lines += [
        "",
        f"At this rate one epoch of the paper-size transformer over {args.n_train:,} training spectra takes {epoch_h:.1f} h on these cores,"
        f" and 128 epochs {128 * epoch_h:.0f} h: the paper-size specs are meant for a GPU.",
    ]
    args.output.with_suffix(".md").write_text("\n".join(lines) + "\n")
    args.output.with_suffix(".json").write_text(json.dumps(results, indent=2))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
