"""The neural posterior estimation head (paper sections 3.1.2 and 5.4, appendix C), on the ``sbi``
package: a conditional normalising flow (MAF or NSF; 2 transforms of 60 hidden units by default)
learns p(labels | inputs), jointly over the labels or one flow per label. Inputs and labels are
standardised; rows missing a label of a flow are dropped from its training and counted.

An optional embedding network (``embedding``: the widths of an MLP, the last one the summary the flow
is conditioned on) is trained with the flow; it also makes sampling cheaper, since the flow's
networks then read the short summary instead of every input value once per sample.

The value is the posterior median; ``<label>_lo``/``<label>_hi`` are the 16th/84th percentiles and
``<label>_err`` half their distance. With ``recalibrate`` (the default) the chosen posterior's
marginals are recalibrated on validation stars, and with ``recalibration_holdout`` on training stars
held out of the flows' training too (:class:`specclip_core.heads.calibration.Recalibration`); ``sample(..., recalibrated=False)`` gives
the flow's own samples. With ``seeds`` > 1 a flow is trained per seed and the one kept
is, as in the paper, the lowest validation robust sigma among those whose SBC on ``sbc_stars``
validation stars passes (K-S p >= ``sbc_threshold`` for every label), or the highest p if none does.
With ``seed_choice: recalibrated`` that SBC and robust sigma are of each flow's recalibrated
posterior, the recalibration fitted on other validation stars than the SBC's: the posterior the head
gives is the one judged, and a sharp flow whose own posterior is too narrow is not discarded for what
the recalibration repairs.

The flows are sbi's zuko MAF and NSF (see :data:`ESTIMATORS`). Saved as one safetensors state dict per flow plus settings in head.json; ``load`` rebuilds each flow
with ``sbi.neural_nets.posterior_nn`` from those settings.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from specclip_core.data.splits import hold_out
from specclip_core.errors import SpecCLIPError
from specclip_core.heads.calibration import Recalibration, calibration, pit, summarise
from specclip_core.heads.inputs import standardiser
from specclip_core.heads.mlp import mlp
from specclip_core.heads.metrics import robust_sigma
from specclip_core.interfaces import Head, HeadLayout, LabelledInputs
from specclip_core.spec import TrainSpec
from specclip_core.train.checkpoint import load_weights, save_weights

SAMPLING_VALUES = 1 << 24
"""A flow embeds each star's inputs once and holds, for every sample it draws, one value per hidden
unit of a transform's network: stars are sampled in batches whose samples times ``hidden`` are at
most this many values (64 MB of float32 per layer; 279 stars of 1,000 samples through 60 hidden
units). Batches sized by the inputs instead (11 stars of a 1,464-pixel spectrum) took twice the
time: 3.2 s against 1.6 s, 5.4 against 2.3 CPU s, for 2,000 stars and 3 labels on 2 cores."""

PILOT_SAMPLES = 200
INSIDE_FRACTION = 0.01
"""Before its samples are drawn inside the prior box (rejection sampling, sbi's), each star's flow
draws :data:`PILOT_SAMPLES` samples unrestricted, with a seed of their own; a star whose flow puts
fewer than this fraction of them inside the box (a spectrum unlike any the head was trained on) is
drawn unrestricted, since rejection sampling would take ~1 / fraction proposals a sample (forever at
0) and hang the prediction. Its samples may lie outside the box: its range flags say so."""

ESTIMATORS = {"maf": "zuko_maf", "nsf": "zuko_nsf"}
"""sbi's zuko flows: nflows' MAF (sbi's "maf") gives the first variable of each transform's
autoregressive order no dependence on the inputs, so a 2-transform MAF can miss a label entirely."""


class NPEHeadConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    estimator: Literal["maf", "nsf"] = Field("maf", description="the flow: masked autoregressive (maf) or neural spline (nsf)")
    hidden: int = Field(60, ge=1, description="hidden units of each transform's network")
    transforms: int = Field(2, ge=1, description="number of flow transforms")
    bins: int = Field(10, ge=2, description="spline bins (nsf only)")
    embedding: list[int] = Field(default_factory=list, description="widths of an MLP embedding network trained with the flow, the last the summary it is conditioned on; empty: the inputs as they are")
    joint: bool = Field(True, description="one joint posterior over all labels; false: one flow per label")
    samples: int = Field(1000, ge=10, description="posterior samples per star for the median and percentiles")
    seeds: int = Field(1, ge=1, description="flows trained per posterior (paper: 5); the best passing SBC is kept")
    sbc_stars: int = Field(200, ge=10, description="held-out stars for SBC: validation ones to choose a seed, test ones in the stage")
    sbc_threshold: float = Field(0.05, gt=0, lt=1, description="K-S p-value an SBC must reach for every label to pass")
    seed_choice: Literal["raw", "recalibrated"] = Field("raw", description="the posterior whose validation SBC and robust sigma choose among seeds: the flow's own (raw), or recalibrated on other validation stars (at most recalibration_stars; the SBC stars at most half of them)")
    prior_margin: float = Field(1.0, ge=0, description="the prior box: the training labels' range widened by this many standard deviations")
    sample_seed: int = Field(0, description="seed of posterior sampling, so predictions repeat")
    recalibrate: bool = Field(True, description="recalibrate the chosen posterior's marginals on validation stars (quantile recalibration)")
    recalibration_stars: int = Field(2000, ge=10, description="validation stars the recalibration is fitted on, at most")
    recalibration_holdout: float = Field(
        0.0, ge=0, lt=1, description="hold this fraction of the training stars out of the flows' training and recalibrate on them beside the validation stars (0: the validation stars alone)"
    )


def _sbi():
    try:
        from sbi.inference import NPE
        from sbi.inference.posteriors import DirectPosterior
        from sbi.neural_nets import posterior_nn
        from sbi.utils import BoxUniform
    except ImportError:
        raise SpecCLIPError("the npe head needs the sbi package: pip install 'specclip[sbi]'") from None
    return NPE, DirectPosterior, posterior_nn, BoxUniform


def _tracker(directory: Path):
    """sbi's TensorBoard log of one training, under the head's work directory (not the cwd)."""
    from sbi.utils.tracking import TensorBoardTracker
    from torch.utils.tensorboard import SummaryWriter

    return TensorBoardTracker(SummaryWriter(str(directory)))


class NPEHead(Head):
    gives_samples = True

    def __init__(self, config: NPEHeadConfig | None = None):
        self.config = config or NPEHeadConfig()
        self.labels: list[str] = []
        self.groups: list[list[str]] = []
        self.posteriors: list[Any] = []
        self.bounds: list[tuple[list[float], list[float]]] = []
        self.input_mean = self.input_std = None
        self.label_mean: dict[str, float] = {}
        self.label_std: dict[str, float] = {}
        self.recalibration: Recalibration | None = None

    def _builder(self, n_inputs: int):
        _, _, posterior_nn, _ = _sbi()
        c = self.config
        embedding = mlp(n_inputs, c.embedding[:-1], c.embedding[-1], 0.0) if c.embedding else torch.nn.Identity()
        return posterior_nn(ESTIMATORS[c.estimator], z_score_theta="none", z_score_x="none", hidden_features=c.hidden, num_transforms=c.transforms, num_bins=c.bins, embedding_net=embedding)

    def _posterior(self, estimator: torch.nn.Module, low: list[float], high: list[float]):
        _, DirectPosterior, _, BoxUniform = _sbi()
        return DirectPosterior(estimator.eval(), BoxUniform(torch.tensor(low), torch.tensor(high)))

    def _x(self, inputs: np.ndarray) -> torch.Tensor:
        return torch.as_tensor((np.asarray(inputs, dtype=np.float32) - self.input_mean) / self.input_std)

    def _theta(self, data: LabelledInputs, group: list[str]) -> np.ndarray:
        return np.stack([(data.labels[k] - self.label_mean[k]) / self.label_std[k] for k in group], axis=1).astype(np.float32)

    def fit(self, train: LabelledInputs, validation: LabelledInputs, run_dir: Path, train_spec: TrainSpec | None = None, seed: int = 0, progress: bool = True, **_: Any) -> dict[str, Any]:
        """Train each flow (``seeds`` times) with sbi's NPE on the training rows that have all its labels."""
        NPE = _sbi()[0]
        spec = train_spec or TrainSpec(epochs=200, batch_size=256, lr=5e-4, weight_decay=0.0, patience=20)
        kept, held = hold_out(np.arange(len(train)), self.config.recalibration_holdout, seed)
        train, recalibrating = train.take(kept), LabelledInputs.joined([validation, train.take(held)])
        self.labels = list(train.labels)
        self.groups = [self.labels] if self.config.joint else [[label] for label in self.labels]
        self.input_mean, self.input_std = standardiser(train.inputs)
        for label in self.labels:
            mean, std = standardiser(train.labels[label][:, None])
            self.label_mean[label], self.label_std[label] = float(mean[0]), float(std[0])
        x_train, x_val = self._x(train.inputs), self._x(validation.inputs)
        summary: dict[str, Any] = {}
        self.posteriors, self.bounds = [], []
        for group in self.groups:
            name = "+".join(group)
            theta, theta_val = self._theta(train, group), self._theta(validation, group)
            keep, keep_val = np.isfinite(theta).all(1), np.isfinite(theta_val).all(1)
            if keep.sum() < 2:
                raise SpecCLIPError(f"npe head {name}: {int(keep.sum())} training rows have every label of {group}; a posterior needs at least 2")
            margin = self.config.prior_margin
            low, high = (theta[keep].min(0) - margin).tolist(), (theta[keep].max(0) + margin).tolist()
            outside = self._dropped_outside(name, group, theta[~keep], low, high)
            tries = []
            for k in range(self.config.seeds):
                torch.manual_seed(seed + k)
                inference = NPE(prior=None, density_estimator=self._builder(x_train.shape[1]), show_progress_bars=False, tracker=_tracker(Path(run_dir) / "sbi-logs" / f"{name}-seed{seed + k}"))
                inference.append_simulations(torch.as_tensor(theta[keep]), x_train[torch.as_tensor(keep)])
                estimator = inference.train(training_batch_size=spec.batch_size, learning_rate=spec.lr, stop_after_epochs=spec.patience, max_num_epochs=spec.epochs)
                posterior = self._posterior(estimator, low, high)
                tries.append((posterior, self._validate(posterior, theta_val[keep_val], x_val[torch.as_tensor(keep_val)], group, seed + k), int(inference.summary["epochs_trained"][-1])))
            chosen = self._choose([t[1] for t in tries])
            posterior, check, epochs = tries[chosen]
            self.posteriors.append(posterior)
            self.bounds.append((low, high))
            summary[name] = {
                "n_train": int(keep.sum()),
                "n_dropped_missing": int((~keep).sum()),
                "n_dropped_outside_prior": outside,
                "n_val": int(keep_val.sum()),
                "seed": seed + chosen,
                "epochs": epochs,
                "passed_sbc": check["passed"],
                "seeds": [t[1] for t in tries],
            }
        if self.config.recalibrate:
            self.recalibration = self._recalibration(recalibrating, seed)
            for entry in summary.values():
                entry["recalibration_stars"] = int(min(len(recalibrating), self.config.recalibration_stars))
                entry["n_held_out"] = len(held)
        return summary

    def _dropped_outside(self, name: str, group: list[str], dropped: np.ndarray, low: list[float], high: list[float]) -> dict[str, int]:
        """Label -> training stars dropped for a missing label whose value of this one lies outside
        the flow's prior box; warns, because the flow cannot predict stars like them (a joint flow over
        labels that a kind of star lacks, such as abundances of hot stars, never sees one)."""
        counts = {}
        for i, label in enumerate(group):
            values = dropped[:, i][np.isfinite(dropped[:, i])]
            beyond = values[(values < low[i]) | (values > high[i])]
            if len(beyond):
                counts[label] = int(len(beyond))
                scale = lambda v: v * self.label_std[label] + self.label_mean[label]  # noqa: E731
                warnings.warn(
                    f"npe head {name}: {len(beyond)} training stars dropped for a missing label have {label} outside the flow's "
                    f"prior box [{scale(low[i]):.4g}, {scale(high[i]):.4g}] (from {scale(beyond.min()):.4g} to {scale(beyond.max()):.4g}); "
                    "the flow cannot predict stars like them: give them every label, or train one flow per label (joint: false)",
                    stacklevel=3,
                )
        return counts

    def _recalibration(self, stars: LabelledInputs, seed: int) -> Recalibration:
        """The quantile recalibration of every label, from the flows' samples for at most
        ``recalibration_stars`` of ``stars`` (validation ones, then any held out) drawn at random."""
        rows = np.sort(np.random.default_rng(seed).permutation(len(stars))[: self.config.recalibration_stars])
        drawn = self.sample(stars.inputs[rows], recalibrated=False)
        truth = {label: stars.labels[label][rows] for label in self.labels}
        return Recalibration.fit(truth, {label: pit(truth[label], drawn[label]) for label in self.labels})

    def _validate(self, posterior: Any, theta: np.ndarray, x: torch.Tensor, group: list[str], seed: int) -> dict[str, Any]:
        """SBC p-values and robust sigma (standardised units) of one trained flow on validation rows;
        with ``seed_choice: recalibrated``, of its posterior recalibrated on other validation rows."""
        order = np.random.default_rng(seed).permutation(len(theta))
        recalibrated = self.config.seed_choice == "recalibrated"
        n_sbc = min(self.config.sbc_stars, len(theta) // 2) if recalibrated else self.config.sbc_stars
        rows = np.sort(order[:n_sbc])
        fitting = np.sort(order[n_sbc : n_sbc + self.config.recalibration_stars]) if recalibrated else np.zeros(0, np.int64)
        drawn = self._draw(posterior, x[torch.as_tensor(np.concatenate([rows, fitting]), dtype=torch.long)])
        samples = drawn[: len(rows)]
        if recalibrated:
            truth = {label: theta[fitting, i] for i, label in enumerate(group)}
            mapped = Recalibration.fit(truth, {label: pit(truth[label], drawn[len(rows) :, :, i]) for i, label in enumerate(group)}).apply({label: samples[:, :, i] for i, label in enumerate(group)})
            samples = np.stack([mapped[label] for label in group], axis=2)
        pvalues = {label: calibration(theta[rows, i], samples[:, :, i], len(rows), seed)[0]["sbc_ks_p"] for i, label in enumerate(group)}
        median = np.median(samples, axis=1)
        sigma = float(np.mean([robust_sigma(median[:, i] - theta[rows, i]) for i in range(len(group))])) if len(rows) else float("nan")
        return {"seed": seed, "recalibrated": recalibrated, "sbc_ks_p": pvalues, "val_robust_sigma": sigma, "passed": bool(len(rows)) and min(pvalues.values()) >= self.config.sbc_threshold}

    @staticmethod
    def _choose(checks: list[dict[str, Any]]) -> int:
        passing = [i for i, c in enumerate(checks) if c["passed"]]
        if passing:
            return min(passing, key=lambda i: checks[i]["val_robust_sigma"])
        return max(range(len(checks)), key=lambda i: min(checks[i]["sbc_ks_p"].values()))

    @torch.no_grad()
    def _draw(self, posterior: Any, x: torch.Tensor) -> np.ndarray:
        """Posterior samples ``[N, samples, labels]`` (standardised units), seeded by ``sample_seed``;
        :data:`SAMPLING_VALUES` bounds the values the flow holds at once."""
        n = self.config.samples
        if not len(x):
            return np.zeros((0, n, posterior.prior.event_shape[0]), dtype=np.float32)
        batch = max(1, min(1024, SAMPLING_VALUES // (n * self.config.hidden)))
        parts, outside = [], 0
        with torch.random.fork_rng(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Capping max_sampling_batch_size")
            warnings.filterwarnings("ignore", message=".*lie outside the prior support")
            torch.manual_seed(self.config.sample_seed)
            for i in range(0, len(x), batch):
                rows = x[i : i + batch]
                kept = self._mostly_inside(posterior, rows)
                outside += int((~kept).sum())
                part = torch.empty((n, len(rows), posterior.prior.event_shape[0]))
                if kept.any():
                    part[:, kept] = posterior.sample_batched((n,), x=rows[kept], show_progress_bars=False)
                if not kept.all():
                    part[:, ~kept] = posterior.sample_batched((n,), x=rows[~kept], show_progress_bars=False, reject_outside_prior=False)
                parts.append(part.permute(1, 0, 2))
        if outside:
            warnings.warn(
                f"npe head: for {outside} of {len(x)} stars the flow puts under {INSIDE_FRACTION:.0%} of its posterior inside the prior box "
                "(the training labels' range widened by prior_margin standard deviations): their samples are the flow's own, unrestricted (see the range flags)",
                stacklevel=3,
            )
        return torch.cat(parts).numpy()

    def _mostly_inside(self, posterior: Any, x: torch.Tensor) -> torch.Tensor:
        """Per star, whether at least :data:`INSIDE_FRACTION` of :data:`PILOT_SAMPLES` unrestricted
        samples of its flow lie inside the prior box (drawn with a seed of their own, so that the
        samples that follow are those a draw without this check gives)."""
        with torch.random.fork_rng():
            torch.manual_seed(self.config.sample_seed + 1)
            pilot = posterior.posterior_estimator.sample(torch.Size([PILOT_SAMPLES]), condition=x)
        return posterior.prior.support.check(pilot).float().mean(0) >= INSIDE_FRACTION

    def sample(self, inputs: np.ndarray, n_samples: int | None = None, recalibrated: bool = True) -> dict[str, np.ndarray]:
        """Label -> posterior samples ``[N, n_samples]`` in the label's units (``samples`` by default),
        recalibrated unless ``recalibrated`` is false or the head has no recalibration."""
        x = self._x(inputs)
        out: dict[str, np.ndarray] = {}
        for group, posterior in zip(self.groups, self.posteriors):
            drawn = self._draw(posterior, x)
            if n_samples is not None:
                drawn = drawn[:, :n_samples]
            for i, label in enumerate(group):
                out[label] = drawn[:, :, i].astype(np.float64) * self.label_std[label] + self.label_mean[label]
        return self.recalibration.apply(out) if recalibrated and self.recalibration else out

    def predict(self, inputs: np.ndarray) -> dict[str, np.ndarray]:
        """Posterior median per label, with ``_lo``/``_hi`` (16th/84th percentiles) and ``_err`` (half of hi - lo)."""
        return summarise(self.sample(inputs))

    def predict_samples(self, inputs: np.ndarray, n_samples: int | None = None, recalibrated: bool = False) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """``predict`` and the first ``n_samples`` samples (the flow's own, or recalibrated), from one draw."""
        drawn = self.sample(inputs, recalibrated=False)
        calibrated = self.recalibration.apply(drawn) if self.recalibration else drawn
        kept = calibrated if recalibrated else drawn
        return summarise(calibrated), {label: values[:, :n_samples] for label, values in kept.items()}

    def n_parameters(self) -> int:
        return sum(p.numel() for posterior in self.posteriors for p in posterior.posterior_estimator.parameters())

    def save(self, directory: Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        settings = {
            "config": self.config.model_dump(),
            "groups": self.groups,
            "bounds": self.bounds,
            "n_inputs": int(self.input_mean.size),
            "input_mean": self.input_mean.tolist(),
            "input_std": self.input_std.tolist(),
            "label_mean": self.label_mean,
            "label_std": self.label_std,
            "recalibration": self.recalibration.levels if self.recalibration else None,
        }
        for group, posterior in zip(self.groups, self.posteriors):
            save_weights(posterior.posterior_estimator, directory / f"{'+'.join(group)}.safetensors")
        HeadLayout("npe", self.labels, settings).write(directory)

    @classmethod
    def load(cls, directory: Path) -> NPEHead:
        directory = Path(directory)
        layout = HeadLayout.read(directory)
        described = layout.settings
        head = cls(NPEHeadConfig(**described["config"]))
        head.labels, head.groups, head.bounds = layout.labels, described["groups"], [tuple(b) for b in described["bounds"]]
        head.input_mean = np.asarray(described["input_mean"], dtype=np.float32)
        head.input_std = np.asarray(described["input_std"], dtype=np.float32)
        head.label_mean, head.label_std = described["label_mean"], described["label_std"]
        head.recalibration = Recalibration(described["recalibration"]) if described.get("recalibration") else None
        for group, (low, high) in zip(head.groups, head.bounds):
            estimator = head._builder(described["n_inputs"])(torch.zeros(2, len(group)), torch.zeros(2, described["n_inputs"]))
            load_weights(estimator, directory / f"{'+'.join(group)}.safetensors")
            head.posteriors.append(head._posterior(estimator, low, high))
        return head
