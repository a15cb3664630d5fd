"""The MLP regression head (paper section 3.1.1): one network per label by default, trained with the
core's training loop on standardised inputs and labels, early-stopped on the validation split.

With the default hidden sizes (1024, 512, 128) a head on 768-wide embeddings has 1.38M parameters,
the paper's ~1.4M.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from specclip_core.data.dataset import ArrayDataset
from specclip_core.heads.inputs import standardiser
from specclip_core.interfaces import Head, HeadLayout, LabelledInputs, Objective, ObjectiveConfig
from specclip_core.spec import TrainSpec
from specclip_core.train.checkpoint import load_weights, save_weights
from specclip_core.train.loop import Trainer


class MLPHeadConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hidden: list[int] = Field(default_factory=lambda: [1024, 512, 128], min_length=1)
    dropout: float = Field(0.0, ge=0, lt=1)
    loss: Literal["mse", "huber", "l1"] = "mse"
    joint: bool = Field(False, description="one network for all labels instead of one per label")


def mlp(n_in: int, hidden: list[int], n_out: int, dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(n_in, width), nn.GELU(), nn.Dropout(dropout)]
        n_in = width
    return nn.Sequential(*layers, nn.Linear(n_in, n_out))


class TargetRegression(Objective):
    """Loss between ``network(batch["inputs"])`` and ``batch["targets"]`` over finite targets only."""

    def __init__(self, loss: str = "mse"):
        super().__init__(ObjectiveConfig())
        self.loss = loss

    def __call__(self, network: nn.Module, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        predicted, targets = network(batch["inputs"]).float(), batch["targets"]
        known = torch.isfinite(targets)
        difference = (predicted - torch.nan_to_num(targets))[known]
        if self.loss == "l1":
            value = difference.abs().mean()
        elif self.loss == "huber":
            value = nn.functional.huber_loss(difference, torch.zeros_like(difference))
        else:
            value = difference.pow(2).mean()
        return {f"target_{self.loss}": value}


class MLPHead(Head):
    def __init__(self, config: MLPHeadConfig | None = None):
        self.config = config or MLPHeadConfig()
        self.labels: list[str] = []
        self.groups: list[list[str]] = []
        self.networks: list[nn.Sequential] = []
        self.input_mean = self.input_std = None
        self.label_mean: dict[str, float] = {}
        self.label_std: dict[str, float] = {}

    def _group_targets(self, data: LabelledInputs, group: list[str]) -> np.ndarray:
        return np.stack([(data.labels[k] - self.label_mean[k]) / self.label_std[k] for k in group], axis=1)

    def fit(self, train: LabelledInputs, validation: LabelledInputs, run_dir: Path, train_spec: TrainSpec | None = None, seed: int = 0, progress: bool = True, resume: bool = False) -> dict[str, Any]:
        train_spec = train_spec or TrainSpec(epochs=100, batch_size=256, lr=1e-3, weight_decay=0.0, patience=10)
        self.labels = list(train.labels)
        self.groups = [self.labels] if self.config.joint else [[label] for label in self.labels]
        self.input_mean, self.input_std = standardiser(train.inputs)
        for label in self.labels:
            mean, std = standardiser(train.labels[label][:, None])
            self.label_mean[label], self.label_std[label] = float(mean[0]), float(std[0])
        x_train = (train.inputs - self.input_mean) / self.input_std
        x_val = (validation.inputs - self.input_mean) / self.input_std
        summary: dict[str, Any] = {}
        self.networks = []
        for group in self.groups:
            y_train, y_val = self._group_targets(train, group), self._group_targets(validation, group)
            keep_train, keep_val = np.isfinite(y_train).any(1), np.isfinite(y_val).any(1)
            torch.manual_seed(seed)
            network = mlp(x_train.shape[1], self.config.hidden, len(group), self.config.dropout)
            name = "+".join(group)
            trainer = Trainer(
                network,
                [TargetRegression(self.config.loss)],
                ArrayDataset(x_train[keep_train], y_train[keep_train], train.ids[keep_train]),
                ArrayDataset(x_val[keep_val], y_val[keep_val], validation.ids[keep_val]),
                train_spec,
                Path(run_dir) / name,
                seed=seed,
                progress=progress,
                description=f"head {name}",
            )
            result = trainer.fit(resume=resume)
            self.networks.append(network.cpu().eval())
            summary[name] = {"n_train": int(keep_train.sum()), "n_val": int(keep_val.sum()), "best_epoch": result.best_epoch, "epochs": result.epochs_completed, "seconds": round(result.seconds, 1)}
        return summary

    @torch.no_grad()
    def predict(self, inputs: np.ndarray, batch_size: int = 4096) -> dict[str, np.ndarray]:
        x = torch.as_tensor((np.asarray(inputs, dtype=np.float32) - self.input_mean) / self.input_std)
        out: dict[str, np.ndarray] = {}
        for group, network in zip(self.groups, self.networks):
            network.eval()
            values = torch.cat([network(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]).numpy() if len(x) else np.zeros((0, len(group)))
            for column, label in enumerate(group):
                out[label] = values[:, column].astype(np.float64) * self.label_std[label] + self.label_mean[label]
        return out

    def n_parameters(self) -> int:
        return sum(p.numel() for network in self.networks for p in network.parameters())

    def save(self, directory: Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        settings = {
            "config": self.config.model_dump(),
            "groups": self.groups,
            "n_inputs": int(self.input_mean.size),
            "input_mean": self.input_mean.tolist(),
            "input_std": self.input_std.tolist(),
            "label_mean": self.label_mean,
            "label_std": self.label_std,
        }
        for group, network in zip(self.groups, self.networks):
            save_weights(network, directory / f"{'+'.join(group)}.safetensors")
        HeadLayout("mlp", self.labels, settings).write(directory)

    @classmethod
    def load(cls, directory: Path) -> MLPHead:
        directory = Path(directory)
        layout = HeadLayout.read(directory)
        described = layout.settings
        head = cls(MLPHeadConfig(**described["config"]))
        head.labels, head.groups = layout.labels, described["groups"]
        head.input_mean = np.asarray(described["input_mean"], dtype=np.float32)
        head.input_std = np.asarray(described["input_std"], dtype=np.float32)
        head.label_mean, head.label_std = described["label_mean"], described["label_std"]
        for group in head.groups:
            network = mlp(described["n_inputs"], head.config.hidden, len(group), head.config.dropout)
            load_weights(network, directory / f"{'+'.join(group)}.safetensors")
            head.networks.append(network.eval())
        return head
