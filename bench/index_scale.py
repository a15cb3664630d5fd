"""Index scale: build time, memory, ms per query and recall@10 of flat, IVF-flat, IVF-PQ and HNSW indexes.

    python bench/index_scale.py CATALOGUE [--sizes 100000 1000000] [--width W] [--builds NAME ...] [--nlist N]
        [--queries 1000] [--recall-queries 1000] [--threads 1] [--work DIR] [-o bench/results/index_scale.md]

Each run adds its rows to ``index_scale.json`` beside the output (replacing its own earlier ones) and
rewrites the table from all of them, followed by ``index_scale_notes.md`` when there is one; so sizes
and widths can be run one at a time. ``--width W`` takes the first W dimensions of the real embeddings
(a prefix: meaningful for an ordered model). The vectors are written to a catalogue in blocks and
never held whole (1e7 x 128 is 5 GB).

The vectors are made from the real embeddings held by CATALOGUE (a catalogue ``specclip embed``
wrote). Each synthetic vector is ``unit(a + t (b - a) + sigma g)``: ``a`` a random real embedding (as
a unit vector), ``b`` one of a's 10 nearest real embeddings, ``t ~ U(0, 1)``, ``g`` a standard
Gaussian vector divided by sqrt(width), and ``sigma`` a tenth of the median distance from a real
embedding to its nearest other one. So the vectors spread along the edges of the real embeddings'
neighbour graph, with a little jitter, rather than piling up as noisy copies of a few thousand
points. The queries are further vectors made the same way (not in the index).

bench/results/index_scale.md used the 2,224 real LAMOST DR10 spectra of ../shared/data/lamost-dr10,
embedded by the small masked transformer (128 wide) pretrained on them for 3 epochs::

    specclip run lamost-small --run-dir RUN --only ingest pretrain --set stages.pretrain.train.epochs=3 \
        --set settings.lamost_dr10=../shared/data/lamost-dr10 --set settings.lamost_dr8_repeats=../shared/data/lamost-dr8-repeats
    specclip embed RUN RUN/ingest/store.zarr -o lamost.zarr
    python bench/index_scale.py lamost.zarr --sizes 100000

For each size the vectors are written to a catalogue and indexed by the product's own
``build_index`` (the card gives build time, bytes and recall at build); then, on the held-out
queries, ms per query (all queries in one call, and one query per call) and recall@10 against the
exact answers (the product's ``recall_at_k``: a returned vector counts when its cosine reaches the
10th exact one less 1e-6, since float32 cannot order closer cosines near 1), for a sweep of
``nprobe`` (IVF-PQ) and ``efSearch`` (HNSW). Memory: the index's bytes (its serialised size, which
is what these kinds hold in memory) and the growth of the process's peak resident memory while
building (``VmHWM``, reset before each build).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

from specclip_core.retrieval.catalogue import Catalogue
from specclip_core.retrieval.index import TIE, build_index, exact_neighbours, load_index, recall_at_k
from specclip_core.retrieval.search import unit
from specclip_core.threads import use_threads

HERE = Path(__file__).resolve().parent


def synthetic(base: np.ndarray, n: int, seed: int):
    """``n`` unit vectors along the edges of the real embeddings' 10-nearest-neighbour graph, jittered,
    in blocks of up to 100,000 (so a catalogue of 1e7 is written without holding it)."""
    rng = np.random.default_rng(seed)
    base = unit(base)
    flat = faiss.IndexFlatIP(base.shape[1])
    flat.add(base)
    scores, neighbours = flat.search(base, 11)
    nearest = np.sqrt(np.maximum(2 - 2 * scores[:, 1], 0))
    sigma = 0.1 * float(np.median(nearest))
    for start in range(0, n, 100_000):
        k = min(100_000, n - start)
        a = rng.integers(len(base), size=k)
        b = neighbours[a, rng.integers(1, 11, size=k)]
        t = rng.uniform(0, 1, size=(k, 1)).astype(np.float32)
        jitter = rng.normal(0, sigma / np.sqrt(base.shape[1]), size=(k, base.shape[1])).astype(np.float32)
        yield unit(base[a] + t * (base[b] - base[a]) + jitter)


def shape_of(base: np.ndarray) -> str:
    """How spread the real embeddings are: median cosine of two, median nearest-neighbour distance, variance in the first PCs."""
    units = unit(base)
    cosines = units @ units.T
    pairs = cosines[np.triu_indices(len(units), 1)]
    nearest = np.sqrt(np.maximum(2 - 2 * np.sort(cosines, axis=1)[:, -2], 0))
    variance = np.linalg.eigvalsh(np.cov(units.T))[::-1]
    share = np.cumsum(variance) / variance.sum()
    return (
        f"median cosine of two real embeddings {np.median(pairs):.4f} (least {pairs.min():.3f}); median distance to the nearest "
        f"other {np.median(nearest):.4f}; variance in the first 1 / 5 / 20 principal components "
        f"{share[0]:.1%} / {share[min(4, len(share) - 1)]:.1%} / {share[min(19, len(share) - 1)]:.1%}"
    )


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def write_catalogue(path: Path, blocks, n: int, width: int, manifest: dict) -> None:
    catalogue = Catalogue.create(path, width, {}, manifest | {"count": n}, building=False)
    start = 0
    for block in blocks:
        ids = np.char.mod("synthetic-%d", np.arange(start, start + len(block)))
        catalogue.append({"ids": ids, "source": np.full(len(block), "synthetic"), "embedding": block})
        start += len(block)


def peak_rss_reset() -> None:
    Path("/proc/self/clear_refs").write_text("5")


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def current_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def timed(index, queries: np.ndarray, k: int = 10) -> tuple[np.ndarray, float, float]:
    started = time.perf_counter()
    _, found = index.search(queries, k)
    batch_ms = 1000 * (time.perf_counter() - started) / len(queries)
    single = queries[:200]
    started = time.perf_counter()
    for row in range(len(single)):
        index.search(single[row : row + 1], k)
    single_ms = 1000 * (time.perf_counter() - started) / len(single)
    return found, batch_ms, single_ms


BUILDS = {
    "flat": ({"kind": "flat"}, None, []),
    "ivfflat": ({"kind": "ivfflat"}, "nprobe", [8, 32, 128]),
    "ivfpq m=w/8": ({"kind": "ivfpq"}, "nprobe", [8, 16, 64]),
    "ivfpq m=w/4": ({"kind": "ivfpq", "m_per": 4}, "nprobe", [8, 16, 64]),
    "ivfpq m=w/8 + sq8": ({"kind": "ivfpq", "refine": "sq8"}, "nprobe", [8, 16, 64]),
    "hnsw M=32": ({"kind": "hnsw", "hnsw_m": 32}, "efSearch", [16, 32, 64, 128]),
}


def set_knob(index, knob: str | None, value) -> None:
    if knob == "nprobe":
        faiss.extract_index_ivf(index).nprobe = value
    elif knob == "efSearch":
        index.hnsw.efSearch = value


def bench_size(base: np.ndarray, n: int, args: argparse.Namespace, work: Path, manifest: dict) -> tuple[list[dict], float]:
    width = base.shape[1]
    queries = np.concatenate(list(synthetic(base, args.queries, seed=2)))
    path = work / f"synthetic-{n}x{width}.zarr"
    started = time.perf_counter()
    write_catalogue(path, synthetic(base, n, seed=1), n, width, manifest)
    print(f"{n} x {width} vectors written in {time.perf_counter() - started:.0f} s", flush=True)
    catalogue = Catalogue.open(path)
    started = time.perf_counter()
    exact = exact_neighbours(catalogue, queries, 10)
    print(f"exact answers in {time.perf_counter() - started:.0f} s", flush=True)
    outside = np.full(len(queries), -1)  # the queries are no rows of the catalogue
    rows = []
    for name in args.builds:
        settings, knob, sweep = BUILDS[name]
        settings = dict(settings)
        if "m_per" in settings:
            settings["m"] = width // settings.pop("m_per")
        if settings["kind"] in ("ivfflat", "ivfpq") and args.nlist:
            settings["nlist"] = args.nlist
        target = work / f"{name.replace(' ', '_').replace('/', '').replace('+', '')}-{n}.index"
        shutil.rmtree(target, ignore_errors=True)
        before = current_rss_mb()
        peak_rss_reset()
        card = build_index(path, target, recall_queries=min(args.recall_queries, n), **settings)
        build_peak = peak_rss_mb() - before
        index = load_index(target).faiss_index
        for value in sweep or [None]:
            set_knob(index, knob, value)
            found, batch_ms, single_ms = timed(index, queries)
            rows.append(
                {
                    "n": n,
                    "width": width,
                    "index": name,
                    "parameters": {**card["parameters"], **({knob: value} if knob else {})},
                    "build_s": card["build_seconds"],
                    "bytes": card["index_bytes"],
                    "build_peak_mb": build_peak,
                    "batch_ms": batch_ms,
                    "single_ms": single_ms,
                    "recall": recall_at_k(catalogue, queries, outside, found, exact),
                    "card_recall": card["recall@10"],
                    "card_queries": card["recall_queries"],
                    "threads": faiss.omp_get_max_threads(),
                    "load": os.getloadavg()[0],
                }
            )
            print(rows[-1], flush=True)
        del index
        shutil.rmtree(target)
    return rows, float(np.median(exact[0][:, -1]))


def key(row: dict) -> tuple:
    return row["n"], row["width"], row["index"], json.dumps(row["parameters"], sort_keys=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("catalogue", help="a catalogue of real embeddings (specclip embed)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--width", type=int, help="use only the first WIDTH dimensions of the real embeddings (a prefix)")
    parser.add_argument("--builds", nargs="+", choices=list(BUILDS), default=list(BUILDS))
    parser.add_argument("--nlist", type=int, help="inverted lists of the IVF kinds (default: the product's, 4 sqrt(N))")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--recall-queries", type=int, default=1000, help="catalogue rows the card's recall is measured on")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--work", help="directory for the synthetic catalogues (default: a temporary one)")
    parser.add_argument("-o", "--output", default=str(HERE / "results" / "index_scale.md"))
    args = parser.parse_args()
    threads = use_threads(args.threads)
    faiss.omp_set_num_threads(threads)
    source = Catalogue.open(args.catalogue)
    base = source.embeddings()
    if args.width:
        base = np.ascontiguousarray(base[:, : args.width])
    manifest = {**source.manifest, "synthetic_from": str(source.path)}
    store = Path(args.output).with_suffix(".json")
    saved = json.loads(store.read_text()) if store.exists() else {"rows": [], "tenth": {}, "shape": {}}
    saved["shape"][str(base.shape[1])] = shape_of(base)
    saved.setdefault("base", {})[str(base.shape[1])] = base_text(source, args.width)
    with tempfile.TemporaryDirectory(prefix="index-scale-", dir=args.work) as work:
        for n in args.sizes:
            measured, tenth = bench_size(base, n, args, Path(work), manifest)
            fresh = {key(r) for r in measured}
            saved["rows"] = [r for r in saved["rows"] if key(r) not in fresh] + measured
            saved["tenth"][f"{n}x{base.shape[1]}"] = tenth
            store.write_text(json.dumps(saved, indent=1))
            write_table(saved, args)


def base_text(source: Catalogue, width: int | None) -> str:
    m = source.manifest
    prefix = f"the first {width} of " if width else ""
    return (
        f"{prefix}{source.width}-wide embeddings of {len(source)} {m.get('modality')} spectra by stage `{m.get('stage')}` "
        f"({m.get('embedder')}, part {m.get('part')}) of run `{m.get('run_name')}` ({m.get('run')})"
    )


def write_table(saved: dict, args: argparse.Namespace) -> None:
    rows = sorted(saved["rows"], key=lambda r: (-r["width"], r["n"], list(BUILDS).index(r["index"])))
    lines = [
        "# Index scale: flat, IVF-flat, IVF-PQ and HNSW on synthetic vectors made from real embeddings",
        "",
        f"Written by `bench/index_scale.py` (last on {time.strftime('%Y-%m-%d')}), machine {platform.node()}: {cpu_model()}, "
        f"{os.cpu_count()} cores shared with other engineers' jobs (the 1-minute load average at each row is given), "
        f"faiss {faiss.__version__}.",
        "",
        "Bases, by the width of the rows below: "
        + "; ".join(f"**{w}**: {text}" for w, text in sorted(saved["base"].items(), key=lambda item: -int(item[0])))
        + ". Vectors: `unit(a + t (b - a) + sigma g)` with `a` a random real embedding, `b` one of its 10 nearest, "
        "`t ~ U(0,1)`, `sigma` a tenth of the median nearest-neighbour distance (see the script's docstring); "
        "for a narrower width W the same is done with the first W dimensions of the real embeddings (`--width`). "
        f"Queries: {args.queries} held-out vectors made the same way; recall@10 against exact (flat) search.",
        "",
        "The real embeddings: "
        + "; ".join(f"at width {w}: {text}" for w, text in sorted(saved["shape"].items(), key=lambda item: -int(item[0])))
        + ". Median cosine of the synthetic vectors' 10th nearest neighbour: "
        + ", ".join(f"{size} {value:.6f}" for size, value in saved["tenth"].items())
        + f"; returned vectors within {TIE:g} of it count as right (float32 ties).",
        "",
        "| N | width | index | parameters | build (s) | index MB | build peak RSS growth (MB) | threads | load "
        "| ms/query, batch of queries | ms/query, one at a time | recall@10 | recall@10 on the card (queries) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        parameters = ", ".join(f"{k} {v}" for k, v in r["parameters"].items()) or "exact"
        lines.append(
            f"| {r['n']:,} | {r['width']} | {r['index']} | {parameters} | {r['build_s']:.1f} | {r['bytes'] / 1e6:.1f} | "
            f"{r['build_peak_mb']:.0f} | {r['threads']} | {r['load']:.1f} | {r['batch_ms']:.3f} | {r['single_ms']:.3f} | "
            f"{r['recall']:.3f} | {r['card_recall']:.3f} ({r['card_queries']}) |"
        )
    lines += [
        "",
        "The card's recall (same definition) is measured at build on rows of the catalogue itself (their own row left out) with the "
        "parameters the index was built with (the defaults: nprobe = max(8, nlist/20), efSearch 64); the table's recall is on "
        "the held-out queries with each row's parameters. ms/query: all queries in one search call (using the row's threads), "
        "and 200 queries one call each. The rows are kept in index_scale.json; each run of the script replaces its own rows.",
    ]
    notes = Path(args.output).with_name(Path(args.output).stem + "_notes.md")
    if notes.exists():
        lines += ["", notes.read_text().rstrip()]
    Path(args.output).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
