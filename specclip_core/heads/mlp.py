"""The MLP regression head (paper section 3.1.1): one network per label by default, trained with the
core's training loop on standardised inputs and labels, early-stopped on the validation split.

With the default hidden sizes (1024, 512, 128) a head on 768-wide embeddings has 1.38M parameters,
the paper's ~1.4M.

Uncertainties (``uncertainty``): ``none`` (the default, the paper's point-estimate head trained on
``loss``) or ``gaussian``: each network also gives a log-variance per label and is trained with the
Gaussian negative log-likelihood (``torch.nn.GaussianNLLLoss``), so each star gets its own
(heteroscedastic) sigma; each label's Gaussians are then recalibrated on the validation stars
(quantile recalibration, :class:`specclip_core.heads.calibration.Recalibration`: the level at which
a star's Gaussian is read is the one at which validation truths actually fell, which also fixes
tails heavier than a Gaussian's). ``predict`` gives the recalibrated median as the value, ``_lo``/
``_hi`` (its 16th/84th percentiles) and ``<label>_err`` (half their distance); ``sample`` gives
evenly spaced quantiles so the heads stage's SBC and coverage tests apply. Chosen over a deep ensemble because it costs one training, not
five, on 2 CPU cores, and because the scatter of these labels is dominated by the noise and
degeneracy of each spectrum (aleatoric), which a mean-variance network models directly while an
ensemble's spread measures only how much its members disagree.

``members``: an ensemble of that many networks per label group, member i trained like the first from
the seed + 1000 i (so heads whose seeds differ by less than 1000 share no member); the value is the members' mean, and for ``gaussian`` the sigma is that of the
members' equal mixture (its mean and variance; ``sample`` draws from the Gaussian of those moments).
``label_errors`` (``gaussian`` only): each training star's own label error (the heads stage's
``label_errors`` columns) is added in quadrature to the predicted variance in the likelihood, so the
network's sigma models the scatter of the spectra beyond the labels' own measurement noise; a star
without an error counts with none.

``log_labels``: labels fitted as the log10 of their value (every training value must be > 0), for a
label whose errors grow with it: Teff, whose hot stars' errors are several times the cool ones' in
kelvin but alike in log. The Gaussian, its recalibration and the standardisation are in log10; the
values, intervals and samples are given back in the label's units (quantiles map through a monotone
transform, so a log-normal's median and percentiles are exact).
``noise_augment``: each training batch is a noisier copy of its spectra: every input gets Gaussian
noise of its own error (``LabelledInputs.input_errors``; for spectra inputs the flux errors, see
:func:`specclip_core.heads.inputs.spectra_input_errors`) times a factor drawn per star and batch
uniformly from [0, noise_augment], so a star of S/N s is also seen at S/N down to
s / sqrt(1 + noise_augment^2). This teaches the network the low-S/N spectra that a survey has many
of and a training set few; validation and test inputs are never perturbed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from scipy.special import ndtr
from torch import nn

from specclip_core.data.dataset import ArrayDataset
from specclip_core.heads.calibration import Recalibration
from specclip_core.heads.gaussian import INTERVAL_LEVELS, gaussian_quantiles, interval_columns, mixture, sample_levels
from specclip_core.heads.inputs import standardiser
from specclip_core.interfaces import Head, HeadLayout, LabelledInputs, Objective, ObjectiveConfig
from specclip_core.spec import TrainSpec
from specclip_core.train.checkpoint import load_weights, save_weights
from specclip_core.train.loop import Trainer


MEMBER_SEED_STEP = 1000
"""Member i of an ensemble is trained from the head's seed + MEMBER_SEED_STEP * i."""


class MLPHeadConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hidden: list[int] = Field(default_factory=lambda: [1024, 512, 128], min_length=1)
    dropout: float = Field(0.0, ge=0, lt=1)
    loss: Literal["mse", "huber", "l1"] = "mse"
    joint: bool = Field(False, description="one network for all labels instead of one per label")
    uncertainty: Literal["none", "gaussian"] = Field("none", description="none: point estimates; gaussian: a sigma per star from a Gaussian NLL, recalibrated on validation")
    samples: int = Field(1000, ge=10, description="Gaussian quantiles per star that sample() gives (gaussian only)")
    members: int = Field(1, ge=1, description="networks per label group, member i from seed + 1000 i; predictions are their mean (mixture for gaussian)")
    label_errors: bool = Field(False, description="gaussian only: add each training star's label error (the heads stage's label_errors) to the predicted variance")
    log_labels: list[str] = Field(default_factory=list, description="labels fitted as log10 of their value (all > 0), e.g. teff; predictions are given back in the label's units")
    noise_augment: float = Field(0.0, ge=0, description="train on copies of the spectra with extra noise of their own errors times a factor drawn uniformly from [0, noise_augment] per star and batch (spectra inputs only)")

    @model_validator(mode="after")
    def _label_errors_need_gaussian(self) -> MLPHeadConfig:
        if self.label_errors and self.uncertainty != "gaussian":
            raise ValueError("label_errors needs uncertainty: gaussian (the errors enter the Gaussian likelihood)")
        return self


def mlp(n_in: int, hidden: list[int], n_out: int, dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(n_in, width), nn.GELU(), nn.Dropout(dropout)]
        n_in = width
    return nn.Sequential(*layers, nn.Linear(n_in, n_out))


def noisier(network: nn.Module, batch: dict[str, Any], noise: float) -> torch.Tensor:
    """The batch's inputs, with Gaussian noise of ``batch["errors"]`` times a factor drawn per row
    uniformly from [0, ``noise``] while ``network`` trains (unchanged otherwise)."""
    inputs = batch["inputs"]
    if noise <= 0 or not network.training or "errors" not in batch:
        return inputs
    factor = torch.rand((len(inputs), 1), device=inputs.device) * noise
    return inputs + batch["errors"] * factor * torch.randn_like(inputs)


class TargetRegression(Objective):
    """Loss between ``network(batch["inputs"])`` and ``batch["targets"]`` over finite targets only
    (inputs made :func:`noisier` by ``noise`` while training; rows weighted by ``batch["weights"]``
    where given)."""

    def __init__(self, loss: str = "mse", noise: float = 0.0):
        super().__init__(ObjectiveConfig())
        self.loss, self.noise = loss, noise

    def __call__(self, network: nn.Module, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        predicted = network(noisier(network, batch, self.noise)).float()
        return {f"target_{self.loss}": target_loss(predicted, batch["targets"], self.loss, batch.get("weights"))}


def weighted_mean(terms: torch.Tensor, known: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """The mean of ``terms`` [B, k] over ``known`` entries, each row counted with its weight [B] (None: 1)."""
    if weights is None:
        return terms[known].mean()
    counted = weights[:, None].expand_as(terms)[known]
    return (terms[known] * counted).sum() / counted.sum().clamp_min(1e-12)


def target_loss(predicted: torch.Tensor, targets: torch.Tensor, loss: str, weights: torch.Tensor | None = None) -> torch.Tensor:
    """The ``loss`` (mse, huber or l1) between ``predicted`` and ``targets`` over finite targets, each
    row weighted by ``weights`` [B] where given."""
    known = torch.isfinite(targets)
    difference = predicted - torch.nan_to_num(targets)
    if loss == "l1":
        terms = difference.abs()
    elif loss == "huber":
        terms = nn.functional.huber_loss(difference, torch.zeros_like(difference), reduction="none")
    else:
        terms = difference.pow(2)
    return weighted_mean(terms, known, weights)


class GaussianRegression(Objective):
    """Gaussian negative log-likelihood of ``batch["targets"]`` [B, n] under the network's means
    (first n outputs) and variances (softplus of the last n) over finite targets only. With
    ``label_errors`` the targets are [B, 2n]: the labels, then their errors (in the same standardised
    units), whose squares are added to the variances. Inputs are made :func:`noisier` by ``noise``;
    rows are weighted by ``batch["weights"]`` where given."""

    def __init__(self, label_errors: bool = False, noise: float = 0.0):
        super().__init__(ObjectiveConfig())
        self.loss = nn.GaussianNLLLoss(eps=1e-4, reduction="none")
        self.label_errors, self.noise = label_errors, noise

    def __call__(self, network: nn.Module, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        targets = batch["targets"]
        mean, variance = split_outputs(network(noisier(network, batch, self.noise)).float())
        if self.label_errors:
            targets, errors = targets[:, : mean.shape[1]], targets[:, mean.shape[1] :]
            variance = variance + torch.nan_to_num(errors).pow(2)
        known = torch.isfinite(targets)
        terms = self.loss(mean, torch.nan_to_num(targets), variance)
        return {"target_gaussian_nll": weighted_mean(terms, known, batch.get("weights"))}


class ValueAndSpread(Objective):
    """The value trained by its own ``loss`` (as :class:`TargetRegression`) and, beside it, a variance
    trained by the Gaussian negative log-likelihood of the targets around the value with the value's
    gradient stopped: the variance learns how far the truths fall from the value without pulling the
    value towards what a Gaussian likelihood prefers. Outputs as :func:`split_outputs` reads them."""

    def __init__(self, loss: str = "mse", noise: float = 0.0):
        super().__init__(ObjectiveConfig())
        self.loss, self.noise = loss, noise
        self.likelihood = nn.GaussianNLLLoss(eps=1e-4)

    def __call__(self, network: nn.Module, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        targets = batch["targets"]
        mean, variance = split_outputs(network(noisier(network, batch, self.noise)).float())
        known = torch.isfinite(targets)
        return {
            f"target_{self.loss}": target_loss(mean, targets, self.loss),
            "spread_gaussian_nll": self.likelihood(mean.detach()[known], targets[known], variance[known]),
        }


def _kept(weights: np.ndarray | None, keep: np.ndarray) -> np.ndarray | None:
    return None if weights is None else weights[keep]


def split_outputs(outputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(means, variances) of a Gaussian head's outputs: the first half, and softplus of the second."""
    n = outputs.shape[1] // 2
    return outputs[:, :n], nn.functional.softplus(outputs[:, n:]) + 1e-6


class MLPHead(Head):
    def __init__(self, config: MLPHeadConfig | None = None):
        self.config = config or MLPHeadConfig()
        self.labels: list[str] = []
        self.groups: list[list[str]] = []
        self.networks: list[nn.Sequential] = []
        self.input_mean = self.input_std = None
        self.label_mean: dict[str, float] = {}
        self.label_std: dict[str, float] = {}
        self.recalibration: Recalibration | None = None

    @property
    def gaussian(self) -> bool:
        return self.config.uncertainty == "gaussian"

    @property
    def gives_samples(self) -> bool:
        return self.gaussian

    @property
    def uses_input_errors(self) -> bool:
        return self.config.noise_augment > 0

    takes_weights = True

    def _fitted(self, label: str, values: np.ndarray) -> np.ndarray:
        """A label's values in the units the networks fit: log10 for ``log_labels`` (NaN where <= 0)."""
        if label not in self.config.log_labels:
            return values
        values = np.asarray(values, dtype=np.float64)
        return np.log10(values, out=np.full_like(values, np.nan), where=values > 0)

    def _given(self, label: str, values: np.ndarray) -> np.ndarray:
        """Fitted values back in the label's units."""
        return 10.0**values if label in self.config.log_labels else values

    def _network(self, n_in: int, n_labels: int) -> nn.Sequential:
        return mlp(n_in, self.config.hidden, n_labels * (2 if self.gaussian else 1), self.config.dropout)

    def _group_targets(self, data: LabelledInputs, group: list[str]) -> np.ndarray:
        """Standardised labels of ``group`` [N, k]; with ``label_errors`` followed by their errors [N, 2k]
        (a log label's error as the error of its log10)."""
        targets = [(self._fitted(k, data.labels[k]) - self.label_mean[k]) / self.label_std[k] for k in group]
        if self.config.label_errors:
            missing = [k for k in group if k not in data.label_errors]
            if missing:
                raise ValueError(f"label_errors: no error column given for {missing} (the heads stage's label_errors)")
            targets += [self._fitted_error(k, data, data.label_errors[k]) / self.label_std[k] for k in group]
        return np.stack(targets, axis=1)

    def _fitted_error(self, label: str, data: LabelledInputs, errors: np.ndarray) -> np.ndarray:
        """A label's errors in the fitted units (for a log label, error / (value ln 10))."""
        if label not in self.config.log_labels:
            return errors
        with np.errstate(divide="ignore", invalid="ignore"):
            return errors / (data.labels[label] * np.log(10.0))

    def _check_fit_settings(self, train: LabelledInputs) -> None:
        unknown = sorted(set(self.config.log_labels) - set(self.labels))
        if unknown:
            raise ValueError(f"log_labels: {unknown} are not among the head's labels {self.labels}")
        for label in self.config.log_labels:
            values = train.labels[label]
            if np.any(values[np.isfinite(values)] <= 0):
                raise ValueError(f"log_labels: label {label!r} has training values <= 0 (min {np.nanmin(values):.4g}); its log10 is not defined")
        if self.uses_input_errors and train.input_errors is None:
            raise ValueError("noise_augment needs the training inputs' errors (LabelledInputs.input_errors), which the heads stage gives for input: spectra")

    def _member_networks(self) -> list[tuple[list[str], list[nn.Sequential]]]:
        """(group, its members' networks) per label group."""
        m = self.config.members
        return [(group, self.networks[i * m : (i + 1) * m]) for i, group in enumerate(self.groups)]

    def fit(self, train: LabelledInputs, validation: LabelledInputs, run_dir: Path, train_spec: TrainSpec | None = None, seed: int = 0, progress: bool = True, resume: bool = False) -> dict[str, Any]:
        train_spec = train_spec or TrainSpec(epochs=100, batch_size=256, lr=1e-3, weight_decay=0.0, patience=10)
        self.labels = list(train.labels)
        self.groups = [self.labels] if self.config.joint else [[label] for label in self.labels]
        self._check_fit_settings(train)
        self.input_mean, self.input_std = standardiser(train.inputs)
        for label in self.labels:
            mean, std = standardiser(self._fitted(label, train.labels[label])[:, None])
            self.label_mean[label], self.label_std[label] = float(mean[0]), float(std[0])
        x_train = (train.inputs - self.input_mean) / self.input_std
        x_val = (validation.inputs - self.input_mean) / self.input_std
        e_train = train.input_errors / self.input_std if self.uses_input_errors else None
        summary: dict[str, Any] = {}
        self.networks = []
        for group in self.groups:
            y_train, y_val = self._group_targets(train, group), self._group_targets(validation, group)
            n_labels = len(group)
            keep_train, keep_val = np.isfinite(y_train[:, :n_labels]).any(1), np.isfinite(y_val[:, :n_labels]).any(1)
            name = "+".join(group)
            for member in range(self.config.members):
                member_seed = seed + MEMBER_SEED_STEP * member
                torch.manual_seed(member_seed)
                network = self._network(x_train.shape[1], n_labels)
                tag = name if self.config.members == 1 else f"{name}.{member}"
                trainer = Trainer(
                    network,
                    [GaussianRegression(self.config.label_errors, self.config.noise_augment) if self.gaussian else TargetRegression(self.config.loss, self.config.noise_augment)],
                    ArrayDataset(x_train[keep_train], y_train[keep_train], train.ids[keep_train], None if e_train is None else e_train[keep_train], _kept(train.weights, keep_train)),
                    ArrayDataset(x_val[keep_val], y_val[keep_val], validation.ids[keep_val], weights=_kept(validation.weights, keep_val)),
                    train_spec,
                    Path(run_dir) / tag,
                    seed=member_seed,
                    progress=progress,
                    description=f"head {tag}",
                )
                result = trainer.fit(resume=resume)
                self.networks.append(network.cpu().eval())
                summary[tag] = {"n_train": int(keep_train.sum()), "n_val": int(keep_val.sum()), "best_epoch": result.best_epoch, "epochs": result.epochs_completed, "seconds": round(result.seconds, 1)}
        if self.gaussian:
            gaussians = self._gaussians(validation.inputs)
            pits = {label: ndtr((self._fitted(label, validation.labels[label]) - mean) / sigma) for label, (mean, sigma) in gaussians.items()}
            self.recalibration = Recalibration.fit(validation.labels, pits)
        return summary

    @torch.no_grad()
    def _outputs(self, inputs: np.ndarray, batch_size: int = 4096) -> list[list[torch.Tensor]]:
        """Per label group, each member network's raw outputs on standardised ``inputs``."""
        x = torch.as_tensor((np.asarray(inputs, dtype=np.float32) - self.input_mean) / self.input_std)
        out = []
        for group, networks in self._member_networks():
            width = len(group) * (2 if self.gaussian else 1)
            members = []
            for network in networks:
                network.eval()
                members.append(torch.cat([network(x[i : i + batch_size]).float() for i in range(0, len(x), batch_size)]) if len(x) else torch.zeros((0, width)))
            out.append(members)
        return out

    def _gaussians(self, inputs: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Label -> (mean, sigma) in the fitted units (log10 for ``log_labels``): the members' mixture
        (gaussian only)."""
        out = {}
        for group, members in zip(self.groups, self._outputs(inputs)):
            mean, variance = mixture(*zip(*(split_outputs(outputs) for outputs in members)))
            for column, label in enumerate(group):
                std = self.label_std[label]
                sigma = variance[:, column].sqrt().numpy().astype(np.float64) * std
                out[label] = (mean[:, column].numpy().astype(np.float64) * std + self.label_mean[label], sigma)
        return out

    def _quantiles(self, inputs: np.ndarray, levels: np.ndarray, recalibrated: bool = True) -> dict[str, np.ndarray]:
        """Label -> each star's Gaussian read at ``levels`` ``[L]`` (after the recalibration unless
        ``recalibrated`` is false): ``[N, L]`` in the label's units (gaussian only)."""
        return gaussian_quantiles(self._gaussians(inputs), levels, self.recalibration if recalibrated else None, self._given)

    def predict(self, inputs: np.ndarray) -> dict[str, np.ndarray]:
        """Label -> value; with ``gaussian`` the recalibrated median, with ``_lo``/``_hi`` (16th/84th
        percentiles) and ``_err`` (half of hi - lo)."""
        if not self.gaussian:
            out: dict[str, np.ndarray] = {}
            for group, members in zip(self.groups, self._outputs(inputs)):
                values = torch.stack(members).mean(0)
                for column, label in enumerate(group):
                    out[label] = self._given(label, values[:, column].numpy().astype(np.float64) * self.label_std[label] + self.label_mean[label])
            return out
        return interval_columns(self._quantiles(inputs, INTERVAL_LEVELS))

    def sample(self, inputs: np.ndarray, n_samples: int | None = None, recalibrated: bool = True) -> dict[str, np.ndarray] | None:
        """For ``gaussian``: label -> ``[N, n_samples]`` evenly spaced quantiles of each star's
        (recalibrated) Gaussian (``samples`` by default), which calibration treats as posterior
        samples; None otherwise."""
        if not self.gaussian:
            return None
        return self._quantiles(inputs, sample_levels(n_samples or self.config.samples), recalibrated)

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
            "recalibration": self.recalibration.levels if self.recalibration else None,
        }
        for group, networks in self._member_networks():
            for member, network in enumerate(networks):
                save_weights(network, directory / self._weights_name(group, member))
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
        head.recalibration = Recalibration(described["recalibration"]) if described.get("recalibration") else None
        for group in head.groups:
            for member in range(head.config.members):
                network = head._network(described["n_inputs"], len(group))
                load_weights(network, directory / head._weights_name(group, member))
                head.networks.append(network.eval())
        return head

    def _weights_name(self, group: list[str], member: int) -> str:
        """``<labels joined by +>.safetensors``; a member after the first adds ``.<member>``."""
        name = "+".join(group)
        return f"{name}.safetensors" if self.config.members == 1 else f"{name}.{member}.safetensors"
