"""The one training loop every stage uses.

Objectives are callables over a batch dict (see :mod:`specclip_core.train.objectives`); the loop
handles the rest: device ``auto`` (CUDA when present), bf16 autocast on CUDA, AdamW (weight decay on
matrices only), linear warm-up then cosine decay, gradient clipping, early stopping on validation
loss, an atomic safetensors checkpoint after every epoch, exact resume, DDP under torchrun, a
progress bar with loss and throughput, and ``metrics.csv`` in the run directory.

Resume is exact because every epoch draws its randomness from (seed, epoch, rank) alone: the batch
order, the masking and dropout of epoch e are the same whether or not the process stopped before e.
"""

from __future__ import annotations

import csv
import math
import os
import resource
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from specclip_core.data.dataset import ArrayDataset, StoreDataset, count_batches, iterate_batches, to_device
from specclip_core.spec import TrainSpec
from specclip_core.train import distributed
from specclip_core.train.checkpoint import load_checkpoint, load_weights, save_checkpoint, save_weights
from specclip_core.train.schedule import lr_at
from specclip_core.util import progress_bar

CHECKPOINT = "checkpoint.safetensors"
BEST = "best.safetensors"
PREVIOUS = "checkpoint.previous.safetensors"
"""The checkpoint of the epoch before the last (a hard link kept when the next one is written)."""
METRICS = "metrics.csv"


@dataclass
class FitResult:
    epochs_completed: int
    best_epoch: int
    best_val_loss: float
    stopped_early: bool
    steps: int
    seconds: float
    spectra_per_second: float
    peak_memory_mb: float


class LossModule(nn.Module):
    """The network and its objectives as one module, so that DDP sees one forward per step."""

    def __init__(self, network: nn.Module, objectives: Sequence[Any]):
        super().__init__()
        self.network, self.objectives = network, list(objectives)

    def forward(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        terms: dict[str, torch.Tensor] = {}
        total = None
        for objective in self.objectives:
            for name, value in objective(self.network, batch).items():
                terms[name] = value
                weighted = getattr(objective, "weight", 1.0) * value
                total = weighted if total is None else total + weighted
        if total is None:
            raise ValueError("no objective returned a loss term")
        return total, terms


def _seed_for(seed: int, epoch: int, rank: int) -> int:
    return (seed * 1_000_003 + (epoch + 2) * 7_919 + rank * 104_729) % (2**63 - 1)


def _parameter_groups(network: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    decay = [p for p in network.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in network.parameters() if p.requires_grad and p.ndim < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Trainer:
    """Train ``network`` with ``objectives`` on ``train_data``; early-stop on ``val_data``."""

    def __init__(
        self,
        network: nn.Module,
        objectives: Sequence[Any],
        train_data: StoreDataset | ArrayDataset,
        val_data: StoreDataset | ArrayDataset | None,
        config: TrainSpec,
        run_dir: str | Path,
        seed: int = 0,
        progress: bool = True,
        description: str = "train",
    ):
        self.network, self.objectives = network, list(objectives)
        self.train_data, self.val_data, self.config = train_data, val_data, config
        self.run_dir, self.seed, self.progress, self.description = Path(run_dir), seed, progress, description
        self.dist, self.device = distributed.setup(config.device)
        self.use_bf16 = config.precision == "bf16" or (config.precision == "auto" and self.device.type == "cuda")

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / CHECKPOINT

    def _keep_previous(self) -> None:
        """Link the last checkpoint as :data:`PREVIOUS` (atomically) before a new one replaces it."""
        if self.checkpoint_path.exists():
            link = self.run_dir / f".{PREVIOUS}.tmp"
            link.unlink(missing_ok=True)
            os.link(self.checkpoint_path, link)
            os.replace(link, self.run_dir / PREVIOUS)

    def _resume_advice(self) -> str:
        previous = self.run_dir / PREVIOUS
        rerun = "or rerun the stage without --resume"
        return f"to resume from the epoch before, replace it with {previous}; {rerun}" if previous.exists() else rerun

    def _autocast(self):
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.use_bf16)

    def _batches(self, data: StoreDataset | ArrayDataset, epoch: int, shuffle: bool):
        return iterate_batches(
            data,
            self.config.batch_size,
            shuffle=shuffle,
            seed=self.seed,
            epoch=epoch,
            rank=self.dist.rank,
            world_size=self.dist.world_size,
            drop_last=shuffle and self.config.drop_last,
            max_batches=self.config.max_steps_per_epoch if shuffle else None,
        )

    def fit(self, resume: bool = False, until_epoch: int | None = None) -> FitResult:
        """Train to ``config.epochs`` (or until early stopping). ``resume`` continues from the last
        checkpoint in the run directory; ``until_epoch`` stops after that epoch (resume later)."""
        cfg, info, device = self.config, self.dist, self.device
        self.run_dir.mkdir(parents=True, exist_ok=True)
        network = self.network.to(device)
        loss_module = LossModule(network, self.objectives)
        module: nn.Module = loss_module
        if info.enabled:
            module = DistributedDataParallel(
                loss_module, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=cfg.find_unused_parameters
            )
        optimizer = torch.optim.AdamW(_parameter_groups(network, cfg.weight_decay), lr=cfg.lr, betas=cfg.betas)
        steps_per_epoch = count_batches(
            len(self.train_data), cfg.batch_size, info.world_size, cfg.drop_last, cfg.max_steps_per_epoch
        )
        if steps_per_epoch == 0:
            raise ValueError(f"{self.description}: no training batches ({len(self.train_data)} rows, batch size {cfg.batch_size})")
        total_steps = cfg.epochs * steps_per_epoch
        warmup = int(cfg.warmup_fraction * total_steps)

        state = {"epoch": 0, "step": 0, "best_val": math.inf, "best_epoch": 0, "bad_epochs": 0, "stopped_early": False, "seconds": 0.0, "spectra": 0}
        if resume and self.checkpoint_path.exists():
            state = load_checkpoint(self.checkpoint_path, network, optimizer, map_location=device, advice=self._resume_advice())
        elif info.is_main:
            for name in (CHECKPOINT, PREVIOUS, BEST, METRICS):
                (self.run_dir / name).unlink(missing_ok=True)
        distributed.barrier(info)

        last_epoch = cfg.epochs if until_epoch is None else min(cfg.epochs, until_epoch)
        epoch = state["epoch"]
        while epoch < last_epoch and not state["stopped_early"]:
            started = time.perf_counter()
            torch.manual_seed(_seed_for(self.seed, epoch, info.rank))
            module.train()
            sums: dict[str, float] = {}
            seen = 0
            bar = progress_bar(steps_per_epoch, f"{self.description} epoch {epoch + 1}/{cfg.epochs}", "batch", disable=not (self.progress and info.is_main))
            for batch in self._batches(self.train_data, epoch, shuffle=True):
                batch = to_device(batch, device)
                lr = lr_at(state["step"], total_steps, cfg.lr, warmup, cfg.min_lr_ratio)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                with self._autocast():
                    loss, terms = module(batch)
                if not torch.isfinite(loss):
                    raise FloatingPointError(
                        f"{self.description}: loss is {loss.item()} at epoch {epoch + 1}, step {state['step']}; "
                        "lower the learning rate or look for bad spectra in this batch: "
                        f"{list(batch['ids'][:5])}"
                    )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip:
                    torch.nn.utils.clip_grad_norm_(network.parameters(), cfg.grad_clip)
                optimizer.step()
                state["step"] += 1
                n = len(batch["ids"])
                seen += n
                sums["loss"] = sums.get("loss", 0.0) + loss.item() * n
                for name, value in terms.items():
                    sums[name] = sums.get(name, 0.0) + value.item() * n
                elapsed = time.perf_counter() - started
                bar.set_postfix(loss=f"{sums['loss'] / seen:.4g}", spectra_s=f"{seen * info.world_size / max(elapsed, 1e-9):.0f}", refresh=False)
                bar.update(1)
            bar.close()
            seconds = time.perf_counter() - started
            train_means = {k: distributed.mean_over_ranks(v / max(seen, 1), info, device) for k, v in sums.items()}
            val_means = self._validate(module) if self.val_data is not None and len(self.val_data) else {}
            epoch += 1
            monitored = val_means.get("loss", train_means["loss"])
            improved = monitored < state["best_val"] - cfg.min_delta
            if improved:
                state.update(best_val=monitored, best_epoch=epoch, bad_epochs=0)
                if info.is_main:
                    save_weights(network, self.run_dir / BEST)
            else:
                state["bad_epochs"] += 1
            if cfg.patience is not None and state["bad_epochs"] >= cfg.patience:
                state["stopped_early"] = True
            state["epoch"] = epoch
            state["seconds"] += seconds
            state["spectra"] += seen * info.world_size
            if info.is_main:
                self._keep_previous()
                save_checkpoint(self.checkpoint_path, network, optimizer, state)
                self._log(epoch, state["step"], lr, train_means, val_means, seconds, seen * info.world_size / max(seconds, 1e-9), _peak_memory_mb(device))
            distributed.barrier(info)

        if (self.run_dir / BEST).exists():
            load_weights(network, self.run_dir / BEST, map_location=device)
        return FitResult(
            epochs_completed=state["epoch"],
            best_epoch=state["best_epoch"],
            best_val_loss=state["best_val"],
            stopped_early=state["stopped_early"],
            steps=state["step"],
            seconds=state["seconds"],
            spectra_per_second=state["spectra"] / max(state["seconds"], 1e-9),
            peak_memory_mb=_peak_memory_mb(device),
        )

    @torch.no_grad()
    def _validate(self, module: nn.Module) -> dict[str, float]:
        torch.manual_seed(_seed_for(self.seed, -1, self.dist.rank))
        module.eval()
        sums: dict[str, float] = {}
        seen = 0
        for batch in self._batches(self.val_data, 0, shuffle=False):
            batch = to_device(batch, self.device)
            with self._autocast():
                loss, terms = module(batch)
            n = len(batch["ids"])
            seen += n
            sums["loss"] = sums.get("loss", 0.0) + loss.item() * n
            for name, value in terms.items():
                sums[name] = sums.get(name, 0.0) + value.item() * n
        return {k: distributed.mean_over_ranks(v / max(seen, 1), self.dist, self.device) for k, v in sums.items()}

    def _log(self, epoch: int, step: int, lr: float, train: dict[str, float], val: dict[str, float], seconds: float, rate: float, memory: float) -> None:
        row = {"epoch": epoch, "step": step, "lr": lr, "train_loss": train["loss"], "val_loss": val.get("loss", float("nan"))}
        row |= {"seconds": round(seconds, 3), "spectra_per_s": round(rate, 1), "peak_memory_mb": round(memory, 1)}
        row |= {f"train_{k}": v for k, v in sorted(train.items()) if k != "loss"}
        row |= {f"val_{k}": v for k, v in sorted(val.items()) if k != "loss"}
        path = self.run_dir / METRICS
        header = None
        if path.exists():
            with open(path) as handle:
                header = next(csv.reader(handle), None)
        with open(path, "a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=header or list(row), extrasaction="ignore")
            if header is None:
                writer.writeheader()
            writer.writerow(row)


def fit_summary(result: FitResult) -> dict[str, Any]:
    return asdict(result)
