"""Anomalies with known truth: ROC AUC per kind and per score of ``specclip anomalies``, against an
IsolationForest on the raw (preprocessed) spectra.

    python bench/anomaly_injection.py RUN --dr10 DR10_STORE [--draws 10] [-o bench/results/anomaly_injection.md]

RUN is a finished run with a CLIP-pr align stage on gaia_xp + lamost_lrs (the quickstart: XP real,
LAMOST-like SIMULATED). DR10_STORE holds real LAMOST DR10 spectra with LASP teff, e.g.::

    specclip data ingest lamost ../shared/data/lamost-dr10/spectra -o dr10.zarr \\
        --labels ../shared/data/lamost-dr10/labels.csv --id-column obsid

Kinds, each injected into the held-out (test split) pairs at 1% (12 stars among ~1,180) per draw:

- ``swapped``: the LAMOST spectra of 6 pairs of stars exchanged (a cross-match error);
- ``composite``: an unresolved binary: star A plus star B (another held-out star) shifted by a radial
  velocity difference of 50-200 km/s, light ratio r ~ U(0.3, 1): LAMOST (f_A + r f_B') / (1 + r) on the
  continuum-normalised flux, XP (x_A + r x_B) / (1 + r) renormalised by its median;
- ``emission``: Gaussian emission lines added to the LAMOST spectrum (H-beta, H-gamma, H-delta; [O III]
  5007 half the time), peak 0.3-1.5 x continuum, sigma 2.3 A (2 A intrinsic with LAMOST's resolution);
  the XP spectrum unchanged (as for an active star or an emission-line object);
- ``hot_real``: real DR10 spectra with LASP Teff > 8000 K (no XP spectrum), among the simulated held-out
  pairs; and, as a fair comparison that has no simulated-versus-real gap, ``hot_real`` against real DR10
  spectra with Teff < 7000 K (``vs cool real``).

A star's scores depend only on its own spectra and the training reference, never on the other stars
scored with it, so every injected star of every draw is scored in one call; each draw's AUC compares its
12 stars with the untouched held-out stars (for ``vs cool real``: with 1,179 cool real ones drawn at
random). The table gives the mean and standard deviation over draws. The IsolationForest (scikit-learn,
200 trees) is fitted on the same training rows as the reference: ``if_paired`` on XP and LAMOST flux side
by side (paired stars only), ``if_lamost`` on LAMOST flux alone (every star, so it also scores the
real DR10 stars, which have no XP spectrum).
"""

from __future__ import annotations

import argparse
import csv
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score

from specclip_core.saved_alignment import load_alignment
from specclip_core.anomaly.find import SEED, find_anomalies
from specclip_core.components import get_modality
from specclip_core.data.splits import split_rows
from specclip_core.data.store import SpectralStore
from specclip_core.interfaces import Spectra
from specclip_core.threads import use_threads

HERE = Path(__file__).resolve().parent
XP, LAMOST = "gaia_xp", "lamost_lrs"
C_KMS = 299792.458
PER_DRAW = 12
LINES = (4861.33, 4340.47, 4101.74)
OIII = 5006.84


def normalised_stats(flux: np.ndarray, mask: np.ndarray) -> np.ndarray:
    good = ~mask
    count = good.sum(1).clip(1)
    mean = np.where(good, flux, 0).sum(1) / count
    std = np.sqrt(np.where(good, (flux - mean[:, None]) ** 2, 0).sum(1) / count)
    return np.stack([mean, std], 1).astype(np.float32)


def composite(xp: dict, lamost: dict, a: int, b: int, ratio: float, dv: float, wavelength: np.ndarray) -> tuple[dict, dict]:
    shifted = np.interp(wavelength, wavelength * (1 + dv / C_KMS), lamost["flux"][b])
    flux_l = (lamost["flux"][a] + ratio * shifted) / (1 + ratio)
    mask_l = lamost["mask"][a] | lamost["mask"][b]
    flux_x = (xp["flux"][a] + ratio * xp["flux"][b]) / (1 + ratio)
    flux_x = flux_x / np.median(flux_x[~xp["mask"][a]])
    return (
        {"flux": flux_x, "ivar": xp["ivar"][a], "mask": xp["mask"][a]},
        {"flux": flux_l, "ivar": np.where(mask_l, 0, lamost["ivar"][a]), "mask": mask_l},
    )


def emission(lamost: dict, a: int, rng: np.random.Generator, wavelength: np.ndarray) -> dict:
    centres = list(LINES) + ([OIII] if rng.random() < 0.5 else [])
    added = sum(rng.uniform(0.3, 1.5) * np.exp(-0.5 * ((wavelength - c) / 2.3) ** 2) for c in centres)
    return {"flux": lamost["flux"][a] + added, "ivar": lamost["ivar"][a], "mask": lamost["mask"][a]}


def injected_rows(store: SpectralStore, dr10: SpectralStore, draws: int, seed: int):
    """Every row to score: (kind, draw, id, XP arrays or None, LAMOST arrays)."""
    rng = np.random.default_rng(seed)
    test = split_rows(store.ids, "test")
    xp, lamost = store.read(XP, test), store.read(LAMOST, test)
    ids = store.ids[test]
    wavelength = store.wavelength(LAMOST)
    rows = [("normal", -1, ids[i], {k: xp[k][i] for k in ("flux", "ivar", "mask")}, {k: lamost[k][i] for k in ("flux", "ivar", "mask")}) for i in range(len(test))]
    for draw in range(draws):
        chosen = rng.choice(len(test), PER_DRAW, replace=False)
        for a, b in zip(chosen[0::2], chosen[1::2], strict=True):
            for one, other in ((a, b), (b, a)):
                rows.append(("swapped", draw, f"swap{draw}-{ids[one]}", {k: xp[k][one] for k in ("flux", "ivar", "mask")}, {k: lamost[k][other] for k in ("flux", "ivar", "mask")}))
        for a in rng.choice(len(test), PER_DRAW, replace=False):
            b = int(rng.choice(np.delete(np.arange(len(test)), a)))
            x, l = composite(xp, lamost, a, b, rng.uniform(0.3, 1.0), rng.choice([-1, 1]) * rng.uniform(50, 200), wavelength)
            rows.append(("composite", draw, f"bin{draw}-{ids[a]}", x, l))
        for a in rng.choice(len(test), PER_DRAW, replace=False):
            rows.append(("emission", draw, f"emis{draw}-{ids[a]}", {k: xp[k][a] for k in ("flux", "ivar", "mask")}, emission(lamost, a, rng, wavelength)))
    teff = dr10.labels(["teff"])["teff"]
    real = dr10.read(LAMOST)
    hot, cool = np.flatnonzero(teff > 8000), np.flatnonzero(teff < 7000)
    for row in hot:
        rows.append(("hot_real", -1, f"dr10-{dr10.ids[row]}", None, {k: real[k][row] for k in ("flux", "ivar", "mask")}))
    for row in cool:
        rows.append(("cool_real", -1, f"dr10-{dr10.ids[row]}", None, {k: real[k][row] for k in ("flux", "ivar", "mask")}))
    return rows


def write_store(path: Path, rows) -> SpectralStore:
    n_xp = get_modality(XP).n_pixels
    absent = {"flux": np.zeros(n_xp, np.float32), "ivar": np.zeros(n_xp, np.float32), "mask": np.ones(n_xp, bool)}
    spectra = {}
    ids = np.array([r[2] for r in rows])
    for name, index in ((XP, 3), (LAMOST, 4)):
        parts = [r[index] if r[index] is not None else absent for r in rows]
        flux = np.stack([p["flux"] for p in parts]).astype(np.float32)
        mask = np.stack([p["mask"] for p in parts])
        stats = normalised_stats(flux, mask)
        spectra[name] = Spectra(get_modality(name).wavelength, flux, np.stack([p["ivar"] for p in parts]), mask, ids, stats=stats)
    with SpectralStore.build(path, {m: get_modality(m) for m in (XP, LAMOST)}, {"kind": "str", "draw": "int"}) as store:
        store.append(ids, spectra, {"kind": np.array([r[0] for r in rows]), "draw": np.array([r[1] for r in rows])})
    return SpectralStore.open(path)


def isolation_forests(train: SpectralStore, scored: SpectralStore, n_reference: int) -> dict[str, np.ndarray]:
    """-score_samples of IsolationForests fitted on the reference rows: ``if_paired`` on XP and LAMOST
    flux side by side (NaN for stars without XP), ``if_lamost`` on LAMOST flux alone (every star)."""
    rows = np.sort(np.random.default_rng(SEED).choice(split_rows(train.ids, "train"), size=n_reference, replace=False))
    fit_xp, fit_l = train.read(XP, rows)["flux"], train.read(LAMOST, rows)["flux"]
    xp, lamost = scored.read(XP), scored.read(LAMOST)
    paired = ~xp["mask"].all(1)
    both = IsolationForest(n_estimators=200, random_state=0).fit(np.hstack([fit_xp, fit_l]))
    alone = IsolationForest(n_estimators=200, random_state=0).fit(fit_l)
    out = {"if_paired": np.full(len(scored), np.nan), "if_lamost": -alone.score_samples(lamost["flux"])}
    out["if_paired"][paired] = -both.score_samples(np.hstack([xp["flux"], lamost["flux"]])[paired])
    return out


def auc_table(table: dict[str, np.ndarray], scores: list[str], draws: int, seed: int) -> dict[tuple[str, str], list[float]]:
    kind, draw = table["kind"], table["draw"]
    normal = kind == "normal"
    rng = np.random.default_rng(seed + 1)
    hot, cool = np.flatnonzero(kind == "hot_real"), np.flatnonzero(kind == "cool_real")
    out: dict[tuple[str, str], list[float]] = {}
    for name in scores:
        values = table[name]
        for k in ("swapped", "composite", "emission"):
            for d in range(draws):
                positive = (kind == k) & (draw == d)
                out.setdefault((k, name), []).append(_auc(values, positive, normal))
        for _ in range(draws):
            picked = rng.choice(hot, PER_DRAW, replace=False)
            positive = np.isin(np.arange(len(kind)), picked)
            out.setdefault(("hot_real", name), []).append(_auc(values, positive, normal))
            negative = np.isin(np.arange(len(kind)), rng.choice(cool, min(normal.sum(), len(cool)), replace=False))
            out.setdefault(("hot_real vs cool real", name), []).append(_auc(values, positive, negative))
    return out


def _auc(values: np.ndarray, positive: np.ndarray, negative: np.ndarray) -> float:
    chosen = positive | negative
    finite = np.isfinite(values[chosen])
    if finite.sum() < chosen.sum() or not positive.any():
        return float("nan")
    return float(roc_auc_score(positive[chosen], values[chosen]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run")
    parser.add_argument("--dr10", required=True, help="a store of real LAMOST DR10 spectra with teff")
    parser.add_argument("--draws", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("-o", "--output", default=str(HERE / "results" / "anomaly_injection.md"))
    args = parser.parse_args()
    use_threads(args.threads)
    started = time.perf_counter()
    alignment = load_alignment(args.run, reconstruction=True, source=XP, target=LAMOST)
    train = alignment.training_store()
    work = Path(tempfile.mkdtemp(prefix="anomaly-injection-"))
    try:
        rows = injected_rows(train, SpectralStore.open(args.dr10), args.draws, args.seed)
        scored = write_store(work / "injected.zarr", rows)
        report = find_anomalies(args.run, [str(scored.path)], work / "ranked.csv", stage=alignment.stage, gallery=None, progress=False)
        with open(work / "ranked.csv") as handle:
            ranked = list(csv.DictReader(line for line in handle if not line.startswith("#")))
        by_row = sorted(ranked, key=lambda r: int(r["row"]))
        table = {name: np.array([float(r[name]) for r in by_row]) for name in report.scores + ["combined"]}
        labels = scored.labels(["kind", "draw"])
        table |= {"kind": labels["kind"], "draw": labels["draw"]}
        table |= isolation_forests(train, scored, report.reference_rows)
        mix = [r for r in rows if r[0] == "normal" or (r[1] == 0 and r[0] in ("swapped", "composite", "emission"))]
        mix += [r for r in rows if r[0] == "hot_real"][:PER_DRAW]
        gallery_store = write_store(work / "gallery.zarr", mix)
        gallery = Path(args.output).with_name("anomaly_injection_gallery.png")
        find_anomalies(args.run, [str(gallery_store.path)], work / "gallery.csv", stage=alignment.stage, gallery=gallery, top=20, progress=False)
        with open(work / "gallery.csv") as handle:
            top = [r for r in csv.DictReader(line for line in handle if not line.startswith("#"))][:20]
        kinds = dict(zip(gallery_store.ids, gallery_store.labels(["kind"])["kind"], strict=True))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    columns = ["combined"] + report.scores + ["if_paired", "if_lamost"]
    aucs = auc_table(table, columns, args.draws, args.seed)
    write_report(Path(args.output), args, alignment, report, table, aucs, columns, top, kinds, gallery, time.perf_counter() - started)


def write_report(path, args, alignment, report, table, aucs, columns, top, kinds, gallery, seconds) -> None:
    kinds_order = ["swapped", "composite", "emission", "hot_real", "hot_real vs cool real"]
    counts = {k: int((table["kind"] == k).sum()) for k in ("normal", "swapped", "composite", "emission", "hot_real", "cool_real")}
    lines = [
        "# Anomalies with known truth: ROC AUC per kind and per score",
        "",
        f"Written by `bench/anomaly_injection.py` on {time.strftime('%Y-%m-%d')}, {platform.node()}, in {seconds:.0f} s. "
        f"Model: run `{alignment.run.name()}`, stage `{alignment.stage}` (trained on {alignment.trained_on()}). "
        f"Reference: {report.reference_rows} training rows. Held-out pairs: {counts['normal']} (XP real, LAMOST **simulated**). "
        f"Injected at 1% ({PER_DRAW} stars) per draw, {args.draws} draws: swapped {counts['swapped']}, composite {counts['composite']}, "
        f"emission {counts['emission']} stars in all; real DR10: {counts['hot_real']} with Teff > 8000 K, {counts['cool_real']} with Teff < 7000 K. "
        "How each kind is made: the script's docstring.",
        "",
        "AUC: mean (standard deviation) over draws; each draw: its 12 stars against the untouched held-out stars. "
        "`hot_real` rows have no XP spectrum, so only the LAMOST in-modal scores (and the combined one) apply (n/a elsewhere). "
        "`hot_real` against the held-out pairs mixes two things: the stars are hot, and they are real where the held-out LAMOST spectra are simulated; "
        "`hot_real vs cool real` compares real with real.",
        "",
        "| kind | " + " | ".join(f"`{c}`" for c in columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for kind in kinds_order:
        cells = []
        for column in columns:
            values = np.array(aucs[(kind, column)])
            cells.append("n/a" if np.isnan(values).all() else f"{np.nanmean(values):.3f} ({np.nanstd(values):.3f})")
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Gallery of the top 20 of one 1% mix (draw 0 of each kind, and {PER_DRAW} hot real stars, among the held-out pairs): "
        f"[{gallery.name}]({gallery.name}). Their kinds, in rank order: "
        + ", ".join(f"{r['rank']}. {kinds.get(r['id'], '?')}" for r in top)
        + ".",
        "",
    ]
    path.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
