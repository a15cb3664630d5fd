"""Importance weights that make a training set's labels follow another population's.

A head trained on simulated stars (or on one survey's) learns the population it is given: a library
of mostly giants teaches a network less about the dwarfs a survey is made of. Weighting each training
star by the density ratio ``p_like(labels) / p_train(labels)`` makes the training loss the one
expected on the ``like`` population (covariate-shift correction). The ratio is read from a
classifier (scikit-learn ``HistGradientBoostingClassifier``) that tells the ``like`` stars' labels
from the training stars': ``w = P(like | x) / P(train | x) x n_train / n_like``, each training star's
probability predicted out of fold (``cross_val_predict``, 5 folds) so that no star's weight comes from
a classifier that saw it. Weights are scaled to a mean of 1, clipped at ``max_weight`` and scaled to
a mean of 1 again, which limits how much the few training stars where the ``like`` population is
densest can dominate the loss (where only a few training stars resemble it at all, the rescaled
weights still exceed ``max_weight``: the summary's effective number of stars says so).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from pydantic import Field, field_validator

from specclip_core.errors import SpecCLIPError
from specclip_core.spec import DataSpec, SpecModel

FOLDS = 5


class ReweightSpec(SpecModel):
    """Weight the training stars so that their labels follow another store's (see :mod:`specclip_core.heads.reweight`)."""

    like: DataSpec = Field(description="the store whose train-split labels the training stars are weighted to follow (a dataset, a store path or an earlier stage)")
    labels: list[str] = Field(min_length=1, description="label columns of the training store the weights are a function of")
    columns: dict[str, str] = Field(default_factory=dict, description="label -> its column in the like store, where the names differ")
    max_weight: float = Field(20.0, gt=1, description="weights (mean 1) are clipped here before they are scaled to a mean of 1 again")

    @field_validator("columns")
    @classmethod
    def _no_empty_names(cls, columns: dict[str, str]) -> dict[str, str]:
        empty = [label for label, column in columns.items() if not column]
        if empty:
            raise ValueError(f"columns: no like-store column given for {empty}")
        return columns

    def like_column(self, label: str) -> str:
        return self.columns.get(label, label)


class LabelReweighting:
    """A fitted classifier of ``labels`` (training stars against ``like`` stars), giving each row's
    weight from its labels (clipped at ``max_weight``, see :class:`ReweightSpec`)."""

    def __init__(self, labels: list[str], train: Mapping[str, np.ndarray], like: Mapping[str, np.ndarray], max_weight: float = 20.0, seed: int = 0):
        from sklearn.ensemble import HistGradientBoostingClassifier
        from sklearn.model_selection import StratifiedKFold, cross_val_predict

        self.labels, self.max_weight = list(labels), max_weight
        x_train, x_like = self._features(train), self._features(like)
        known = np.isfinite(x_like).any(axis=1)
        if known.sum() < 2 * FOLDS:
            raise SpecCLIPError(f"reweight: the like store has {int(known.sum())} stars with any of {self.labels} known; need at least {2 * FOLDS}")
        x_like = x_like[known]
        self.n_train, self.n_like = len(x_train), len(x_like)
        x = np.concatenate([x_train, x_like])
        y = np.concatenate([np.zeros(len(x_train), dtype=int), np.ones(len(x_like), dtype=int)])
        self.classifier = HistGradientBoostingClassifier(random_state=seed)
        folds = StratifiedKFold(FOLDS, shuffle=True, random_state=seed)
        self._train_probability = cross_val_predict(self.classifier, x, y, cv=folds, method="predict_proba")[: len(x_train), 1]
        self.classifier.fit(x, y)

    def _features(self, labels: Mapping[str, np.ndarray]) -> np.ndarray:
        return np.stack([np.asarray(labels[label], dtype=np.float64) for label in self.labels], axis=1)

    def _weights(self, probability: np.ndarray) -> np.ndarray:
        probability = np.clip(probability, 1e-6, 1 - 1e-6)
        weights = probability / (1 - probability) * self.n_train / self.n_like
        weights = weights / weights.mean()
        clipped = np.minimum(weights, self.max_weight)
        return clipped / clipped.mean()

    def training_weights(self) -> np.ndarray:
        """The weight of each training row the reweighting was fitted on (out of fold), mean 1."""
        return self._weights(self._train_probability)

    def weights(self, labels: Mapping[str, np.ndarray]) -> np.ndarray:
        """Weights of other rows of the training store (e.g. its validation split), mean 1 over them."""
        return self._weights(self.classifier.predict_proba(self._features(labels))[:, 1])


def describe_weights(weights: np.ndarray) -> dict[str, float]:
    """What a stage's summary says of its training weights: how many, the effective number of stars
    ``(sum w)^2 / sum w^2`` and the largest weight."""
    return {"n": int(len(weights)), "effective_n": float(weights.sum() ** 2 / np.square(weights).sum()), "max_weight": float(weights.max())}
