"""Which reconstruction-residual score flags spectra outside the training label range (SIMULATED test).

Chosen here, on SIMULATED LAMOST-like spectra only, before it is scored on real DR10 stars
(bench/trust_ood.py): a LAMOST autoencoder (the quickstart's settings) is pretrained on the training
split of the quickstart's SIMULATED store with one label range cut away, and each candidate score of
the held-out test split is asked to separate the test stars beyond the cut ("outside") from the others.

Scenarios (cuts fixed before any figure was seen): ``metal_rich``, training stars with [Fe/H] above
the training split's 85th percentile removed; ``hot``, Teff above its 90th percentile removed.

Candidate scores over each spectrum's good pixels (r = flux - reconstruction):

- ``chi2``: mean(ivar r^2), the reduced chi-square ``ood_recon_chi2`` gives today; for a fixed
  misfit it grows with the square of the S/N;
- ``excess``: (chi2 - 1) x n / sum(ivar), the inverse-variance-weighted mean of r^2 - 1/ivar: the
  misfit's variance with the noise's expected share taken out, which does not grow with S/N;
- ``rms``: sqrt(mean(r^2)), the misfit with the noise left in.

For each: the AUC (outside vs inside) and, on the inside test stars, its Spearman correlation with the
spectrum's median S/N.

    .venv/bin/python bench/ood_residual_scores.py --store RUNS/quickstart/simulate/store.zarr --out bench/results/ood_residual_scores
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from specclip_core.components import create_component
from specclip_core.data.dataset import StoreDataset
from specclip_core.data.splits import split_labels
from specclip_core.data.store import SpectralStore
from specclip_core.heads.ood import recon_chi2
from specclip_core.nn.modality_encoder import ModalityEncoder
from specclip_core.spec import TrainSpec
from specclip_core.train.loop import Trainer

MODALITY = "lamost_lrs"
SCENARIOS = {"metal_rich": ("fe_h", 85.0), "hot": ("teff", 90.0)}
TRAIN = {"epochs": 20, "batch_size": 256, "lr": 1.0e-3, "weight_decay": 0.1, "patience": 5}


def residual_scores(flux: np.ndarray, rebuilt: np.ndarray, ivar: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
    """The candidate scores (module docstring) of each row; ``chi2`` is predict's own ``ood_recon_chi2``."""
    chi2 = recon_chi2(rebuilt, {"flux": flux, "ivar": ivar, "mask": mask})
    good = ~mask
    n = good.sum(axis=1).clip(min=1)
    r2 = np.where(good, (flux - rebuilt) ** 2, 0.0)
    weight = np.where(good, ivar, 0.0).sum(axis=1)
    return {"chi2": chi2, "excess": (chi2 - 1.0) * n / np.maximum(weight, 1e-30), "rms": np.sqrt(r2.sum(axis=1) / n)}


def median_snr(flux: np.ndarray, ivar: np.ndarray, mask: np.ndarray) -> np.ndarray:
    good = ~mask & (ivar > 0)
    return np.nanmedian(np.where(good, np.abs(flux) * np.sqrt(np.maximum(ivar, 0)), np.nan), axis=1)


def scenario(store: SpectralStore, label: str, percentile: float, out_dir: Path, seed: int) -> dict:
    values = store.labels([label])[label]
    split = split_labels(store.ids)
    cut = float(np.nanpercentile(values[split == "train"], percentile))
    kept = np.flatnonzero(np.isfinite(values) & (values <= cut))
    network = ModalityEncoder(MODALITY, {"name": "vector"}, {"name": "mlp_autoencoder", "size": "small"})
    objectives = [create_component("objective", {"name": "reconstruction", "loss": "mse", "noise_scale": 1.0})]
    train = StoreDataset(store, [MODALITY], split="train", rows=kept)
    val = StoreDataset(store, [MODALITY], split="val", rows=kept)
    started = time.perf_counter()
    Trainer(network, objectives, train, val, TrainSpec(**TRAIN), out_dir / f"training_{label}", seed=seed, progress=False).fit()
    seconds = time.perf_counter() - started
    test = np.flatnonzero((split == "test") & np.isfinite(values))
    spectra = store.read(MODALITY, test)
    rebuilt = network.reconstruct(spectra["flux"], spectra["stats"])
    scores = residual_scores(spectra["flux"], rebuilt, spectra["ivar"], spectra["mask"])
    outside = values[test] > cut
    snr = median_snr(spectra["flux"], spectra["ivar"], spectra["mask"])
    figures = {
        name: {"auc": float(roc_auc_score(outside, score)), "spearman_snr_inside": float(spearmanr(score[~outside], snr[~outside]).statistic)}
        for name, score in scores.items()
    }
    figures["snr"] = {"auc": float(roc_auc_score(outside, snr)), "spearman_snr_inside": 1.0}
    return {"label": label, "cut": cut, "n_train": len(train), "n_test_inside": int((~outside).sum()), "n_test_outside": int(outside.sum()), "pretrain_seconds": round(seconds, 1), "scores": figures}


def markdown(result: dict) -> str:
    lines = ["# Reconstruction-residual scores for out-of-distribution flags (SIMULATED; bench/ood_residual_scores.py)", "", result["note"], ""]
    for name, entry in result["scenarios"].items():
        lines += [
            f"## {name}: training stars with {entry['label']} > {entry['cut']:.3g} removed (SIMULATED)",
            "",
            f"{entry['n_train']} training spectra; test split: {entry['n_test_inside']} inside, {entry['n_test_outside']} outside; pretraining {entry['pretrain_seconds']} s.",
            "",
            "| score | AUC outside vs inside | Spearman with S/N (inside) |",
            "|---|---|---|",
        ]
        lines += [f"| {score} | {f['auc']:.3f} | {f['spearman_snr_inside']:.2f} |" for score, f in entry["scores"].items()]
        lines.append("")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", type=Path, required=True, help="a SIMULATED LAMOST-like store (the quickstart's simulate stage)")
    parser.add_argument("--out", type=Path, required=True, help="writes OUT.json and OUT.md")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    store = SpectralStore.open(args.store)
    if MODALITY not in store.simulated_modalities:
        raise SystemExit(f"{args.store}: {MODALITY} is not simulated there; this study is run on SIMULATED spectra only")
    work = args.out.parent / f"{args.out.name}_work"
    result = {
        "note": f"Every spectrum here is SIMULATED ({args.store}, seed {args.seed}). Scores are chosen on these figures only, then scored once on real DR10 stars.",
        "scenarios": {name: scenario(store, label, pct, work, args.seed) for name, (label, pct) in SCENARIOS.items()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2))
    args.out.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
