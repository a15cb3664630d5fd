"""A ridge-regression head (scikit-learn), per label, with the penalty chosen on the validation split.

A fast, strong linear baseline; its coefficients are saved as safetensors (no pickle).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from specclip_core.interfaces import Head, HeadLayout, LabelledInputs
from specclip_core.train.checkpoint import load_tensors, save_tensors


class RidgeHeadConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    alphas: list[float] = Field(default_factory=lambda: [0.01, 0.1, 1.0, 10.0, 100.0, 1000.0], min_length=1)


class RidgeHead(Head):
    def __init__(self, config: RidgeHeadConfig | None = None):
        self.config = config or RidgeHeadConfig()
        self.labels: list[str] = []
        self.coef: dict[str, np.ndarray] = {}
        self.intercept: dict[str, float] = {}
        self.alpha: dict[str, float] = {}

    def fit(self, train: LabelledInputs, validation: LabelledInputs, run_dir: Path, **settings: Any) -> dict[str, Any]:
        from sklearn.linear_model import Ridge
        from sklearn.preprocessing import StandardScaler

        self.labels = list(train.labels)
        self.scaler = StandardScaler().fit(train.inputs)
        x_train, x_val = self.scaler.transform(train.inputs), self.scaler.transform(validation.inputs)
        summary = {}
        for label in self.labels:
            keep_t, keep_v = np.isfinite(train.labels[label]), np.isfinite(validation.labels[label])
            best = None
            for alpha in self.config.alphas:
                model = Ridge(alpha=alpha).fit(x_train[keep_t], train.labels[label][keep_t])
                error = np.mean((model.predict(x_val[keep_v]) - validation.labels[label][keep_v]) ** 2)
                if best is None or error < best[0]:
                    best = (error, alpha, model)
            _, alpha, model = best
            self.coef[label], self.intercept[label], self.alpha[label] = model.coef_.astype(np.float64), float(model.intercept_), alpha
            summary[label] = {"alpha": alpha, "n_train": int(keep_t.sum())}
        return summary

    def predict(self, inputs: np.ndarray) -> dict[str, np.ndarray]:
        x = self.scaler.transform(np.asarray(inputs, dtype=np.float64))
        return {label: x @ self.coef[label] + self.intercept[label] for label in self.labels}

    def save(self, directory: Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {f"coef.{k}": torch.from_numpy(v) for k, v in self.coef.items()}
        tensors["scaler.mean"] = torch.from_numpy(self.scaler.mean_)
        tensors["scaler.scale"] = torch.from_numpy(self.scaler.scale_)
        save_tensors(directory / "ridge.safetensors", tensors)
        HeadLayout("ridge", self.labels, {"config": self.config.model_dump(), "intercept": self.intercept, "alpha": self.alpha}).write(directory)

    @classmethod
    def load(cls, directory: Path) -> RidgeHead:
        from sklearn.preprocessing import StandardScaler

        directory = Path(directory)
        layout = HeadLayout.read(directory)
        described = layout.settings
        tensors, _ = load_tensors(directory / "ridge.safetensors")
        head = cls(RidgeHeadConfig(**described["config"]))
        head.labels, head.intercept, head.alpha = layout.labels, described["intercept"], described["alpha"]
        head.coef = {k: tensors[f"coef.{k}"].numpy() for k in head.labels}
        head.scaler = StandardScaler()
        head.scaler.mean_, head.scaler.scale_ = tensors["scaler.mean"].numpy(), tensors["scaler.scale"].numpy()
        head.scaler.var_ = head.scaler.scale_**2
        head.scaler.n_features_in_ = head.scaler.mean_.size
        return head
