"""A heads stage's whole model as one network, for fine-tuning, and its saved layout.

:class:`AdaptedModel` is a base model -- the encoder a heads stage read (and, for a head on aligned
embeddings, the projection), the head's input standardisation and its MLP networks -- as one
``nn.Module`` from a head's spectra input (statistics then flux,
:func:`~specclip_core.heads.inputs.spectra_inputs`) to the head's standardised outputs. The
``finetune`` stage adapts it (LoRA through :mod:`specclip_core.nn.adapters`, the head alone, all of
it, or the same architecture from random initialisation) and saves it as a head directory::

    head.json             head "adapted", the labels, and settings: the base stages and their keys,
                          the adapters and their targets, label -> base output, the standardisations
    adapter.safetensors   only the tensors the fine-tuning trained (the LoRA matrices for adapters)
    inputs.json           what it reads (spectra), as every head directory (rundir.HeadInputs)

An ensemble of fine-tuned members (:class:`AdaptedEnsemble`, the finetune stage's ``members``) keeps
``adapter.<i>.safetensors`` per member and each member's standardisations in ``head.json``.
With ``uncertainty: gaussian`` each head network has a spread network beside it (:data:`SPREAD_HIDDEN`,
reading the network's last hidden layer, its gradient stopped there) that gives a variance per
output; the members' Gaussians are mixed and recalibrated on the validation stars
(:mod:`specclip_core.heads.gaussian`), and ``head.json`` keeps the recalibration.
Loading rebuilds the base from its (unchanged) run stages, adds the adapters and loads the tensors.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.special import ndtr
from torch import nn

from specclip_core.components import create_component, get_modality
from specclip_core.errors import SpecCLIPError
from specclip_core.heads.calibration import Recalibration
from specclip_core.heads.gaussian import INTERVAL_LEVELS, gaussian_quantiles, interval_columns, mixture, sample_levels
from specclip_core.heads.mlp import MLPHead, mlp, split_outputs
from specclip_core.interfaces import HeadLayout
from specclip_core.nn.adapters import add_lora
from specclip_core.nn.embedders import load_embedder
from specclip_core.nn.modality_encoder import ModalityEncoder
from specclip_core.rundir import HeadInputs, RunDir, encoder_dir
from specclip_core.train.checkpoint import load_tensors, save_tensors

ADAPTED = "adapted"
WEIGHTS = "adapter.safetensors"
SPREAD_HIDDEN = [64]
"""Hidden widths of the spread network beside each head network (``uncertainty: gaussian``)."""
SAMPLES = 1000
"""Quantiles per star and label that a Gaussian model's ``sample`` gives by default."""


def member_weights(member: int) -> str:
    """The adapter file of member ``member`` of an ensemble."""
    return f"adapter.{member}.safetensors"


@dataclass
class Base:
    """A finished heads stage and what it reads: its inputs.json, its MLP head, the encoder's embedder (None on spectra)."""

    heads_stage: str
    inputs: HeadInputs
    head: MLPHead
    embedder: Any | None

    @property
    def outputs(self) -> list[str]:
        """The head's outputs in network order (its label groups, flattened)."""
        return [label for group in self.head.groups for label in group]


def load_base(run: RunDir, heads_stage: str) -> Base:
    """The base model of a finished heads stage of ``run``; a SpecCLIPError when it is not an MLP head."""
    head_dir = run.head(heads_stage)
    inputs = HeadInputs.read(head_dir)
    kind = HeadLayout.read(head_dir).head
    if kind != "mlp":
        raise SpecCLIPError(f"{head_dir}: base head {heads_stage!r} is a {kind!r} head; fine-tuning adapts mlp heads")
    head = MLPHead.load(head_dir)
    embedder = load_embedder(encoder_dir(run.stage(inputs.encoder_stage), inputs.modality)) if inputs.input == "embedding" else None
    return Base(heads_stage, inputs, head, embedder)


class AdaptedModel(nn.Module):
    """Encoder (or none, for a head on spectra), projection (or none), standardisation and head networks.

    ``columns`` maps each predicted label to its output column; ``label_mean`` / ``label_std`` undo
    the standardisation of that column. With ``spreads`` (one network per head network, reading its
    last hidden layer) the output is the means, then the variances' pre-activations
    (:func:`~specclip_core.heads.mlp.split_outputs`).
    """

    def __init__(
        self,
        n_stats: int,
        encoder: ModalityEncoder | None,
        projection: nn.Module | None,
        networks: list[nn.Module],
        input_mean: np.ndarray,
        input_std: np.ndarray,
        columns: dict[str, int],
        label_mean: dict[str, float],
        label_std: dict[str, float],
        spreads: list[nn.Module] | None = None,
    ):
        super().__init__()
        self.n_stats, self.encoder, self.projection = n_stats, encoder, projection
        self.head = nn.ModuleList(networks)
        self.spreads = nn.ModuleList(spreads) if spreads else None
        self.register_buffer("input_mean", torch.as_tensor(np.asarray(input_mean, dtype=np.float32)), persistent=False)
        self.register_buffer("input_std", torch.as_tensor(np.asarray(input_std, dtype=np.float32)), persistent=False)
        self.columns, self.label_mean, self.label_std = dict(columns), dict(label_mean), dict(label_std)

    @property
    def labels(self) -> list[str]:
        return list(self.columns)

    @property
    def gaussian(self) -> bool:
        """Whether it gives a variance beside each value."""
        return self.spreads is not None

    def features(self, inputs: torch.Tensor) -> torch.Tensor:
        """What the head reads, before its standardisation: the (projected) embedding, or the spectra input itself."""
        if self.encoder is None:
            return inputs
        encoded = self.encoder({"stats": inputs[:, : self.n_stats], "flux": inputs[:, self.n_stats :]})
        if self.projection is None:
            return encoded.pooled
        return torch.cat([part for part in self.projection(encoded) if part is not None], dim=1)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x = (self.features(inputs) - self.input_mean) / self.input_std
        if self.spreads is None:
            return torch.cat([network(x) for network in self.head], dim=1)
        means, spreads = [], []
        for network, spread in zip(self.head, self.spreads):
            hidden = network[:-1](x)
            means.append(network[-1](hidden))
            spreads.append(spread(hidden.detach()))  # the spread learns around the value, never moves it
        return torch.cat(means + spreads, dim=1)

    def n_trainable(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @torch.no_grad()
    def outputs(self, inputs: np.ndarray, batch_size: int = 1024) -> torch.Tensor:
        """The network's outputs for spectra inputs (statistics then flux), in eval mode."""
        was_training = self.training
        self.eval()
        x = torch.as_tensor(np.asarray(inputs, dtype=np.float32))
        width = sum(network[-1].out_features for network in self.head) * (2 if self.gaussian else 1)
        parts = [self(x[i : i + batch_size]).float() for i in range(0, len(x), batch_size)]
        self.train(was_training)
        return torch.cat(parts) if parts else torch.zeros((0, width))

    def predict(self, inputs: np.ndarray, batch_size: int = 1024) -> dict[str, np.ndarray]:
        """Label -> predictions (in label units) for spectra inputs (statistics then flux)."""
        values = self.outputs(inputs, batch_size)
        if self.gaussian:
            values = split_outputs(values)[0]
        return {label: values[:, c].numpy().astype(np.float64) * self.label_std[label] + self.label_mean[label] for label, c in self.columns.items()}

    def moments(self, inputs: np.ndarray, batch_size: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
        """Standardised means and variances of every output (``uncertainty: gaussian`` only)."""
        return split_outputs(self.outputs(inputs, batch_size))

    def trained_tensors(self) -> dict[str, torch.Tensor]:
        """The tensors fine-tuning trains (those with requires_grad), by state-dict name."""
        return {name: p.detach().cpu().contiguous().clone() for name, p in self.named_parameters() if p.requires_grad}

    def standardisation(self) -> dict[str, Any]:
        """The input and label standardisations, as saved in ``head.json``."""
        return {
            "input_mean": self.input_mean.tolist(),
            "input_std": self.input_std.tolist(),
            "label_mean": self.label_mean,
            "label_std": self.label_std,
        }

    @classmethod
    def load(cls, directory: Path) -> AdaptedModel | AdaptedEnsemble:
        """Rebuild from ``directory`` (``<run>/<stage>/head``): the base from its run stages, which must
        still have the keys recorded at fine-tuning, then the adapters and the trained tensors (of
        every member, for an ensemble)."""
        directory = Path(directory)
        settings = HeadLayout.read(directory).settings
        reference = settings["reference"]
        run = RunDir(directory.parent.parent)
        for stage, key in reference["base_keys"].items():
            now = run.manifest(stage).get("key")
            if now != key:
                raise SpecCLIPError(
                    f"{directory}: base stage {stage!r} of {run.path} has key {str(now)[:12]}, not {key[:12]} as when it was fine-tuned; rerun the finetune stage"
                )
        base = load_base(run, reference["base"])
        recalibration = Recalibration(settings["recalibration"]) if settings.get("recalibration") else None
        if "members" not in settings:
            model = cls._rebuild(base, settings, reference, settings, directory / WEIGHTS)
            return AdaptedEnsemble([model], recalibration) if model.gaussian else model
        return AdaptedEnsemble(
            [cls._rebuild(copy.deepcopy(base), settings, reference, kept, directory / member_weights(i)) for i, kept in enumerate(settings["members"])],
            recalibration,
        )

    @classmethod
    def _rebuild(cls, base: Base, settings: dict, reference: dict, standardisation: dict, weights: Path) -> AdaptedModel:
        model = build_model(base, settings["columns"], fresh=reference["fresh"], spread=settings.get("uncertainty") == "gaussian")
        if reference["lora"]:
            add_lora(model, reference["lora"]["targets"], {k: tuple(v) for k, v in reference["lora"]["sizes"].items()})
        tensors, _ = load_tensors(weights)
        missing = set(tensors) - set(model.state_dict())
        if missing:
            raise SpecCLIPError(f"{weights}: tensors {sorted(missing)[:5]} do not fit the base {reference['base']!r}")
        model.load_state_dict(tensors, strict=False)
        model.input_mean.copy_(torch.as_tensor(standardisation["input_mean"]))
        model.input_std.copy_(torch.as_tensor(standardisation["input_std"]))
        model.label_mean, model.label_std = standardisation["label_mean"], standardisation["label_std"]
        return model.eval()


class AdaptedEnsemble:
    """Members fine-tuned from one base with the same adapters and stars, each from its own seed (or
    one Gaussian model); the value is the members' mean. For Gaussian members, each star's
    distribution is the members' equal mixture read through ``recalibration``: the value is its
    median, with ``_lo``/``_hi``/``_err`` (:func:`~specclip_core.heads.gaussian.interval_columns`)."""

    def __init__(self, members: list[AdaptedModel], recalibration: Recalibration | None = None):
        if not members:
            raise ValueError("AdaptedEnsemble: no members")
        self.members, self.recalibration = list(members), recalibration

    @property
    def labels(self) -> list[str]:
        return self.members[0].labels

    @property
    def gaussian(self) -> bool:
        return self.members[0].gaussian

    @property
    def gives_samples(self) -> bool:
        return self.gaussian

    def gaussians(self, inputs: np.ndarray, batch_size: int = 1024) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Label -> (mean, sigma) of each star's mixture of the members' Gaussians, in label units."""
        first = self.members[0]
        mean, variance = mixture(*zip(*(member.moments(inputs, batch_size) for member in self.members)))
        out = {}
        for label, c in first.columns.items():
            std = first.label_std[label]
            out[label] = (mean[:, c].numpy().astype(np.float64) * std + first.label_mean[label], variance[:, c].sqrt().numpy().astype(np.float64) * std)
        return out

    def pits(self, inputs: np.ndarray, truth: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Label -> the PIT of each star's truth under its mixture (Gaussian members; NaN without a truth),
        what :meth:`Recalibration.fit <specclip_core.heads.calibration.Recalibration.fit>` reads."""
        return {label: ndtr((truth[label] - mean) / sigma) for label, (mean, sigma) in self.gaussians(inputs).items()}

    def predict(self, inputs: np.ndarray, batch_size: int = 1024) -> dict[str, np.ndarray]:
        """Label -> the members' mean prediction (in label units); for Gaussian members the
        recalibrated median and its interval columns."""
        if self.gaussian:
            return interval_columns(gaussian_quantiles(self.gaussians(inputs, batch_size), INTERVAL_LEVELS, self.recalibration))
        each = [member.predict(inputs, batch_size) for member in self.members]
        return {label: np.mean([values[label] for values in each], axis=0) for label in self.labels}

    def sample(self, inputs: np.ndarray, n_samples: int | None = None, recalibrated: bool = True) -> dict[str, np.ndarray] | None:
        """Gaussian members: label -> ``[N, n_samples]`` evenly spaced quantiles of each star's
        (recalibrated) mixture, which calibration treats as posterior samples; None otherwise."""
        if not self.gaussian:
            return None
        return gaussian_quantiles(self.gaussians(inputs), sample_levels(n_samples or SAMPLES), self.recalibration if recalibrated else None)

    def predict_samples(self, inputs: np.ndarray, n_samples: int | None = None, recalibrated: bool = False) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray] | None]:
        return self.predict(inputs), self.sample(inputs, n_samples, recalibrated)


def save_adapted(directory: Path, models: list[AdaptedModel], reference: dict[str, Any], recalibration: Recalibration | None = None) -> None:
    """Write a finetune stage's head directory: the trained tensors of one model (:data:`WEIGHTS`) or of
    each member (:func:`member_weights`), and ``head.json`` (with Gaussian models' recalibration)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    first = models[0]
    settings: dict[str, Any] = {"reference": reference, "columns": first.columns}
    if first.gaussian:
        settings.update(uncertainty="gaussian", recalibration=recalibration.levels if recalibration else None)
    if len(models) == 1:
        save_tensors(directory / WEIGHTS, first.trained_tensors())
        settings.update(first.standardisation())
    else:
        for i, model in enumerate(models):
            save_tensors(directory / member_weights(i), model.trained_tensors())
        settings["members"] = [model.standardisation() for model in models]
    HeadLayout(ADAPTED, first.labels, settings).write(directory)


def build_model(base: Base, columns: dict[str, int], fresh: bool = False, spread: bool = False) -> AdaptedModel:
    """The base as one network predicting ``columns`` (label -> output column); ``fresh``: the same
    architecture with random weights; ``spread``: with a new spread network beside each head network
    (seed torch first for either)."""
    modality = get_modality(base.inputs.modality)
    encoder = projection = None
    embedder = base.embedder
    if isinstance(embedder, ModalityEncoder):
        encoder = embedder
    elif embedder is not None:
        aligned = getattr(embedder, "model", None)
        if aligned is None or not hasattr(aligned, "projections"):
            raise SpecCLIPError(
                f"base {base.heads_stage!r}: its embedder ({type(embedder).__name__}) is neither an encoder nor an aligned projection"
            )
        encoder, projection = aligned.encoders[modality.name], aligned.projections[modality.name]
    head = base.head
    if head.config.members > 1:
        raise SpecCLIPError(f"base {base.heads_stage!r}: an ensemble of {head.config.members} networks per label group; finetune adapts a head of one (members: 1)")
    n_in = int(head.input_mean.size)
    if fresh:
        if projection is not None:
            projection = create_component("projection", aligned.projection_specs[modality.name], in_dim=encoder.embed_dim)
        if encoder is not None:
            encoder = ModalityEncoder(encoder.modality, encoder.tokenizer_spec, encoder.encoder_spec)
        networks = [mlp(n_in, head.config.hidden, len(group), head.config.dropout) for group in head.groups]
    else:
        networks = list(head.networks)
    outputs = base.outputs
    label_mean = {label: head.label_mean[outputs[c]] for label, c in columns.items()}
    label_std = {label: head.label_std[outputs[c]] for label, c in columns.items()}
    spreads = [mlp(network[-1].in_features, SPREAD_HIDDEN, network[-1].out_features, 0.0) for network in networks] if spread else None
    model = AdaptedModel(
        len(modality.stats_names), encoder, projection, networks, head.input_mean, head.input_std, columns, label_mean, label_std, spreads
    )
    return model.requires_grad_(True).train()
