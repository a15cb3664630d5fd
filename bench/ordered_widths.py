"""Ordered against plain embeddings truncated to 8, 16, ..., 256 dimensions, on the quickstart data.

Two finished runs of the quickstart's CLIP-pr (same data, seed and training), one aligned with
``ordered: {widths: [8, 16, 32, 64, 128, 256]}`` (spec clip-pr-ordered), one plain (spec quickstart).
For each width w, the first w dimensions of each one's shared embedding (re-normalised for cosine),
and, as a third column, the plain embedding's first w principal components (PCA fitted on the train
split's embeddings of both modalities together, so that one projection serves cross-modal search):

- cross-modal retrieval on the held-out test pairs (split_rows(ids, "test")): top-1 and top-10 of the
  true counterpart among every test star, XP -> LAMOST and LAMOST -> XP;
- head precision: one joint MLP (scikit-learn, standardised inputs and labels) per modality and
  width, trained on the train split, predicting teff, logg and fe_h; robust sigma (Tukey biweight
  scale of the residuals) on the test split, rows with every label finite.

Then a compact index: the ordered run's LAMOST embeddings of every star, embedded at --width 32 and
at the full width with `specclip embed`, indexed with `specclip index build` (flat and hnsw), and
searched with the XP embeddings of the test stars at the same width: index bytes, the card's
recall@10 against exact search, cross-modal top-1 / top-10 of the true counterpart among all stars.

The LAMOST side of the data is SIMULATED (specclip-sim); every table and plot says so.

Usage (repository root): python bench/ordered_widths.py --ordered /work/runs/iob --plain /work/runs/quickstart
  -> bench/results/ordered_widths.md, .json, .png (work files under --work, default /tmp/ordered_widths)
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.decomposition import PCA
from sklearn.neural_network import MLPRegressor
from sklearn.preprocessing import StandardScaler

from specclip_core.align.embedder import AlignedEmbedder
from specclip_core.data.splits import split_rows
from specclip_core.data.store import SpectralStore
from specclip_core.heads.metrics import robust_sigma
from specclip_core.retrieval.catalogue import Catalogue
from specclip_core.retrieval.index import load_index
from specclip_core.retrieval.search import retrieval_accuracy

WIDTHS = (8, 16, 32, 64, 128, 256)
LABELS = ("teff", "logg", "fe_h")
UNITS = {"teff": "K", "logg": "dex", "fe_h": "dex"}
XP, LAMOST = "gaia_xp", "lamost_lrs"
NAMES = {XP: "Gaia XP (real)", LAMOST: "LAMOST (simulated)"}
OUTPUT = Path("bench/results/ordered_widths")
COMPACT = 32


def shared(run: Path, store: SpectralStore, modality: str) -> np.ndarray:
    embedder = AlignedEmbedder.load(run / "align" / "encoders" / modality)
    data = store.read(modality)
    return embedder.embed(data["flux"], data["stats"], part="shared")


def head_sigmas(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray) -> dict[str, float]:
    scale_x, scale_y = StandardScaler().fit(train_x), StandardScaler().fit(train_y)
    mlp = MLPRegressor(hidden_layer_sizes=(128, 128), learning_rate_init=1e-3, early_stopping=True, max_iter=300, random_state=0)
    mlp.fit(scale_x.transform(train_x), scale_y.transform(train_y))
    predicted = scale_y.inverse_transform(mlp.predict(scale_x.transform(test_x)))
    return {label: robust_sigma(predicted[:, i] - test_y[:, i]) for i, label in enumerate(LABELS)}


def evaluate(embeddings: dict[str, np.ndarray], store: SpectralStore, train: np.ndarray, test: np.ndarray, width: int) -> dict:
    """Retrieval and head sigmas of ``width``-wide embeddings (rows of the whole store)."""
    table = store.labels(list(LABELS))
    y = np.stack([table[label] for label in LABELS], axis=1)
    good = np.isfinite(y).all(axis=1)
    fit, held = train[good[train]], test[good[test]]
    out = {
        "retrieval": {
            f"{a}->{b}": retrieval_accuracy(embeddings[a][test, :width], embeddings[b][test, :width]) for a, b in ((XP, LAMOST), (LAMOST, XP))
        },
        "sigma": {m: head_sigmas(embeddings[m][fit, :width], y[fit], embeddings[m][held, :width], y[held]) for m in (XP, LAMOST)},
    }
    out["n_test_pairs"], out["n_head_train"], out["n_head_test"] = int(len(test)), int(len(fit)), int(len(held))
    return out


def pca_of(embeddings: dict[str, np.ndarray], train: np.ndarray) -> dict[str, np.ndarray]:
    """Both modalities' embeddings in the principal axes of their train-split rows together."""
    pca = PCA(random_state=0).fit(np.concatenate([embeddings[m][train] for m in (XP, LAMOST)]))
    return {m: pca.transform(v) for m, v in embeddings.items()}


def specclip(*args: str) -> str:
    done = subprocess.run([str(Path(sys.executable).with_name("specclip")), *args, "--threads", "1"], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"specclip {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout.strip()


def compact_index(run: Path, store: SpectralStore, test: np.ndarray, work: Path) -> list[dict]:
    """Embed and index the ordered run's LAMOST stars at COMPACT and at full width; cross-modal search."""
    rows = []
    for width in (COMPACT, None):
        tag = f"w{width}" if width else "full"
        extra = ["--width", str(width)] if width else []
        catalogues = {}
        for modality in (XP, LAMOST):
            catalogues[modality] = work / f"{modality}-{tag}.zarr"
            specclip("embed", str(run), str(store.path), "-o", str(catalogues[modality]), "--modality", modality, "--overwrite", "--quiet", *extra)
        xp = Catalogue.open(catalogues[XP])
        queries = xp.embeddings(test)
        for kind in ("flat", "hnsw"):
            directory = work / f"lamost-{tag}-{kind}.index"
            specclip("index", "build", str(catalogues[LAMOST]), "-o", str(directory), "--kind", kind, "--overwrite")
            index = load_index(directory)
            started = time.perf_counter()
            _, found = index.search(queries, 10)
            ms = 1000 * (time.perf_counter() - started) / len(queries)
            truth = np.asarray(Catalogue.open(catalogues[LAMOST]).ids)[found]
            hit = truth == np.asarray(xp.ids)[test][:, None]
            card = index.card
            rows.append(
                {
                    "width": card["width"],
                    "prefix": card["catalogue"]["prefix"],
                    "kind": kind,
                    "rows": card["size"],
                    "index_bytes": card["index_bytes"],
                    "recall@10": card["recall@10"],
                    "xp_to_lamost_top1": float(hit[:, 0].mean()),
                    "xp_to_lamost_top10": float(hit.any(axis=1).mean()),
                    "ms_per_query": ms,
                    "queries": int(len(test)),
                }
            )
    return rows


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    styles = {"ordered": ("C0", "o", "-"), "plain": ("C3", "s", "--"), "plain + PCA": ("C2", "^", ":")}
    panels = [("retrieval", f"{XP}->{LAMOST}", "top1"), ("retrieval", f"{XP}->{LAMOST}", "top10"), ("retrieval", f"{LAMOST}->{XP}", "top10")]
    panels += [("sigma", XP, label) for label in LABELS] + [("sigma", LAMOST, label) for label in LABELS]
    fig, axes = plt.subplots(3, 3, figsize=(13, 11))
    for ax, (kind, key, metric) in zip(axes.flat, panels, strict=True):
        for name, (colour, marker, line) in styles.items():
            values = [results[name][str(w)][kind][key][metric] for w in WIDTHS]
            ax.plot(WIDTHS, values, color=colour, marker=marker, linestyle=line, label=name)
        ax.set_xscale("log", base=2)
        ax.set_xticks(WIDTHS, [str(w) for w in WIDTHS])
        ax.set_xlabel("embedding width (leading dimensions kept)")
        if kind == "retrieval":
            a, b = key.split("->")
            ax.set_title(f"{metric}: {NAMES[a]} -> {NAMES[b]}", fontsize=9)
            ax.set_ylabel(f"{metric} accuracy (test pairs)")
        else:
            ax.set_title(f"{metric} from {NAMES[key]} embedding", fontsize=9)
            ax.set_ylabel(f"robust sigma ({UNITS[metric]}), lower is better")
        ax.grid(alpha=0.3)
    axes.flat[0].legend()
    fig.suptitle("Quickstart CLIP-pr, ordered vs plain embedding by width (LAMOST spectra SIMULATED)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def fmt(value: float, digits: int) -> str:
    return f"{value:.{digits}f}"


def markdown(results: dict, compact: list[dict], args: argparse.Namespace) -> str:
    names = ("ordered", "plain", "plain + PCA")
    n = results["ordered"][str(WIDTHS[0])]
    lines = [
        "# Ordered vs plain embeddings by width (LAMOST side SIMULATED)",
        "",
        f"`python bench/ordered_widths.py --ordered {args.ordered} --plain {args.plain}` (`bench/ordered_widths.py`).",
        f"Ordered: spec `clip-pr-ordered` (the quickstart's CLIP-pr with `ordered: {{widths: {list(WIDTHS)}}}`), run {args.ordered}.",
        f"Plain: spec `quickstart`, run {args.plain}. Same data (12,000 stars: real Gaia XP, SIMULATED LAMOST-like spectra), seed and training.",
        "`plain + PCA`: the plain embedding's leading principal components (fitted on the train split, both modalities together).",
        f"Retrieval: {n['n_test_pairs']} held-out test pairs, the true counterpart among all of them.",
        f"Heads: a joint MLP (128, 128) per modality and width on the train split ({n['n_head_train']} stars with every label), "
        f"robust sigma (biweight scale) on the test split ({n['n_head_test']} stars).",
        "",
        "## Cross-modal retrieval (LAMOST side simulated)",
        "",
        "| width | " + " | ".join(f"{d} {k} {name}" for d in ("XP->LAMOST", "LAMOST->XP") for k in ("top-1", "top-10") for name in names) + " |",
        "|---|" + "---|" * 12,
    ]
    for w in WIDTHS:
        cells = [
            fmt(results[name][str(w)]["retrieval"][d][k], 3)
            for d in (f"{XP}->{LAMOST}", f"{LAMOST}->{XP}")
            for k in ("top1", "top10")
            for name in names
        ]
        lines.append(f"| {w} | " + " | ".join(cells) + " |")
    for modality in (XP, LAMOST):
        lines += [
            "",
            f"## Head precision from the {NAMES[modality]} embedding: robust sigma on the test split (lower is better)",
            "",
            "| width | " + " | ".join(f"{label} ({UNITS[label]}) {name}" for label in LABELS for name in names) + " |",
            "|---|" + "---|" * 9,
        ]
        for w in WIDTHS:
            cells = [fmt(results[name][str(w)]["sigma"][modality][label], 0 if label == "teff" else 3) for label in LABELS for name in names]
            lines.append(f"| {w} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## A compact index from a prefix (ordered run, LAMOST side simulated)",
        "",
        f"Every one of the 12,000 stars' LAMOST (simulated) embeddings, `specclip embed --width {COMPACT}` and full width, "
        f"`specclip index build --kind flat|hnsw`; queries: the XP embeddings of the {compact[0]['queries']} test stars at the same width, "
        "the true counterpart among all 12,000.",
        "",
        "| width | kind | index bytes | card recall@10 vs exact | XP->LAMOST top-1 | top-10 | ms/query |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in compact:
        lines.append(
            f"| {row['width']} | {row['kind']} | {row['index_bytes']:,} | {row['recall@10']:.3f} | {row['xp_to_lamost_top1']:.3f} | "
            f"{row['xp_to_lamost_top10']:.3f} | {row['ms_per_query']:.3f} |"
        )
    lines += ["", f"![metrics against width]({OUTPUT.name}.png)", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ordered", type=Path, required=True, help="the finished clip-pr-ordered run")
    parser.add_argument("--plain", type=Path, required=True, help="the finished plain quickstart run (only read)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/ordered_widths"), help="catalogues and indexes of the compact-index part")
    args = parser.parse_args()
    results = {}
    for name, run in (("ordered", args.ordered), ("plain", args.plain)):
        store = SpectralStore.open(run / "simulate" / "store.zarr")
        train, test = split_rows(store.ids, "train"), split_rows(store.ids, "test")
        embeddings = {m: shared(run, store, m) for m in (XP, LAMOST)}
        variants = {name: embeddings} | ({"plain + PCA": pca_of(embeddings, train)} if name == "plain" else {})
        for variant, vectors in variants.items():
            results[variant] = {}
            for w in WIDTHS:
                started = time.perf_counter()
                results[variant][str(w)] = evaluate(vectors, store, train, test, w)
                print(f"{variant} width {w}: {json.dumps(results[variant][str(w)]['retrieval'])} ({time.perf_counter() - started:.0f} s)", flush=True)
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    store = SpectralStore.open(args.ordered / "simulate" / "store.zarr")
    compact = compact_index(args.ordered, store, split_rows(store.ids, "test"), args.work)
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.with_suffix(".json").write_text(json.dumps({"simulated": [LAMOST], "widths": results, "compact_index": compact}, indent=2))
    plot(results, OUTPUT.with_suffix(".png"))
    OUTPUT.with_suffix(".md").write_text(markdown(results, compact, args))
    print(f"wrote {OUTPUT}.md, .json, .png")


if __name__ == "__main__":
    main()
