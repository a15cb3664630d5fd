"""Benchmarks of the core's building blocks on any registered modality.

``specclip bench pretrain`` measures pretraining throughput (spectra/s through forward, backward and
an AdamW step) and peak memory for each encoder and size, each in its own process so that peak
memory is that configuration's alone. Inputs are random tensors of the modality's exact shape:
throughput does not depend on the values.
"""

from __future__ import annotations

import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from specclip_core.components import get_modality
from specclip_core.nn.modality_encoder import ModalityEncoder
from specclip_core.train.distributed import resolve_device
from specclip_core.train.objectives import MaskedModeling, MaskedModelingConfig, Reconstruction, ReconstructionConfig


def bench_pretrain_one(modality: str, encoder: str, size: str, batch_size: int, steps: int, warmup: int, device: str) -> dict[str, Any]:
    """Throughput and peak memory of pretraining one encoder configuration (run in this process)."""
    torch.manual_seed(0)
    spec = get_modality(modality)
    dev = resolve_device(device)
    network = ModalityEncoder(spec.name, None, {"name": encoder, "size": size}).to(dev)
    objective = MaskedModeling(MaskedModelingConfig()) if network.tokenizer.n_tokens > 1 else Reconstruction(ReconstructionConfig())
    optimizer = torch.optim.AdamW(network.parameters(), lr=1e-4)
    batch = {
        "ids": [str(i) for i in range(batch_size)],
        spec.name: {
            "flux": torch.randn(batch_size, spec.n_pixels, device=dev) * 0.1 + 1,
            "stats": torch.rand(batch_size, len(spec.stats_names), device=dev) + 0.5,
        },
    }
    use_bf16 = dev.type == "cuda"
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    elapsed = 0.0
    for step in range(warmup + steps):
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        started = time.perf_counter()
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=use_bf16):
            loss = sum(objective(network, batch).values())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        if step >= warmup:
            elapsed += time.perf_counter() - started
    peak = torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda" else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "modality": spec.name,
        "encoder": encoder,
        "size": size,
        "tokens": network.tokenizer.n_tokens,
        "parameters": sum(p.numel() for p in network.parameters()),
        "batch_size": batch_size,
        "device": str(dev) if dev.type != "cuda" else torch.cuda.get_device_name(dev),
        "precision": "bf16 autocast" if use_bf16 else "fp32",
        "threads": torch.get_num_threads(),
        "spectra_per_s": round(batch_size * steps / elapsed, 1),
        "peak_memory_mb": round(peak, 1),
        "peak_memory_kind": "CUDA max allocated" if dev.type == "cuda" else "process max RSS",
    }


def bench_pretrain(
    modality: str, encoders: list[str], sizes: list[str], batch_size: int, steps: int, device: str, output: Path | None, warmup: int = 3
) -> list[dict[str, Any]]:
    """Each configuration in a fresh process; optionally write JSON and a markdown table."""
    modality = get_modality(modality).name
    results = []
    for encoder in encoders:
        for size in sizes:
            code = (
                "import json,sys; from specclip_core.bench import bench_pretrain_one as b; "
                f"print(json.dumps(b({modality!r},{encoder!r},{size!r},{batch_size},{steps},{warmup},{device!r})))"
            )
            done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"bench {encoder}/{size} failed:\n{done.stderr[-2000:]}")
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"{encoder:>20} {size:>6}: {results[-1]['spectra_per_s']:>9.1f} spectra/s, peak {results[-1]['peak_memory_mb']:.0f} MB", file=sys.stderr)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.with_suffix(".json").write_text(json.dumps(results, indent=2))
        output.with_suffix(".md").write_text(pretrain_table(results))
    return results


def pretrain_table(results: list[dict[str, Any]]) -> str:
    first = results[0]
    lines = [
        f"Pretraining throughput, {first['modality']}, batch {first['batch_size']}, on {first['device']} "
        f"({first['threads']} threads, {first['precision']}; {platform.processor() or platform.machine()})",
        "",
        "| encoder | size | tokens | parameters | spectra/s | peak memory (MB) |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(f"| {r['encoder']} | {r['size']} | {r['tokens']} | {r['parameters'] / 1e6:.2f}M | {r['spectra_per_s']:.1f} | {r['peak_memory_mb']:.0f} ({r['peak_memory_kind']}) |")
    return "\n".join(lines) + "\n"
