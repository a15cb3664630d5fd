"""The ``finetune`` stage: adapt a finished heads stage's model (encoder + head) to new labelled spectra.

The base is a heads stage with an MLP head and the encoder stage it read (:mod:`specclip_core.heads.adapted`).
``n_labelled`` stars are drawn from the train split of the stage's data (a permutation fixed by the
stage's ``seed``, the run's by default, so a smaller draw is the start of a larger one), ``n_validation`` from its validation split
for early stopping, and every labelled star of the test split scores the result, beside the base
model as it was (zero-shot). Only the trained tensors are kept (for LoRA, the adapter matrices).

``uncertainty: gaussian`` adds a spread network beside each head network, trained from scratch by the
Gaussian likelihood of the labels around the value (whose own ``loss`` trains it, the likelihood's
gradient stopped there: :class:`~specclip_core.heads.mlp.ValueAndSpread`), so every star gets a sigma;
the members' mixture is recalibrated on the validation stars (with ``recalibration_holdout``, also on
training stars held out of the adaptation; with ``recalibration_folds``, also on every training star
out of fold) and checked on the test split as a heads stage checks a head that gives posteriors (SBC
on ``sbc_stars``, coverage of the 68% and 95% intervals).
The stage also saves an out-of-distribution reference of its training spectra (``ood``), so ``predict``
writes the flag columns.
"""

from __future__ import annotations

import copy
import json
import math
import time
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field, field_validator, model_validator

from specclip_core.components import create_component, get_modality
from specclip_core.data.dataset import ArrayDataset, StoreDataset
from specclip_core.data.splits import hold_out, split_labels
from specclip_core.errors import SpecCLIPError
from specclip_core.heads.adapted import ADAPTED, AdaptedEnsemble, AdaptedModel, Base, build_model, load_base, save_adapted
from specclip_core.heads.calibration import Recalibration
from specclip_core.heads.inputs import spectra_input_errors, spectra_inputs, standardiser
from specclip_core.heads.metrics import regression_metrics
from specclip_core.heads.mlp import MEMBER_SEED_STEP, TargetRegression, ValueAndSpread
from specclip_core.heads.ood import OODReference, OODSettings, point_sigma, reference_rows
from specclip_core.interfaces import Stage
from specclip_core.nn.adapters import ADAPTERS, adapter_targets, add_lora
from specclip_core.report.plots import plot_one_to_one
from specclip_core.report.tables import metrics_table
from specclip_core.rundir import HEAD, PREDICTIONS, HeadInputs, write_predictions
from specclip_core.runner import StageContext
from specclip_core.spec import ModalityName, SpecModel, TrainSpec
from specclip_core.stages.heads import calibrate, selected_rows
from specclip_core.stages.pretrain import default_objectives
from specclip_core.train.loop import Trainer, fit_summary
from specclip_core.util import atomic_write_text

ENCODER_ADAPTERS = ("lora1", "lora_ae")
FOLD_SEED_STEP = 100
"""The models of fold f of the out-of-fold recalibration train from the stage's member seeds + FOLD_SEED_STEP * (f + 1)."""
WHOLE = {
    "head": "train the base head's networks alone (from their trained weights), encoder and projection frozen",
    "full": "train every weight of the base (encoder, projection, head)",
    "scratch": "the base's architecture from random weights, every weight trained (labels standardised on the draw)",
}


def _unlabelled_train_spec() -> TrainSpec:
    return TrainSpec(epochs=20, batch_size=64, lr=1e-3, weight_decay=0.0, patience=5)


def _finetune_train_spec() -> TrainSpec:
    return TrainSpec(epochs=300, batch_size=32, lr=1e-3, weight_decay=0.0, patience=30, warmup_fraction=0.02)


class FinetuneConfig(SpecModel):
    """Adapt a heads stage's encoder and MLP head with LoRA adapters (or train its head, all of it, or it from scratch)."""

    base: str = Field(description="the heads stage (MLP head) whose model is adapted; its encoder stage comes with it")
    adapters: list[str] = Field(
        min_length=1,
        description="LoRA adapters to add (lora1, lora_ae, lora2, lora3, lora4; see specclip_core.nn.adapters), or one of head, full, scratch",
    )
    labels: list[str] = Field(min_length=1, description="label columns of the stage's data to train on and predict")
    modality: ModalityName | None = Field(
        None, description="the data's modality the base reads, where it is not the base's own (another survey on the same model grid)"
    )
    from_base: dict[str, str] = Field(
        default_factory=dict, description="label -> the base head's output it adapts, where the names differ (e.g. feh: fe_h)"
    )
    n_labelled: int | None = Field(
        None, ge=1, description="labelled training stars drawn from the train split by `seed` (default: all)"
    )
    n_validation: int | None = Field(
        None,
        ge=1,
        description="validation stars for early stopping, drawn from the val split (default: n_labelled / 10, at least 5; all without n_labelled)",
    )
    seed: int | None = Field(
        None, description="the seed of the labelled and validation draws and of the training (default: the run's seed); repeats an experiment on other draws without retraining the base"
    )
    loss: Literal["mse", "huber", "l1"] = Field(
        "mse", description="the loss on the standardised labels; l1 lets a few stars with wrong labels or odd spectra pull less"
    )
    noise_augment: float = Field(
        0.0,
        ge=0,
        description="train on copies of the labelled spectra with extra noise of their own flux errors times a factor drawn uniformly from [0, noise_augment] per star and batch",
    )
    members: int = Field(
        1, ge=1, description="adapt this many models, member i with its new weights and training from seed + 1000 i (the same stars); the value is their mean"
    )
    uncertainty: Literal["none", "gaussian"] = Field(
        "none",
        description="gaussian: a sigma per star and label from a spread network trained by the Gaussian likelihood around the value, the members' mixture recalibrated on validation",
    )
    recalibration_folds: int = Field(
        0,
        ge=0,
        description="uncertainty: gaussian: also recalibrate on every labelled training star, each scored by the same recipe trained without its fold of this many (0: the validation stars alone)",
    )
    recalibration_holdout: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="uncertainty: gaussian: hold this fraction of the drawn training stars out of the adaptation (not trained on, not used to stop) and recalibrate on them beside the validation stars (0: the validation stars alone)",
    )
    sbc_stars: int = Field(200, ge=10, description="test stars for simulation-based calibration (uncertainty: gaussian)")
    ood: OODSettings = Field(default_factory=OODSettings, description="out-of-distribution thresholds from the training spectra (predict's flag columns)")
    train: TrainSpec = Field(default_factory=_finetune_train_spec)
    unlabelled: int | None = Field(
        None,
        ge=1,
        description="first adapt the encoder adapters (lora1, lora_ae) on this many spectra of the train split, labels unused, with the base encoder's pretraining objectives",
    )
    unlabelled_train: TrainSpec = Field(default_factory=_unlabelled_train_spec, description="the training loop of the unlabelled step")

    @field_validator("adapters")
    @classmethod
    def _known_adapters(cls, adapters: list[str]) -> list[str]:
        unknown = [a for a in adapters if a not in ADAPTERS and a not in WHOLE]
        if unknown:
            raise ValueError(f"unknown adapters {unknown}; known: {sorted(ADAPTERS)} or one of {sorted(WHOLE)}")
        if len(set(adapters)) != len(adapters):
            raise ValueError(f"adapters {adapters} lists one twice")
        if any(a in WHOLE for a in adapters) and len(adapters) > 1:
            raise ValueError(f"{sorted(WHOLE)} stand alone, not with other adapters; got {adapters}")
        return adapters

    @model_validator(mode="after")
    def _mapped_labels_exist(self) -> FinetuneConfig:
        unknown = sorted(set(self.from_base) - set(self.labels))
        if unknown:
            raise ValueError(f"from_base names {unknown}, which are not in labels {self.labels}")
        if self.recalibration_folds and (self.uncertainty != "gaussian" or self.recalibration_folds < 2):
            raise ValueError(f"recalibration_folds is {self.recalibration_folds}: it needs uncertainty: gaussian and at least 2 folds (0: off)")
        if self.recalibration_holdout and (self.uncertainty != "gaussian" or self.recalibration_folds):
            raise ValueError(f"recalibration_holdout is {self.recalibration_holdout}: it needs uncertainty: gaussian, and recalibration_folds 0")
        if self.unlabelled is not None and not set(self.adapters) & set(ENCODER_ADAPTERS):
            raise ValueError(
                f"unlabelled spectra adapt an encoder adapter ({', '.join(ENCODER_ADAPTERS)}); adapters {self.adapters} has none"
            )
        return self

    @property
    def lora(self) -> list[str]:
        return [a for a in self.adapters if a in ADAPTERS]

    @property
    def fresh(self) -> bool:
        """The base's architecture from random weights (``scratch``)."""
        return self.adapters == ["scratch"]


def _rows(value: Any, keep: np.ndarray) -> Any:
    """The rows ``keep`` of an array, or of every array of a dict."""
    return {k: v[keep] for k, v in value.items()} if isinstance(value, dict) else value[keep]


def draw(rows: np.ndarray, n: int | None, seed: int, what: str) -> np.ndarray:
    """The first ``n`` of ``rows`` in an order fixed by ``seed`` (all of them, in order, for None)."""
    if n is None:
        return rows
    if n > len(rows):
        raise SpecCLIPError(f"finetune: {what} is {n}, but the data has only {len(rows)} labelled stars there")
    return np.sort(rows[np.random.default_rng(seed).permutation(len(rows))[:n]])


class FinetuneStage(Stage):
    """Adapt a base model; writes head/ (adapter tensors + reference to the base), test_predictions.csv,
    metrics.json (test and zero-shot metrics, trainable parameters, wall time), table.md, plots."""

    requires_data = True

    def needs(self) -> list[str]:
        return [self.config.base]

    def labels_read(self) -> dict[str, list[str]]:
        return {"labels": list(self.config.labels)}

    def _modality(self, base: Base) -> str:
        """The modality whose spectra are read: ``modality``, which must share the base's model grid, or the base's."""
        own = get_modality(base.inputs.modality)
        if self.config.modality is None:
            return own.name
        other = get_modality(self.config.modality)
        if other.n_pixels != own.n_pixels or tuple(other.stats_names) != tuple(own.stats_names):
            raise SpecCLIPError(
                f"finetune: modality {other.name!r} ({other.n_pixels} pixels, stats {list(other.stats_names)}) is not on the model grid of "
                f"{own.name!r} ({own.n_pixels} pixels, stats {list(own.stats_names)}), which base {base.heads_stage!r} reads"
            )
        return other.name

    def _columns(self, base: Base) -> dict[str, int]:
        outputs = base.outputs
        columns = {}
        for label in self.config.labels:
            source = self.config.from_base.get(label, label)
            if source not in outputs:
                raise SpecCLIPError(
                    f"finetune: label {label!r} adapts base output {source!r}, but heads stage {base.heads_stage!r} predicts {outputs}; set from_base"
                )
            columns[label] = outputs.index(source)
        return columns

    def run(self, context: StageContext) -> dict[str, Any]:
        started = time.perf_counter()
        config: FinetuneConfig = context.config
        context.upstream(config.base)
        base = load_base(context.run, config.base)
        modality = self._modality(base)
        store = context.store()
        seed = context.seed if config.seed is None else config.seed
        rows = selected_rows(store, config.labels, {})
        split = split_labels(store.ids[rows])
        train_rows = draw(rows[split == "train"], config.n_labelled, seed, "n_labelled")
        train_rows, held_rows = hold_out(train_rows, config.recalibration_holdout, seed)
        n_validation = config.n_validation or (max(5, math.ceil(config.n_labelled / 10)) if config.n_labelled else None)
        val_rows = draw(rows[split == "val"], n_validation, seed, "n_validation")
        test_rows = rows[split == "test"]
        columns = self._columns(base)
        zero_shot_model = build_model(base, columns)
        parts = {"train": train_rows, "val": val_rows, "test": test_rows} | ({"held": held_rows} if len(held_rows) else {})
        arrays = {part: store.read(modality, r) for part, r in parts.items()}
        inputs = {part: spectra_inputs(a) for part, a in arrays.items()}
        truth = {part: store.labels(config.labels, r) for part, r in parts.items()}
        zero_shot = zero_shot_model.predict(inputs["test"])

        data = {"inputs": inputs, "truth": truth, "arrays": arrays, "ids": {"train": store.ids[train_rows], "val": store.ids[val_rows]}}
        store_split = split_labels(store.ids)
        members = [
            # each member adapts its own copy of the base's networks
            self._train_member(context, copy.deepcopy(base), columns, data, modality, seed + MEMBER_SEED_STEP * member, f".{member}" if config.members > 1 else "", store_split)
            for member in range(config.members)
        ]
        models = [model for model, _, _, _ in members]
        model, lora, result, unlabelled = members[0]
        reference = {
            "base": config.base,
            "encoder_stage": base.inputs.encoder_stage,
            "base_keys": {stage: context.run.manifest(stage)["key"] for stage in filter(None, (config.base, base.inputs.encoder_stage))},
            "adapters": config.adapters,
            "lora": lora,
            "fresh": config.fresh,
        }
        head_dir = context.out_dir / HEAD
        predictor = AdaptedEnsemble(models) if len(models) > 1 or model.gaussian else model
        recalibration_stars = None
        if model.gaussian:
            pits, known = predictor.pits(inputs["val"], truth["val"]), truth["val"]
            more = None  # (PITs, truth) of the training stars recalibrated on too
            if len(held_rows):
                more = predictor.pits(inputs["held"], truth["held"]), truth["held"]
            elif config.recalibration_folds:
                more = self._out_of_fold_pits(context, base, columns, data, modality, seed, store_split)
            if more is not None:
                pits = {label: np.concatenate([pits[label], more[0][label]]) for label in pits}
                known = {label: np.concatenate([known[label], more[1][label]]) for label in known}
            predictor.recalibration = Recalibration.fit(known, pits)
            recalibration_stars = {label: int(np.isfinite(values).sum()) for label, values in known.items()}
        save_adapted(head_dir, models, reference, getattr(predictor, "recalibration", None))
        ood = self._save_ood(predictor, inputs, truth, seed, head_dir)
        predicted, raw = predictor.predict_samples(inputs["test"]) if model.gaussian else (predictor.predict(inputs["test"]), None)
        write_predictions(context.out_dir / PREDICTIONS, store.ids[test_rows], truth["test"], predicted)
        simulated = modality in store.simulated_modalities
        title = f"{context.name} ({'+'.join(config.adapters)} on {config.base}, {len(train_rows)} labelled{', SIMULATED ' + modality if simulated else ''})"
        units = {label: base.inputs.units.get(config.from_base.get(label, label), "") for label in config.labels}
        names = {label: base.inputs.names.get(config.from_base.get(label, label), label) for label in config.labels}
        calibrated = calibrate(predictor, raw, truth["test"], config.sbc_stars, names, context.out_dir, seed, title)
        metrics = {label: {**regression_metrics(truth["test"][label], predicted[label]), **calibrated.get(label, {})} for label in config.labels}
        zero_metrics = {label: regression_metrics(truth["test"][label], zero_shot[label]) for label in config.labels}
        sigmas = {label: m["robust_sigma"] for label, m in metrics.items() if m["robust_sigma"] == m["robust_sigma"]}
        HeadInputs(modality, "spectra", None, ADAPTED, simulated or base.inputs.simulated, units, names, sigmas).write(head_dir)
        for label in config.labels:
            plot_one_to_one(
                truth["test"][label],
                predicted[label],
                context.out_dir / f"one_to_one_{label}.png",
                label,
                units[label],
                title,
                names[label],
            )
        note = f"{modality} spectra are SIMULATED." if simulated else f"{modality} spectra are real."
        atomic_write_text(
            context.out_dir / "table.md",
            metrics_table({context.name: metrics, f"{config.base} (zero-shot)": zero_metrics}, config.labels, note),
        )
        summary = {
            "base": config.base,
            "adapters": config.adapters,
            "simulated": simulated,
            "n_rows": {"train": len(train_rows), "val": len(val_rows), "test": len(test_rows)} | ({"held_out": len(held_rows)} if len(held_rows) else {}),
            "members": config.members,
            "trainable_parameters": sum(m.n_trainable() for m in models),
            "total_parameters": model.n_parameters() + sum(m.n_trainable() for m in models[1:]),
            "fit_seconds": round(sum(r.seconds for _, _, r, _ in members), 2),
            "unlabelled": unlabelled,
            "ood_reference": ood,
            "recalibration_stars": recalibration_stars,
            "wall_seconds": round(time.perf_counter() - started, 2),
            "test": metrics,
            "zero_shot": zero_metrics,
            "fit": fit_summary(result) if len(members) == 1 else [fit_summary(r) for _, _, r, _ in members],
        }
        atomic_write_text(context.out_dir / "metrics.json", json.dumps(summary, indent=2))
        return {k: v for k, v in summary.items() if k != "fit"}

    def _train_member(
        self,
        context: StageContext,
        base: Base,
        columns: dict[str, int],
        data: dict[str, Any],
        modality: str,
        seed: int,
        tag: str,
        store_split: np.ndarray,
    ) -> tuple[AdaptedModel, dict[str, Any] | None, Any, dict[str, Any] | None]:
        """One model adapted from ``base`` on the drawn stars, its new weights and training from ``seed``,
        its training logs in ``training<tag>``; returns it, where its adapters went (None without
        LoRA), its fit and the unlabelled step's fit."""
        config: FinetuneConfig = self.config
        inputs, truth = data["inputs"], data["truth"]
        torch.manual_seed(seed)  # new weights (LoRA matrices, a fresh network, spreads) from the stage's seed, not its name
        model = build_model(base, columns, fresh=config.fresh, spread=config.uncertainty == "gaussian")
        described = f"heads stage {config.base!r} ({base.inputs.input} of {base.inputs.encoder_stage or 'the spectra'})"
        lora = None
        if config.lora:
            targets = adapter_targets(model, config.lora, described)
            sizes = {name: (ADAPTERS[name].rank, ADAPTERS[name].alpha) for name in config.lora}
            add_lora(model, targets, sizes)
            lora = {"targets": targets, "sizes": sizes}
        elif config.adapters == ["head"]:
            model.requires_grad_(False)
            model.head.requires_grad_(True)
        if model.spreads is not None:
            model.spreads.requires_grad_(True)  # new networks: trained whatever the adapters
        if config.fresh:
            self._restandardise(model, inputs["train"], truth["train"])
        unlabelled = (
            self._adapt_encoder(context, base, model, np.flatnonzero(store_split == "train"), modality, seed, f"unlabelled{tag}")
            if config.unlabelled
            else None
        )

        def targets_of(part: str) -> np.ndarray:
            out = np.full((len(inputs[part]), len(base.outputs)), np.nan, dtype=np.float32)
            for label, column in columns.items():
                out[:, column] = (truth[part][label] - model.label_mean[label]) / model.label_std[label]
            return out

        errors = spectra_input_errors(data["arrays"]["train"], inputs["train"].shape[1]) if config.noise_augment else None
        trainer = Trainer(
            model,
            [ValueAndSpread(config.loss, config.noise_augment) if model.gaussian else TargetRegression(config.loss, config.noise_augment)],
            ArrayDataset(inputs["train"], targets_of("train"), data["ids"]["train"], errors),
            ArrayDataset(inputs["val"], targets_of("val"), data["ids"]["val"]),
            config.train,
            context.out_dir / f"training{tag}",
            seed=seed,
            progress=context.progress,
            description=f"{context.name}{' ' + tag.lstrip('.') if tag else ''}",
        )
        result = trainer.fit(resume=context.resume)
        for weights in (context.out_dir / f"training{tag}").glob("*.safetensors"):
            weights.unlink()  # the whole model at each epoch: only the trained tensors are kept, in head/
        return model.cpu().eval(), lora, result, unlabelled

    def _adapt_encoder(
        self, context: StageContext, base: Base, model: AdaptedModel, rows_of_split: np.ndarray, modality: str, seed: int, out: str
    ) -> dict[str, Any]:
        """The unlabelled step: train the encoder's adapters alone on ``unlabelled`` train-split spectra
        with the objectives its ``pretrain`` stage trained it with; returns the fit summary."""
        config: FinetuneConfig = self.config
        encoder_stage = base.inputs.encoder_stage
        manifest = context.run.manifest(encoder_stage)
        if manifest.get("kind") != "pretrain" or modality != model.encoder.modality:
            raise SpecCLIPError(
                f"finetune: unlabelled needs a base whose encoder comes from a pretrain stage and data of its modality; "
                f"{config.base!r} reads {encoder_stage!r} ({manifest.get('kind')}), the data is {modality!r}"
            )
        specs = manifest["settings"].get("objectives") or default_objectives(model.encoder)
        rows = draw(rows_of_split, min(config.unlabelled, len(rows_of_split)), seed + 1, "unlabelled")
        store = context.store()
        trainable = {name for name, p in model.named_parameters() if p.requires_grad}
        for name, parameter in model.named_parameters():
            parameter.requires_grad_(name in trainable and name.startswith("encoder."))
        trainer = Trainer(
            model.encoder,
            [create_component("objective", spec) for spec in specs],
            StoreDataset(store, [modality], rows=rows),
            None,
            config.unlabelled_train,
            context.out_dir / out,
            seed=seed,
            progress=context.progress,
            description=f"{context.name} {out}",
        )
        result = trainer.fit(resume=context.resume)
        for weights in (context.out_dir / out).glob("*.safetensors"):
            weights.unlink()
        for name, parameter in model.named_parameters():
            parameter.requires_grad_(name in trainable)
        return {"n_spectra": len(rows), "objectives": specs, **fit_summary(result)}

    def _out_of_fold_pits(
        self, context: StageContext, base: Base, columns: dict[str, int], data: dict[str, Any], modality: str, seed: int, store_split: np.ndarray
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """The PIT of every labelled training star under the stage's recipe (its members, seeds offset by
        fold) trained on the other ``recalibration_folds`` folds and early-stopped on the same
        validation stars; returns (label -> PITs, label -> truths)."""
        config: FinetuneConfig = self.config
        n = len(data["inputs"]["train"])
        fold_of = np.random.default_rng(seed + 1).permutation(n) % config.recalibration_folds
        pits: dict[str, list[np.ndarray]] = {label: [] for label in config.labels}
        truths: dict[str, list[np.ndarray]] = {label: [] for label in config.labels}
        for fold in range(config.recalibration_folds):
            held = fold_of == fold
            part = {key: {"train": _rows(value["train"], ~held), **{k: v for k, v in value.items() if k != "train"}} for key, value in data.items()}
            models = [
                self._train_member(context, copy.deepcopy(base), columns, part, modality, seed + MEMBER_SEED_STEP * member + FOLD_SEED_STEP * (fold + 1), f".fold{fold}.{member}", store_split)[0]
                for member in range(config.members)
            ]
            truth = _rows(data["truth"]["train"], held)
            for label, values in AdaptedEnsemble(models).pits(_rows(data["inputs"]["train"], held), truth).items():
                pits[label].append(values)
                truths[label].append(truth[label])
        return {k: np.concatenate(v) for k, v in pits.items()}, {k: np.concatenate(v) for k, v in truths.items()}

    def _save_ood(self, predictor: Any, inputs: dict[str, np.ndarray], truth: dict[str, dict[str, np.ndarray]], seed: int, head_dir) -> str:
        """Save the out-of-distribution reference of the training spectra (with, for point values, the
        validation robust sigma per label); says what was saved, or why nothing was."""
        settings: OODSettings = self.config.ood
        if len(inputs["train"]) <= settings.k:
            return f"none: {len(inputs['train'])} training spectra, the k-NN score needs more than k={settings.k}"
        sigma = point_sigma(predictor.predict(inputs["val"]), truth["val"]) if not getattr(predictor, "gives_samples", False) and len(inputs["val"]) else {}
        rows = reference_rows(len(inputs["train"]), settings, seed)
        OODReference.fit(inputs["train"][rows], truth["train"], None, settings, seed, sigma).save(head_dir)
        return f"{len(rows)} training spectra"

    @staticmethod
    def _restandardise(model: AdaptedModel, train_inputs: np.ndarray, train_labels: dict[str, np.ndarray]) -> None:
        """A model from scratch: standardise the head's input and the labels on the drawn stars."""
        with torch.no_grad():
            mean, std = standardiser(model.features(torch.as_tensor(train_inputs)).numpy())
        model.input_mean.copy_(torch.as_tensor(mean))
        model.input_std.copy_(torch.as_tensor(std))
        for label, values in train_labels.items():
            m, s = standardiser(values[:, None])
            model.label_mean[label], model.label_std[label] = float(m[0]), float(s[0])
