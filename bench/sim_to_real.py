"""Sim-to-real: label heads trained on SIMULATED LAMOST-like spectra of the ~40k Gaia XP stars (APOGEE
labels), applied to the 2,224 real LAMOST DR10 spectra (LASP labels).

The head is the core's MLP head (specclip_core.heads.mlp.MLPHead, default sizes; one joint network
for the three labels by default to fit 2 shared CPU cores, --per-label for one per label) on the preprocessed spectra (stats + 1462 fluxes, specclip_core.heads.inputs.spectra_inputs),
trained on the paired store's train split (by id), early-stopped on its validation split; labels
teff, logg, fe_h (APOGEE; stars without a measured [Fe/H] do not train the [Fe/H] head).
Accuracy = robust sigma (biweight scale of predicted - true; specclip_core.heads.metrics), on:

  1. the paired store's test split (simulated, APOGEE labels): the same-domain reference;
  2. simulated twins of the DR10 stars (LASP labels, own rv and S/N): the label-distribution shift alone;
  3. the real DR10 spectra against their LASP labels: sim-to-real (includes APOGEE vs LASP label-scale
     differences).

Real DR10 figures are given on all stars, on the held-out 30% (sim_common.in_train_split), and on the
held-out stars inside the simulated training label range (each of Teff, logg, [Fe/H] within the
1st-99th percentile of the simulated training labels). With ``--real-reference``, the same head
trained on the real DR10 training 70% (LASP labels; 15% of them, by id hash, for early stopping) is
evaluated on the same held-out stars: the goal is the sim-trained head within 1.5x of it per label.
With ``--reweight LABEL ...`` the simulated training (and validation) stars are weighted so that those
labels follow the real DR10 training 70%'s (LASP; specclip_core.heads.reweight, as the heads stage's
``reweight``): the simulated library is 63% giants, DR10 7%.

    .venv/bin/python bench/sim_to_real.py --paired STORE [--epochs 60] [--real-reference] [--seed 0] [--reweight teff logg]
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import sys
import time

import matplotlib
import numpy as np
from sim_common import (
    RESULTS,
    align,
    dr10_labels_for_simulation,
    dr10_store,
    have_dr10,
    in_train_split,
    machine,
    simulate_preprocessed,
)

from specclip_core.data.datasets import cache_dir
from specclip_core.data.splits import split_labels
from specclip_core.data.store import SpectralStore
from specclip_core.heads.inputs import spectra_input_errors, spectra_inputs
from specclip_core.heads.metrics import regression_metrics
from specclip_core.heads.mlp import MLPHead, MLPHeadConfig
from specclip_core.heads.reweight import LabelReweighting, describe_weights
from specclip_core.interfaces import LabelledInputs, Spectra
from specclip_core.spec import TrainSpec
from specclip_sim.observe import NativeObserver

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

LABELS = {"teff": ("teff", "teff"), "logg": ("logg", "logg"), "feh": ("fe_h", "feh")}  # name -> (paired column, DR10 column)


def reweight(train: LabelledInputs, validation: LabelledInputs, real: Spectra, labels: list[str], seed: int) -> dict[str, float]:
    """Weight ``train`` and ``validation`` so that ``labels`` follow those of the ``real`` DR10 training
    stars (the 70% that taught the empirical correction; the held-out 30% are never read); the weights' summary."""
    taught = in_train_split(real.ids)
    like = {k: np.asarray(real.meta[LABELS[k][1]], dtype=float)[taught] for k in labels}
    weighting = LabelReweighting(labels, {k: train.labels[k] for k in labels}, like, seed=seed)
    train.weights = weighting.training_weights()
    validation.weights = weighting.weights({k: validation.labels[k] for k in labels})
    return describe_weights(train.weights) | {"like_stars": weighting.n_like}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--paired", required=True)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--no-correction", action="store_true", help="simulate the DR10 twins without the empirical correction (for a store made without it)")
    parser.add_argument("--name", default="sim_to_real")
    parser.add_argument("--per-label", action="store_true", help="one network per label (the paper's choice; 3x the CPU time) instead of one joint network")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help="seeds both heads (this) and the DR10 twins (this + 1): repeats on the same paired store")
    parser.add_argument("--real-reference", action="store_true", help="also train the head on the real DR10 training stars and compare on the held-out ones")
    parser.add_argument("--loss", default="mse", choices=["mse", "huber", "l1"], help="both heads' loss")
    parser.add_argument("--noise-augment", type=float, default=0.0, help="both heads' noise_augment (re-noise each batch by its own flux errors)")
    parser.add_argument("--feh-column", default="fe_h", help="the paired store's [Fe/H] column the simulated head trains on: fe_h (APOGEE's, missing for hot stars) or sim_fe_h (the value each spectrum was simulated with, imputed where APOGEE has none)")
    parser.add_argument("--reweight", nargs="+", choices=list(LABELS), help="weight the simulated training stars so that these labels follow the real DR10 training stars'")
    args = parser.parse_args()
    config = MLPHeadConfig(joint=not args.per_label, loss=args.loss, noise_augment=args.noise_augment)
    if not have_dr10():
        return 1
    started = time.perf_counter()
    load_at_start = machine()
    paired = SpectralStore.open(args.paired)
    how = paired.meta["simulated"]["lamost_lrs"]
    print(f"paired store: R {how['resolving_power']}, correction {'yes' if how['settings'].get('correction') else 'no'}", flush=True)
    splits = split_labels(paired.ids)
    columns = {k: args.feh_column if k == "feh" else c for k, (c, _) in LABELS.items()}
    labels = paired.labels(list(columns.values()))

    def labelled(split: str) -> LabelledInputs:
        rows = np.flatnonzero(splits == split)
        arrays = paired.read("lamost_lrs", rows)
        inputs = spectra_inputs(arrays)
        errors = spectra_input_errors(arrays, inputs.shape[1]) if args.noise_augment else None
        return LabelledInputs(inputs, {k: labels[c][rows] for k, c in columns.items()}, paired.ids[rows], input_errors=errors)

    train, validation, test = labelled("train"), labelled("val"), labelled("test")
    dr10 = dr10_store()
    real = dr10.spectra("lamost_lrs")
    weights = reweight(train, validation, real, args.reweight, args.seed) if args.reweight else None
    head = MLPHead(config)
    run_dir = cache_dir() / "bench" / f"{args.name}_head"
    fit_started = time.perf_counter()
    summary = head.fit(train, validation, run_dir, TrainSpec(epochs=args.epochs, batch_size=256, lr=1e-3, weight_decay=0.0, patience=6, device="cpu"), seed=args.seed, progress=False)
    fit_seconds = time.perf_counter() - fit_started

    ids, inputs = dr10_labels_for_simulation(dr10)
    twins, _, _ = simulate_preprocessed(NativeObserver("lamost_lrs", correction=not args.no_correction), ids, inputs, seed=args.seed + 1, workers=args.workers, progress=False)
    real, twins = align(real, twins)
    truth_dr10 = {k: real.meta[c] for k, (_, c) in LABELS.items()}
    sets = {
        "simulated XP stars, test split (APOGEE labels)": (head.predict(test.inputs), test.labels, None),
        "simulated twins of DR10 (LASP labels)": (head.predict(spectra_inputs({"stats": twins.stats, "flux": twins.flux})), truth_dr10, real.meta["teff"]),
        "real LAMOST DR10 (LASP labels)": (head.predict(spectra_inputs({"stats": real.stats, "flux": real.flux})), truth_dr10, real.meta["teff"]),
    }
    held_out = ~in_train_split(real.ids)
    limits = {k: np.nanpercentile(train.labels[k], [1, 99]) for k in LABELS}
    inside = np.all([(truth_dr10[k] >= lo) & (truth_dr10[k] <= hi) for k, (lo, hi) in limits.items()], axis=0)
    range_note = ", ".join(f"{k} {lo:.4g}-{hi:.4g}" for k, (lo, hi) in limits.items())
    if args.real_reference:
        real_inputs = spectra_inputs({"stats": real.stats, "flux": real.flux})
        for_stopping = np.array([int(hashlib.sha256(f"stop:{i}".encode()).hexdigest()[:8], 16) / 16**8 < 0.15 for i in real.ids])
        rows_fit, rows_stop = np.flatnonzero(~held_out & ~for_stopping), np.flatnonzero(~held_out & for_stopping)
        reference = MLPHead(config)
        real_errors = spectra_input_errors({"stats": real.stats, "ivar": real.ivar, "mask": real.mask, "flux": real.flux}, real_inputs.shape[1])
        reference.fit(
            LabelledInputs(
                real_inputs[rows_fit], {k: truth_dr10[k][rows_fit] for k in LABELS}, real.ids[rows_fit], input_errors=real_errors[rows_fit] if args.noise_augment else None
            ),
            LabelledInputs(real_inputs[rows_stop], {k: truth_dr10[k][rows_stop] for k in LABELS}, real.ids[rows_stop]),
            cache_dir() / "bench" / f"{args.name}_real_head", TrainSpec(epochs=max(args.epochs, 60), batch_size=64, lr=1e-3, weight_decay=0.0, patience=10, device="cpu"), seed=args.seed, progress=False,
        )
        sets["real LAMOST DR10 (LASP labels), head trained on real DR10 training stars"] = (reference.predict(real_inputs), truth_dr10, real.meta["teff"])
    metrics = {}
    for name, (predicted, truth, teff) in sets.items():
        metrics[name] = {"all": {k: regression_metrics(truth[k], predicted[k]) for k in LABELS}}
        if teff is not None:
            metrics[name]["held-out 30% (never seen by the empirical correction)"] = {k: regression_metrics(truth[k][held_out], predicted[k][held_out]) for k in LABELS}
            metrics[name]["held-out 30%, inside the simulated label range"] = {k: regression_metrics(truth[k][held_out & inside], predicted[k][held_out & inside]) for k in LABELS}
            metrics[name]["held-out 30%, outside the simulated label range"] = {k: regression_metrics(truth[k][held_out & ~inside], predicted[k][held_out & ~inside]) for k in LABELS}
            for lo, hi in ((0, 6000), (6000, 7000), (7000, 1e9)):
                sel = (teff >= lo) & (teff < hi)
                metrics[name][f"Teff {lo:g}-{hi:g} K"] = {k: regression_metrics(truth[k][sel], predicted[k][sel]) for k in LABELS}

    train_teff = train.labels["teff"]
    lines = [
        "# Sim-to-real: MLP heads trained on SIMULATED LAMOST-like spectra, applied to real LAMOST DR10",
        "",
        f"`python bench/sim_to_real.py --paired {args.paired} --epochs {args.epochs}{' --no-correction' if args.no_correction else ''}{' --reweight ' + ' '.join(args.reweight) if args.reweight else ''}{f' --feh-column {args.feh_column}' if args.feh_column != 'fe_h' else ''}{' --real-reference' if args.real_reference else ''}{f' --seed {args.seed}' if args.seed else ''}{f' --loss {args.loss}' if args.loss != 'mse' else ''}{f' --noise-augment {args.noise_augment:g}' if args.noise_augment else ''} --name {args.name}`, {datetime.datetime.now():%Y-%m-%d %H:%M}; {load_at_start} (at start); "
        f"{time.perf_counter() - started:.0f} s (training {fit_seconds:.0f} s).",
        "",
        f"Training: core MLP head ({'one network per label' if args.per_label else 'one joint network for the three labels'}, hidden 1024-512-128, {head.n_parameters():,} parameters in all; loss {args.loss}, noise_augment {args.noise_augment:g}, for both heads) on stats + 1462 "
        f"preprocessed pixels of {len(train)} simulated spectra (train split; validation {len(validation)}), APOGEE labels; "
        f"[Fe/H] ({args.feh_column}) trained on the {int(np.isfinite(train.labels['feh']).sum())} with a value. Epochs: "
        + ", ".join(f"{k} best {v['best_epoch']} of {v['epochs']}" for k, v in summary.items()) + ".",
        f"Training Teff range (5-95th percentile): {np.percentile(train_teff, 5):.0f}-{np.percentile(train_teff, 95):.0f} K, "
        f"{np.mean(train_teff >= 7000):.0%} of training stars at >= 7000 K; logg < 3.5 for {np.mean(train.labels['logg'] < 3.5):.0%}. "
        f"The DR10 stars: {np.mean(truth_dr10['teff'] >= 7000):.0%} at >= 7000 K, {np.mean(truth_dr10['logg'] < 3.5):.0%} with logg < 3.5."
        + (
            f" Training stars weighted to the DR10 training stars' {', '.join(args.reweight)}: effective number {weights['effective_n']:.0f} of {weights['n']}, largest weight {weights['max_weight']:.1f};"
            f" weighted, {np.average(train_teff >= 7000, weights=train.weights):.0%} at >= 7000 K and logg < 3.5 for {np.average(train.labels['logg'] < 3.5, weights=train.weights):.0%}."
            if weights
            else ""
        ),
        "",
        "| evaluated on | stars | Teff robust sigma (K) | bias | logg robust sigma | bias | [Fe/H] robust sigma | bias |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, groups in metrics.items():
        for group, m in groups.items():
            label = name if group == "all" else f"  ... {group}"
            lines.append(
                f"| {label} | {m['teff']['n']} | {m['teff']['robust_sigma']:.0f} | {m['teff']['bias']:+.0f} | {m['logg']['robust_sigma']:.3f} | {m['logg']['bias']:+.3f} | "
                f"{m['feh']['robust_sigma']:.3f} | {m['feh']['bias']:+.3f} |"
            )
    lines += [
        "",
        f"Simulated training label range (1st-99th percentile): {range_note}; {int((held_out & inside).sum())} of {int(held_out.sum())} held-out DR10 stars inside.",
    ]
    if args.real_reference:
        sim_name, real_name = "real LAMOST DR10 (LASP labels)", "real LAMOST DR10 (LASP labels), head trained on real DR10 training stars"
        lines += ["", "Sim-trained over real-trained robust sigma on the same held-out real DR10 stars (goal <= 1.5 inside the simulated range):", "", "| stars | Teff | logg | [Fe/H] |", "|---|---|---|---|"]
        for group in ("held-out 30%, inside the simulated label range", "held-out 30% (never seen by the empirical correction)"):
            ratio = [metrics[sim_name][group][k]["robust_sigma"] / metrics[real_name][group][k]["robust_sigma"] for k in LABELS]
            lines.append(f"| {group} ({metrics[sim_name][group]['teff']['n']}) | " + " | ".join(f"{x:.2f}" for x in ratio) + " |")
    lines += [
        "",
        "Bias = biweight location of predicted - true. Rows 2 and 3 use the same stars and labels, so their difference is the",
        "sim-to-real gap; row 2 against row 1 is the cost of the different label distribution (DR10 A/F/G dwarfs vs APOGEE giants).",
        "",
        f"![sim-to-real one-to-one]({args.name}.png)",
        "",
    ]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.md").write_text("\n".join(lines))
    (RESULTS / f"{args.name}.json").write_text(json.dumps({"metrics": metrics, "summary": summary, "fit_seconds": fit_seconds, "weights": weights}, indent=1))
    print("\n".join(lines))

    fig, axes = plt.subplots(2, 3, figsize=(13, 8))
    for row, name in enumerate(list(sets)[1:3]):
        predicted, truth, _ = sets[name]
        for ax, k in zip(axes[row], LABELS):
            ax.scatter(truth[k], predicted[k], s=2, alpha=0.5)
            lo, hi = np.nanpercentile(truth[k], [0.5, 99.5])
            ax.plot([lo, hi], [lo, hi], "k", lw=0.6)
            ax.set_xlim(lo, hi)
            ax.set_ylim(lo, hi)
            ax.set_xlabel(f"LASP {k}")
            ax.set_ylabel(f"predicted {k}")
            ax.set_title(f"{name}\nsigma {metrics[name]['all'][k]['robust_sigma']:.3g}", fontsize=8)
    fig.suptitle("Heads trained on SIMULATED LAMOST-like spectra (APOGEE labels), applied to DR10", fontsize=10)
    fig.tight_layout()
    fig.savefig(RESULTS / f"{args.name}.png", dpi=80)
    return 0


if __name__ == "__main__":
    sys.exit(main())
