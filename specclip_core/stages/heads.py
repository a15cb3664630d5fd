"""The ``heads`` stage: train label heads on embeddings or spectra and score them on the test split."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from specclip_core.components import get_modality
from specclip_core.data.splits import split_labels
from specclip_core.data.store import SpectralStore
from specclip_core.heads.calibration import calibration
from specclip_core.heads.inputs import PIXEL_ERRORS, head_inputs, spectra_input_errors
from specclip_core.heads.metrics import regression_metrics
from specclip_core.heads.ood import OODReference, OODSettings, point_sigma, recon_chi2, reference_rows
from specclip_core.heads.reweight import LabelReweighting, ReweightSpec, describe_weights
from specclip_core.interfaces import Head, LabelledInputs, Stage
from specclip_core.nn.embedders import load_embedder
from specclip_core.report.plots import plot_one_to_one, plot_sbc_ranks
from specclip_core.report.tables import metrics_table
from specclip_core.rundir import HEAD, PREDICTIONS, HeadInputs, write_predictions
from specclip_core.runner import StageContext
from specclip_core.spec import DataSpec, HeadSpec, ModalityName, SpecModel, TrainSpec
from specclip_core.util import atomic_write_text


class Range(SpecModel):
    """Bounds on a label column (either may be left out)."""

    min: float | None = Field(None, description="keep rows with the column >= min")
    max: float | None = Field(None, description="keep rows with the column <= max")


def _head_train_spec() -> TrainSpec:
    return TrainSpec(epochs=100, batch_size=256, lr=1e-3, weight_decay=0.0, patience=10, warmup_fraction=0.02)


class HeadsConfig(SpecModel):
    """Train one head per label (or jointly) on embeddings of a needed stage's encoder, or on the spectra."""

    modality: ModalityName = Field(description="the modality whose spectra (or embeddings) the heads read")
    input: Literal["embedding", "spectra"] = Field("embedding", description="embeddings of a needed stage's encoder, or the preprocessed spectra (stats + flux)")
    errors_input: Literal[PIXEL_ERRORS] = Field(
        "none", description="append each pixel's flux error of the modality to the inputs: sigma (1 / sqrt(ivar)) or inverse_sigma (sqrt(ivar)), 0 where masked"
    )
    with_modalities: list[ModalityName] = Field(
        default_factory=list, description="other modalities of the store whose preprocessed inputs (stats, then flux) are appended; rows must hold them all"
    )
    label_errors: dict[str, str] = Field(default_factory=dict, description="label -> the store's column of its measurement errors, for a head that uses them (mlp label_errors)")
    labels: list[str] = Field(min_length=1, description="label columns of the store to predict")
    head: HeadSpec = Field(default_factory=lambda: HeadSpec(name="mlp"), description="registered head and its settings")
    select: dict[str, Range] = Field(default_factory=dict, description="keep rows whose labels fall in these ranges (train and test)")
    reweight: ReweightSpec | None = Field(None, description="weight the training (and validation) stars' loss so that their labels follow another store's train split (importance weights; heads that take weights)")
    train: TrainSpec = Field(default_factory=_head_train_spec)
    seed_offset: int = Field(0, ge=0, description="added to the run's seed for this stage's head training and OOD reference: repeats of one head on the same encoder")
    units: dict[str, str] = Field(default_factory=dict, description="label -> unit, for plot axes and catalogue columns")
    names: dict[str, str] = Field(default_factory=dict, description="label -> how plots show it, e.g. '[Fe/H]' (default: the label)")
    sbc_stars: int = Field(200, ge=10, description="test stars for simulation-based calibration of a head that gives posteriors (npe, mlp with uncertainty)")
    ood: OODSettings = Field(default_factory=OODSettings, description="out-of-distribution thresholds from the training set (predict's flag columns)")

    @model_validator(mode="before")
    @classmethod
    def _old_errors_settings(cls, values: Any) -> Any:
        """Say what replaced the two settings the one ``errors_input`` took over (specs written before it)."""
        if isinstance(values, dict):
            if values.get("input") == "spectra_ivar":
                raise ValueError("input: spectra_ivar is now written input: spectra with errors_input: inverse_sigma (the same columns)")
            if isinstance(values.get("errors_input"), bool):
                raise ValueError(f"errors_input: {str(values['errors_input']).lower()} is now written errors_input: {'sigma' if values['errors_input'] else 'none'}")
        return values

    @model_validator(mode="after")
    def _described_labels_exist(self) -> HeadsConfig:
        unknown = sorted((set(self.units) | set(self.names) | set(self.label_errors)) - set(self.labels))
        if unknown:
            raise ValueError(f"units, names or label_errors given for {unknown}, which are not in labels {self.labels}")
        if self.modality in self.with_modalities:
            raise ValueError(f"with_modalities: {self.modality!r} is the modality the heads read already")
        return self


def selected_rows(store: SpectralStore, labels: list[str], select: dict[str, Range]) -> np.ndarray:
    """Rows with at least one of ``labels`` finite and every ``select`` range satisfied."""
    table = store.labels(sorted(set(labels) | set(select)))
    keep = np.zeros(len(store), dtype=bool)
    for label in labels:
        keep |= np.isfinite(table[label])
    for column, bounds in select.items():
        values = table[column]
        if bounds.min is not None:
            keep &= values >= bounds.min
        if bounds.max is not None:
            keep &= values <= bounds.max
    return np.flatnonzero(keep)


def _labelled(inputs: np.ndarray, store: SpectralStore, rows: np.ndarray, config: HeadsConfig, input_errors: np.ndarray | None = None) -> LabelledInputs:
    errors = store.labels(list(config.label_errors.values()), rows) if config.label_errors else {}
    return LabelledInputs(inputs, store.labels(config.labels, rows), store.ids[rows], {label: errors[column] for label, column in config.label_errors.items()}, input_errors)


def _built_head(config: HeadsConfig) -> Head:
    """The stage's untrained head; one that trains on noisier copies of its inputs needs spectra
    inputs, and one given ``reweight`` must take weights."""
    head = config.head.build()
    if head.uses_input_errors and config.input != "spectra":
        raise ValueError(f"head {config.head.name!r} trains on noisier copies of its inputs, which needs input: spectra (an embedding has no per-input errors), not {config.input!r}")
    if config.reweight is not None and not head.takes_weights:
        raise ValueError(f"reweight: head {config.head.name!r} does not weight its training loss by star; use a head that does (mlp)")
    return head


def reweighted(parts: dict[str, LabelledInputs], spec: ReweightSpec, store: SpectralStore, rows: dict[str, np.ndarray], like: SpectralStore, seed: int) -> dict[str, Any]:
    """Give ``parts["train"]`` and ``parts["val"]`` the weights that make their ``spec.labels`` follow
    the train split of the ``like`` store (:mod:`specclip_core.heads.reweight`); the summary's entry."""
    like_rows = np.flatnonzero(split_labels(like.ids) == "train")
    like_labels = like.labels([spec.like_column(label) for label in spec.labels], like_rows)
    like_labels = {label: like_labels[spec.like_column(label)] for label in spec.labels}
    weighting = LabelReweighting(spec.labels, store.labels(spec.labels, rows["train"]), like_labels, spec.max_weight, seed)
    parts["train"] = replace(parts["train"], weights=weighting.training_weights())
    if len(rows["val"]):
        parts["val"] = replace(parts["val"], weights=weighting.weights(store.labels(spec.labels, rows["val"])))
    return {"like_stars": weighting.n_like, "train": describe_weights(parts["train"].weights)}


def save_ood_reference(
    config: HeadsConfig, head: Head, train: LabelledInputs, validation: LabelledInputs, predicted_val: dict[str, np.ndarray], train_rows: np.ndarray, store: SpectralStore, modality: str, encoder: Any | None, head_dir, seed: int
) -> None:
    """The out-of-distribution reference predict scores spectra against (:mod:`specclip_core.heads.ood`):
    a seeded subsample of the training inputs, their reconstruction residuals where the encoder has a
    decoder, the training label ranges and, for a point head, its validation robust sigma per label."""
    rows = reference_rows(len(train.inputs), config.ood, seed)
    reference = store.read(modality, train_rows[rows]) if getattr(encoder, "can_reconstruct", False) else None
    chi2 = recon_chi2(encoder.reconstruct(reference["flux"], reference["stats"]), reference) if reference is not None else None
    sigma = point_sigma(predicted_val, {label: validation.labels[label] for label in config.labels}) if not head.gives_samples and len(validation.inputs) else {}
    OODReference.fit(train.inputs[rows], train.labels, chi2, config.ood, seed, sigma).save(head_dir)


def calibrate(head: Any, raw: dict[str, np.ndarray] | None, truth: dict[str, np.ndarray], sbc_stars: int, names: dict[str, str], out_dir, seed: int, title: str) -> dict[str, dict[str, Any]]:
    """For a head that gives posterior samples (``raw``: its own, before any recalibration): per
    label of ``truth`` (the test split's), SBC (K-S p-value, rank histogram ``sbc_<label>.png``) on
    ``sbc_stars`` test stars and coverage of the 68% and 95% intervals on the whole test split, of
    the recalibrated samples, with the raw samples' figures under ``raw``; {} for a point estimator."""
    if raw is None:
        return {}
    samples = head.recalibration.apply(raw) if head.recalibration else raw
    result = {}
    for label, values in truth.items():
        figures, ranks = calibration(values, samples[label], sbc_stars, seed)
        plot_sbc_ranks(ranks, samples[label].shape[1], out_dir / f"sbc_{label}.png", names.get(label, label), figures["sbc_ks_p"], title)
        result[label] = {**figures, "recalibrated": head.recalibration is not None}
        if head.recalibration:
            result[label]["raw"] = calibration(values, raw[label], sbc_stars, seed)[0]
    return result


class HeadsStage(Stage):
    """Train heads; write head/, test_predictions.csv, metrics.json, table.md and one-to-one plots
    (and SBC rank histograms for a head that gives posteriors)."""

    requires_data = True

    def labels_read(self) -> dict[str, list[str]]:
        reweight = list(self.config.reweight.labels) if self.config.reweight else []
        return {"labels": list(self.config.labels), "select": list(self.config.select), "label_errors": list(self.config.label_errors.values()), "reweight": reweight}

    def inputs(self) -> dict[str, DataSpec]:
        return {"reweight": self.config.reweight.like} if self.config.reweight else {}

    def run(self, context: StageContext) -> dict[str, Any]:
        config: HeadsConfig = context.config
        modality = get_modality(config.modality).name
        store = context.store()
        rows = selected_rows(store, config.labels, config.select)
        others = [get_modality(name).name for name in config.with_modalities]
        for observed in (modality, *others):
            rows = rows[store.observed(observed, rows)]  # a row whose every pixel is masked did not observe the modality
        split = split_labels(store.ids[rows])
        head = _built_head(config)
        encoder_path = context.find_encoder(modality) if config.input == "embedding" else None
        encoder = load_embedder(encoder_path) if encoder_path else None
        inputs = head_inputs(config.input, store, modality, rows, encoder, progress=context.progress, errors=config.errors_input, other_modalities=others)
        errors = spectra_input_errors(store.read(modality, rows[split == "train"]), inputs.shape[1]) if head.uses_input_errors else None
        parts = {name: _labelled(inputs[split == name], store, rows[split == name], config, errors if name == "train" else None) for name in ("train", "val", "test")}
        seed = context.seed + config.seed_offset
        weights = reweighted(parts, config.reweight, store, {name: rows[split == name] for name in ("train", "val")}, context.input_store("reweight"), seed) if config.reweight else None
        simulated_read = [name for name in (modality, *others) if name in store.simulated_modalities]
        simulated = bool(simulated_read)
        fit_summary = head.fit(parts["train"], parts["val"], context.out_dir / "training", train_spec=config.train, seed=seed, progress=context.progress, resume=context.resume)
        head.save(context.out_dir / HEAD)
        validation = parts["val"]
        predicted_val = head.predict(validation.inputs)
        save_ood_reference(config, head, parts["train"], validation, predicted_val, rows[split == "train"], store, modality, encoder, context.out_dir / HEAD, seed)
        encoder_stage = encoder_path.parent.parent.name if encoder_path else None
        test = parts["test"]
        predicted, raw = head.predict_samples(test.inputs)
        write_predictions(context.out_dir / PREDICTIONS, test.ids, test.labels, predicted)
        title = f"{context.name} ({config.input}{', SIMULATED ' + ', '.join(simulated_read) if simulated else ''})"
        calibrated = calibrate(head, raw, {label: test.labels[label] for label in config.labels}, config.sbc_stars, config.names, context.out_dir, seed, title)
        metrics = {label: {**regression_metrics(test.labels[label], predicted[label]), **calibrated.get(label, {})} for label in config.labels}
        sigmas = {label: m["robust_sigma"] for label, m in metrics.items() if m["robust_sigma"] == m["robust_sigma"]}
        HeadInputs(modality, config.input, encoder_stage, config.head.name, simulated, config.units, config.names, sigmas, config.errors_input, others).write(context.out_dir / HEAD)
        atomic_write_text(context.out_dir / "metrics.json", json.dumps(metrics, indent=2))
        note = f"{', '.join(simulated_read)} spectra are SIMULATED." if simulated else ""
        atomic_write_text(context.out_dir / "table.md", metrics_table({context.name: metrics}, config.labels, note))
        for label in config.labels:
            plot_one_to_one(test.labels[label], predicted[label], context.out_dir / f"one_to_one_{label}.png", label, config.units.get(label, ""), title, config.names.get(label, ""))
        n_params = head.n_parameters() if hasattr(head, "n_parameters") else None
        validation_metrics = {label: regression_metrics(validation.labels[label], predicted_val[label]) for label in config.labels}
        return {
            "n_rows": {k: len(v) for k, v in parts.items()},
            "simulated": simulated,
            "input_dim": int(inputs.shape[1]),
            "head_parameters": n_params,
            "test": metrics,
            "validation": validation_metrics,
            "fit": fit_summary,
            **({"reweight": weights} if weights else {}),
        }
