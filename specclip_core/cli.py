"""The ``specclip`` command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from specclip_core.errors import SpecCLIPError


def _cmd_plugins(args: argparse.Namespace) -> None:
    from specclip_core.components import plugin_infos

    for info in plugin_infos():
        print(f"{info.name}  ({info.distribution} {info.version})")
        for kind, names in info.registers.items():
            print(f"    {kind}: {', '.join(names)}")


def _cmd_list(args: argparse.Namespace) -> None:
    from specclip_core.components import get_registry

    registry = get_registry()
    for kind in [args.kind] if args.kind else registry.kinds():
        print(f"{kind}:")
        for name in registry.names(kind):
            component = registry.get(kind, name)
            print(f"    {name:<24} {component.description}  [{registry.plugin_of(kind, name)}]")


def _cmd_specs(args: argparse.Namespace) -> None:
    from specclip_core.spec import registered_spec_sources

    for name, (path, distribution) in sorted(registered_spec_sources().items()):
        print(f"{name:<20} {distribution:<28} {path}")


def _cmd_validate(args: argparse.Namespace) -> int:
    from specclip_core.spec import load_spec

    overrides = _parse_set(args.set)
    failed = 0
    for item in args.specs:
        try:
            spec = load_spec(item, overrides)
        except SpecCLIPError as error:
            print(error, file=sys.stderr)
            failed += 1
        else:
            print(f"{item}: valid ({len(spec.stages)} stages: {', '.join(spec.stages)})")
    return 1 if failed else 0


def _cmd_schema(args: argparse.Namespace) -> None:
    from specclip_core.spec import json_schema

    text = json.dumps(json_schema(), indent=2)
    if args.output:
        Path(args.output).write_text(text)
    else:
        print(text)


CHUNK_HELP = "spectra read and preprocessed at a time (default 4096): memory stays about this many raw spectra, whatever the inputs' size"
SET_HELP = "override a spec field (YAML value), e.g. stages.pretrain.train.epochs=2 or settings.NAME=VALUE"


def _parse_set(items: list[str]) -> dict[str, Any]:
    out = {}
    for item in items:
        if "=" not in item:
            raise SpecCLIPError(f"--set expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        try:
            out[key] = yaml.safe_load(value)
        except yaml.YAMLError as error:
            raise SpecCLIPError(f"--set {key}: {value!r} is not a YAML value ({getattr(error, 'problem', None) or error}); quote a string, e.g. --set '{key}=\"{value}\"'") from None
    return out


def _cmd_run(args: argparse.Namespace) -> None:
    from specclip_core.runner import run_spec
    from specclip_core.spec import load_spec

    overrides = _parse_set(args.set) | ({"threads": args.threads} if args.threads else {})
    spec = load_spec(args.spec, overrides)
    run_spec(spec, args.run_dir, resume=args.resume, force=args.force, only=args.only, progress=not args.quiet)


def _cmd_evaluate(args: argparse.Namespace) -> None:
    from specclip_core.report.evaluation import evaluate_stages
    from specclip_core.rundir import RunDir

    run_dir = Path(args.run)
    stages = args.heads or list(RunDir(run_dir).finished_heads())
    if not stages:
        raise SpecCLIPError(f"{run_dir}: no finished heads stage to evaluate")
    result = evaluate_stages(run_dir, stages, args.labels, Path(args.output or run_dir / "evaluation"))
    print(result["table"])
    print(f"plots and metrics.json in {args.output or run_dir / 'evaluation'}")


def _cmd_report(args: argparse.Namespace) -> None:
    from specclip_core.rundir import SPEC, RunDir
    from specclip_core.spec import load_spec
    from specclip_core.stages.report import write

    run_dir = Path(args.run)
    spec = load_spec(run_dir / SPEC)
    stages = [name for name, stage in spec.stages.items() if stage.kind == "report"]
    if not stages:
        raise SpecCLIPError(f"{run_dir}: its spec has no report stage; add one (kind: report) naming the heads and align stages")
    for name in stages:
        text = write(run_dir, spec.stages[name].config, run_dir / name)
        print(text)
        print(f"written to {RunDir(run_dir).report(name)}")


def _cmd_predict(args: argparse.Namespace) -> None:
    from specclip_core.data.stream import DEFAULT_CHUNK
    from specclip_core.models import get_model
    from specclip_core.predict import predict_catalog
    from specclip_core.threads import use_threads

    use_threads(args.threads)
    if args.model:
        source, inputs = get_model(args.model).directory, args.inputs
    elif len(args.inputs) < 2:
        raise SpecCLIPError("predict takes RUN_DIR FILES... or --model NAME FILES...: give a run directory (or --model) and at least one input")
    else:
        source, inputs = args.inputs[0], args.inputs[1:]
    report = predict_catalog(source, inputs, args.output, heads=args.heads, progress=not args.quiet, chunk=args.chunk or DEFAULT_CHUNK, workers=args.workers, samples=args.samples)
    print(f"wrote {report.n_rows} rows ({', '.join(report.columns)}) to {report.output} in {report.seconds:.1f} s")
    if report.samples_output:
        print(f"wrote {args.samples} posterior samples per spectrum and label to {report.samples_output}")
    _print_rejected(report.rejected, f"{report.output}.rejected.csv")


def _print_rejected(rejected: list[tuple[str, str]], listed_in: str) -> None:
    if rejected:
        print(f"{len(rejected)} input(s) rejected (listed in {listed_in}):", file=sys.stderr)
        for item, reason in rejected[:20]:
            print(f"  {item}: {reason}", file=sys.stderr)


def _cmd_models_list(args: argparse.Namespace) -> None:
    from specclip_core.models import list_models

    models = list_models()
    for model in models:
        print(model.card.line())
    if not models:
        print("no model registered (a plugin ships models through the specclip_register_models hook)")


def _cmd_models_show(args: argparse.Namespace) -> None:
    from specclip_core.models import get_model

    model = get_model(args.name)
    print(f"# {model.directory}")
    print(model.card.model_dump_json(indent=2))


def _cmd_models_export(args: argparse.Namespace) -> None:
    from specclip_core.models import export_model

    card = export_model(args.run, args.output, args.name, heads=args.heads, description=args.description, spec=args.spec)
    print(f"exported model {card.name!r} ({card.modality}: {', '.join(card.labels)}; {len(card.files)} files) to {args.output}")


def _cmd_embed(args: argparse.Namespace) -> None:
    from specclip_core.data.stream import DEFAULT_CHUNK
    from specclip_core.retrieval.embed import embed_catalogue
    from specclip_core.threads import use_threads

    use_threads(args.threads)
    report = embed_catalogue(
        args.run, args.inputs, args.output, modality=args.modality, stage=args.stage, part=args.part, width=args.width,
        chunk=args.chunk or DEFAULT_CHUNK, resume=args.resume, overwrite=args.overwrite, progress=not args.quiet,
        split=args.split,
    )
    resumed = f" ({report.resumed_rows} of them from the interrupted run)" if report.resumed_rows else ""
    if report.rank:
        print(f"rank {report.rank}: embedded {report.n_rows} rows{resumed}; rank 0 merged every rank's rows into {report.output}")
        return
    prefix = " (a prefix of an ordered embedding)" if args.width else ""
    print(
        f"wrote {report.n_rows} {report.modality} embeddings{resumed}, {report.width} wide{prefix}, from stage {report.stage} "
        f"to {report.output} in {report.seconds:.1f} s"
    )
    _print_rejected(report.rejected, "the catalogue's manifest")


def _cmd_index_build(args: argparse.Namespace) -> None:
    from specclip_core.retrieval.index import build_index
    from specclip_core.threads import use_threads

    use_threads(args.threads)
    card = build_index(
        args.catalogue[0] if len(args.catalogue) == 1 else args.catalogue, args.output, kind=args.kind, nlist=args.nlist, m=args.m,
        nbits=args.nbits, nprobe=args.nprobe, hnsw_m=args.hnsw_m, ef_construction=args.ef_construction, ef_search=args.ef_search,
        train_rows=args.train_rows, refine=args.refine, k_factor=args.k_factor, recall_queries=args.recall_queries,
        overwrite=args.overwrite,
    )
    recall = "n/a" if card["recall@10"] is None else f"{card['recall@10']:.3f}"
    shards = f" in {len(card['shards'])} shards" if len(card["shards"]) > 1 else ""
    prefix = card["catalogue"].get("prefix")
    prefix = f" (the first {prefix['width']} of {prefix['of']} dimensions of an ordered embedding)" if prefix else ""
    print(
        f"{card['kind']} index{shards} of {card['size']} x {card['width']}{prefix} ({card['parameters'] or 'exact'}) "
        f"in {card['build_seconds']:.1f} s, {card['index_bytes'] / 1e6:.1f} MB; recall@10 against exact {recall} "
        f"on {card['recall_queries']} queries, {card['ms_per_query']:.3f} ms per query; card: {args.output}/card.json"
    )


def _cmd_search(args: argparse.Namespace) -> None:
    from specclip_core.retrieval.index import load_index
    from specclip_core.retrieval.query import neighbour_panels, resolve_queries, search_hits, write_hits
    from specclip_core.threads import use_threads

    use_threads(args.threads)
    index = load_index(args.index)
    queries = resolve_queries(index, args.queries, by=args.by, from_path=args.from_catalogue, modality=args.modality)
    table = search_hits(index, queries, args.k)
    write_hits(args.output, table)
    kind = "cross-modal" if queries.modality != index.catalogue.modality else "in-modal"
    print(
        f"{len(queries.ids)} {queries.modality} queries, {kind}, top {args.k} of {index.card['size']} {index.catalogue.modality} "
        f"({index.card['kind']}): {len(table)} hits in {args.output}"
    )
    if args.plot:
        from specclip_core.report.neighbours import plot_neighbours

        print(f"plot: {plot_neighbours(neighbour_panels(queries, table, index), args.plot)}")


def _cmd_translate(args: argparse.Namespace) -> None:
    from specclip_core.data.stream import DEFAULT_CHUNK
    from specclip_core.threads import use_threads
    from specclip_core.translate import translate_files

    use_threads(args.threads)
    plot = None if args.no_plot else (args.plot or str(Path(args.output).with_suffix(".png")))
    report = translate_files(
        args.run, args.inputs, args.to, args.output, source=args.source, stage=args.stage, observed=args.observed, plot=plot,
        examples=args.examples, chunk=args.chunk or DEFAULT_CHUNK, progress=not args.quiet,
    )
    print(f"translated {report.n_rows} {report.source} spectra to {report.target} with stage {report.stage}: {report.output} in {report.seconds:.1f} s")
    if report.plot:
        print(f"plot: {report.plot} ({report.n_observed} with an observed {report.target} spectrum)")
    _print_rejected(report.rejected, "the list above")


def _cmd_anomalies(args: argparse.Namespace) -> None:
    from specclip_core.anomaly.find import find_anomalies
    from specclip_core.data.stream import DEFAULT_CHUNK
    from specclip_core.threads import use_threads

    use_threads(args.threads)
    gallery = None if args.no_gallery else (args.gallery or str(Path(args.output).with_suffix(".png")))
    report = find_anomalies(
        args.run, args.inputs, args.output, stage=args.stage, reference_rows=args.reference_rows, top=args.top, gallery=gallery,
        chunk=args.chunk or DEFAULT_CHUNK, progress=not args.quiet,
    )
    print(
        f"ranked {report.n_rows} spectra by {len(report.scores)} scores ({', '.join(report.scores)}) against {report.reference_rows} "
        f"training rows of stage {report.stage}: {report.output} in {report.seconds:.1f} s"
    )
    for sid, combined, most in report.top[:5]:
        print(f"  {sid}: combined {combined:.1f}, most unusual {most}")
    if report.gallery:
        print(f"gallery: {report.gallery}")
    _print_rejected(report.rejected, "the list above")


def _cmd_bench_pretrain(args: argparse.Namespace) -> None:
    from specclip_core.bench import bench_pretrain, pretrain_table

    results = bench_pretrain(args.modality, args.encoders, args.sizes, args.batch_size, args.steps, args.device, Path(args.output) if args.output else None, args.warmup)
    print(pretrain_table(results))


def _cmd_fetch(args: argparse.Namespace) -> None:
    from specclip_core.data.datasets import fetch_dataset
    from specclip_core.data.store import SpectralStore

    path = fetch_dataset(args.name, refresh=args.refresh)
    store = SpectralStore.open(path)
    print(f"{args.name}: {len(store)} rows, modalities {store.modalities}, labels {list(store.label_columns)}")
    print(path)


def _cmd_ingest(args: argparse.Namespace) -> None:
    from specclip_core.data.ingest import ingest_files, read_label_table
    from specclip_core.data.stream import DEFAULT_CHUNK

    labels = read_label_table(args.labels, text_columns=[args.id_column]) if args.labels else None
    report = ingest_files(
        args.paths, args.modality, args.output, reader=args.reader, labels=labels, id_column=args.id_column, overwrite=args.overwrite,
        simulated=args.simulated, labels_source=args.labels or "labels", duplicates=args.duplicates, chunk=args.chunk or DEFAULT_CHUNK, workers=args.workers,
    )
    print(report.summary())


def _cmd_info(args: argparse.Namespace) -> None:
    from specclip_core.data.splits import split_labels
    from specclip_core.data.store import SpectralStore

    store = SpectralStore.open(args.store)
    splits = split_labels(store.ids)
    print(f"{args.store}: {len(store)} rows; train {int((splits == 'train').sum())}, val {int((splits == 'val').sum())}, test {int((splits == 'test').sum())}")
    for modality in store.modalities:
        wavelength = store.wavelength(modality)
        print(f"  {modality}: {wavelength.size} pixels, {wavelength[0]:.1f}-{wavelength[-1]:.1f} A, stats {store.stats_names(modality)}")
    print(f"  labels: {', '.join(f'{k} ({v})' for k, v in store.label_columns.items())}")
    for key, value in store.meta.items():
        if key != "ingest_report":
            print(f"  {key}: {str(value)[:100]}")


def _cmd_datasets(args: argparse.Namespace) -> None:
    from specclip_core.components import get_registry

    registry = get_registry()
    for name in registry.names("dataset"):
        card = registry.get("dataset", name).build()
        print(f"{name:<20} {card.title}  [{card.licence}; {card.source.package}=={card.source.version}]")


THREADS_HELP = "CPU threads for torch and BLAS/OpenMP (default: a spec's threads, else SPECCLIP_THREADS, else the CPUs this process may use that other work does not keep busy at the start)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="specclip", description="Foundation models for stellar spectra.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("plugins", help="list plugins, their versions and what they register")
    p.set_defaults(func=_cmd_plugins)
    p = sub.add_parser("list", help="list registered components")
    p.add_argument("kind", nargs="?", help="encoder, tokenizer, objective, stage, modality, reader, dataset, ...")
    p.set_defaults(func=_cmd_list)
    p = sub.add_parser("specs", help="list every registered run spec with the distribution that ships it")
    p.set_defaults(func=_cmd_specs)
    p = sub.add_parser("validate", help="check run specs (field paths on error)")
    p.add_argument("specs", nargs="+", metavar="SPEC")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=SET_HELP)
    p.set_defaults(func=_cmd_validate)
    p = sub.add_parser("schema", help="JSON schema of run specs, for editors")
    p.add_argument("-o", "--output")
    p.set_defaults(func=_cmd_schema)
    p = sub.add_parser("run", help="run a spec (a file, or the name of a registered spec)")
    p.add_argument("spec")
    p.add_argument("--run-dir", help="default: the spec's run_dir, else runs/<name>")
    p.add_argument("--resume", action="store_true", help="continue unfinished stages from their checkpoints")
    p.add_argument("--force", action="store_true", help="rerun stages even when they could be reused")
    p.add_argument("--only", nargs="+", metavar="STAGE", help="run only these stages")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=SET_HELP)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--threads", type=int, metavar="N", help=THREADS_HELP)
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("evaluate", help="robust sigma and R^2 of a run's heads on the test split, with one-to-one plots")
    p.add_argument("run", help="run directory")
    p.add_argument("--heads", nargs="+", metavar="STAGE", help="heads stages to compare (default: all)")
    p.add_argument("--labels", nargs="+", help="labels to report (default: all)")
    p.add_argument("-o", "--output", help="folder for the table and plots (default: RUN/evaluation)")
    p.set_defaults(func=_cmd_evaluate)
    p = sub.add_parser("report", help="the paper's Table 1 and Table 2 for a finished run (markdown + PNG)")
    p.add_argument("run", help="run directory")
    p.set_defaults(func=_cmd_report)
    p = sub.add_parser(
        "predict", help="apply a run's (or a named model's) encoder and heads to spectra; write a catalogue", usage="specclip predict (RUN_DIR | --model NAME) INPUTS... -o CATALOGUE [options]"
    )
    p.add_argument("inputs", nargs="+", metavar="RUN_DIR_AND_INPUTS", help="a run directory (or an exported model directory), then spectrum files, directories or stores; with --model only the inputs")
    p.add_argument("--model", metavar="NAME", help="a named pretrained model (specclip models list) instead of a run directory")
    p.add_argument("--workers", type=int, metavar="N", help="processes that read and preprocess the files, one file at a time each (default: one per CPU)")
    p.add_argument("-o", "--output", required=True, help="catalogue path: .csv, .ecsv or .fits")
    p.add_argument("--heads", nargs="+", metavar="STAGE", help="heads stages to apply (default: the last heads stage on embeddings, in spec order, for the modality of the inputs)")
    p.add_argument("--samples", type=int, default=0, metavar="N", help="also write N posterior samples per spectrum and label to CATALOGUE.samples.fits (heads that give posteriors)")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--chunk", type=int, metavar="N", help=CHUNK_HELP)
    p.add_argument("--threads", type=int, metavar="N", help=THREADS_HELP)
    p.set_defaults(func=_cmd_predict)

    models = sub.add_parser("models", help="named pretrained models: list, show, export").add_subparsers(dest="models_command", required=True)
    p = models.add_parser("list", help="registered models, one line each with its modality, labels and training data")
    p.set_defaults(func=_cmd_models_list)
    p = models.add_parser("show", help="a model's card: training data, spec and seed, test-split figures, files and their sha256")
    p.add_argument("name")
    p.set_defaults(func=_cmd_models_show)
    p = models.add_parser("export", help="copy a finished run's encoder and heads into a model directory with its card")
    p.add_argument("run", help="run directory")
    p.add_argument("-o", "--output", required=True, help="new model directory")
    p.add_argument("--name", required=True, help="the model's name")
    p.add_argument("--heads", nargs="+", metavar="STAGE", help="heads stages to export (default: the one specclip predict would apply)")
    p.add_argument("--description", default="", help="one line for specclip models list")
    p.add_argument("--spec", help="the registered spec that reproduces the run (default: the run's spec name)")
    p.set_defaults(func=_cmd_models_export)

    p = sub.add_parser("embed", help="embed spectra with a run's stage into a catalogue (zarr), resumable, torchrun-aware")
    p.add_argument("run", help="run directory")
    p.add_argument("inputs", nargs="+", help="spectrum files, directories or stores")
    p.add_argument("-o", "--output", required=True, help="catalogue path (.zarr)")
    p.add_argument("--modality", help="the modality to embed (default: the one the inputs hold)")
    p.add_argument("--stage", help="the stage whose embedder to use (default: the last finished one with an embedder for the modality)")
    p.add_argument(
        "--part", choices=["full", "shared", "private"], default="full",
        help="of an align stage's embedding: all of it, the shared (aligned) part or the private part (CLIP-split)",
    )
    p.add_argument(
        "--width", type=int, metavar="N",
        help="keep the first N dimensions of the shared part: an align stage trained with 'ordered' only (a compact catalogue)",
    )
    p.add_argument(
        "--chunk", type=int, metavar="N",
        help="spectra embedded and committed at a time (default 4096); a resumed run must use the same",
    )
    p.add_argument(
        "--split", choices=["train", "val", "test"],
        help="only the stores' rows of this split (by id, as the run's stages split them), e.g. test for held-out figures",
    )
    p.add_argument("--resume", action="store_true", help="continue an interrupted embed of the same inputs where it stopped")
    p.add_argument("--overwrite", action="store_true", help="replace the catalogue at OUTPUT")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--threads", type=int, metavar="N", help=THREADS_HELP)
    p.set_defaults(func=_cmd_embed)

    index = sub.add_parser("index", help="faiss indexes of embedding catalogues").add_subparsers(dest="index_command", required=True)
    p = index.add_parser(
        "build",
        help="build a faiss index (cosine) of a catalogue, with a card recording its recall@10 against exact search",
    )
    p.add_argument(
        "catalogue", nargs="+",
        help="a catalogue written by 'specclip embed', or several: the shards of one (one faiss index each, searched together)",
    )
    p.add_argument("-o", "--output", required=True, help="index directory (card.json and index.faiss, or shard-N.faiss per shard)")
    p.add_argument(
        "--kind", choices=["auto", "flat", "ivfflat", "ivfpq", "hnsw"], default="auto",
        help="auto: exact (flat) below 100,000 rows, hnsw above",
    )
    p.add_argument("--nlist", type=int, help="ivfflat, ivfpq: inverted lists (default 4 sqrt(N))")
    p.add_argument("--m", type=int, help="ivfpq: sub-quantizers, a divisor of the width (default: the most with 8 or more dimensions each)")
    p.add_argument("--nbits", type=int, default=8, help="ivfpq: bits per sub-quantizer code (default 8)")
    p.add_argument("--nprobe", type=int, help="ivfflat, ivfpq: lists searched per query (default max(8, nlist/20))")
    p.add_argument(
        "--refine", choices=["none", "sq8", "flat"], default="none",
        help="ivfpq: re-rank the PQ candidates by 8-bit codes (1 byte a dimension more) or by the full vectors (default none)",
    )
    p.add_argument("--k-factor", type=int, default=10, help="ivfpq with --refine: candidates re-ranked, as a multiple of k (default 10)")
    p.add_argument("--hnsw-m", type=int, default=32, help="hnsw: links per node (default 32)")
    p.add_argument("--ef-construction", type=int, default=80, help="hnsw: candidates while building (default 80)")
    p.add_argument("--ef-search", type=int, default=64, help="hnsw: candidates while searching (default 64)")
    p.add_argument("--train-rows", type=int, help="ivfflat, ivfpq: rows sampled to train on (default max(50 nlist, 40 x 2^nbits, 10000))")
    p.add_argument("--recall-queries", type=int, default=1000, help="catalogue rows used as queries to measure recall@10 (default 1000)")
    p.add_argument("--overwrite", action="store_true", help="replace the index at OUTPUT")
    p.add_argument("--threads", type=int, metavar="N", help=THREADS_HELP)
    p.set_defaults(func=_cmd_index_build)

    p = sub.add_parser("search", help="nearest neighbours in an index of queries by file, id or catalogue row; in-modal or cross-modal")
    p.add_argument("index", help="an index built by 'specclip index build'")
    p.add_argument("queries", nargs="+", help="spectrum files or directories, ids, or row numbers (see --by)")
    p.add_argument(
        "--by", choices=["auto", "file", "id", "row"], default="auto",
        help="what QUERIES are (auto: files when every one is an existing path, else ids)",
    )
    p.add_argument(
        "--from", dest="from_catalogue", metavar="CATALOGUE",
        help="look ids and rows up in this catalogue (e.g. the other modality's, for a cross-modal search) instead of the index's",
    )
    p.add_argument("--modality", help="the modality of query files (default: the one the files hold)")
    p.add_argument("-k", type=int, default=10, help="neighbours per query (default 10)")
    p.add_argument("-o", "--output", required=True, help="hits table (.csv)")
    p.add_argument("--plot", metavar="PNG", help="draw the first queries' spectra with their top neighbours")
    p.add_argument("--threads", type=int, metavar="N", help=THREADS_HELP)
    p.set_defaults(func=_cmd_search)

    p = sub.add_parser("translate", help="predict each spectrum as another instrument would see it (a run's cross-modal decoder); FITS and a plot")
    p.add_argument("run", help="run directory")
    p.add_argument("inputs", nargs="+", help="spectrum files, directories or stores")
    p.add_argument("--to", required=True, metavar="MODALITY", help="the modality to translate into")
    p.add_argument("-o", "--output", required=True, help="FITS file of the predicted spectra")
    p.add_argument("--from", dest="source", metavar="MODALITY", help="the inputs' modality (default: the one the inputs hold)")
    p.add_argument("--stage", help="the align stage to use (default: the last finished one with a decoder for the pair)")
    p.add_argument("--observed", nargs="+", metavar="PATH", help="observed spectra of the target modality (files or stores) with the same ids, drawn in the plot")
    p.add_argument("--plot", metavar="PNG", help="the plot's path (default: OUTPUT with .png)")
    p.add_argument("--no-plot", action="store_true", help="write no plot")
    p.add_argument("--examples", type=int, default=4, help="translations in the plot (default 4; those with an observed spectrum first)")
    p.add_argument("--chunk", type=int, metavar="N", help=CHUNK_HELP)
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--threads", type=int, metavar="N", help=THREADS_HELP)
    p.set_defaults(func=_cmd_translate)

    p = sub.add_parser("anomalies", help="rank spectra by how unusual an align stage finds them (residuals, disagreement, density); table and gallery")
    p.add_argument("run", help="run directory")
    p.add_argument("inputs", nargs="+", help="stores (a row may pair several modalities) or spectrum files of one modality")
    p.add_argument("-o", "--output", required=True, help="ranked table: .csv, .ecsv or .fits")
    p.add_argument("--stage", help="the align stage (default: the last finished one)")
    p.add_argument("--reference-rows", type=int, default=5000, help="training rows sampled as the reference for percentiles and density (default 5000)")
    p.add_argument("--top", type=int, default=20, help="stars in the gallery (default 20)")
    p.add_argument("--gallery", metavar="PNG", help="the gallery's path (default: OUTPUT with .png)")
    p.add_argument("--no-gallery", action="store_true", help="draw no gallery")
    p.add_argument("--chunk", type=int, metavar="N", help=CHUNK_HELP)
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--threads", type=int, metavar="N", help=THREADS_HELP)
    p.set_defaults(func=_cmd_anomalies)

    bench = sub.add_parser("bench", help="benchmarks").add_subparsers(dest="bench_command", required=True)
    p = bench.add_parser("pretrain", help="pretraining throughput and peak memory per encoder and size")
    p.add_argument("--modality", required=True)
    p.add_argument("--encoders", nargs="+", default=["mlp_autoencoder", "masked_transformer"])
    p.add_argument("--sizes", nargs="+", default=["small", "paper"])
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=10, help="timed steps")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--device", default="auto")
    p.add_argument("-o", "--output", help="write OUTPUT.json and OUTPUT.md")
    p.set_defaults(func=_cmd_bench_pretrain)

    data = sub.add_parser("data", help="datasets and stores").add_subparsers(dest="data_command", required=True)
    p = data.add_parser("list", help="registered datasets")
    p.set_defaults(func=_cmd_datasets)
    p = data.add_parser("fetch", help="download, verify and ingest a registered dataset (cached)")
    p.add_argument("name")
    p.add_argument("--refresh", action="store_true")
    p.set_defaults(func=_cmd_fetch)
    p = data.add_parser("ingest", help="build a store from files of one modality")
    p.add_argument("modality", help="modality name or alias")
    p.add_argument("paths", nargs="+", help="files or directories")
    p.add_argument("-o", "--output", required=True, help="store path (.zarr)")
    p.add_argument("--reader", help="force a reader (default: sniff)")
    p.add_argument("--chunk", type=int, metavar="N", help=CHUNK_HELP)
    p.add_argument("--workers", type=int, default=1, metavar="N", help="processes that read and preprocess the files (default: 1)")
    p.add_argument("--labels", help="CSV of labels to join on the spectrum id")
    p.add_argument("--id-column", default="id", help="column of the labels CSV holding the spectrum id")
    p.add_argument("--overwrite", action="store_true", help="replace the store at OUTPUT (never anything that is not a store)")
    p.add_argument(
        "--duplicates", choices=["first", "best_snr", "reject"], default="first",
        help="an id held by several spectra: keep the first, the best S/N, or none (default: first)",
    )
    p.add_argument(
        "--simulated", action=argparse.BooleanOptionalAction, default=None,
        help="every spectrum is simulated (--simulated) or observed (--no-simulated); default: each file's own flag",
    )
    p.set_defaults(func=_cmd_ingest)
    p = data.add_parser("info", help="describe a store")
    p.add_argument("store")
    p.set_defaults(func=_cmd_info)

    from specclip_core.plugins import get_plugin_manager

    get_plugin_manager().hook.specclip_add_commands(subparsers={"root": sub, "data": data, "bench": bench})
    return parser


def main(argv: list[str] | None = None) -> int:
    from specclip_core.threads import watch_cpus

    watch_cpus()  # the busy CPUs are counted over the start-up, not in a sleep of their own
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        result = args.func(args)
    except SpecCLIPError as error:
        print(f"specclip: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("specclip: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


def command() -> None:
    """The ``specclip`` program: :func:`main`, then what an ordinary exit runs (the atexit handlers:
    temporary directories, logging, process pools) and an immediate exit. Python's own teardown of
    the modules loaded (torch's above all) would add about half a second to every command, after all
    its work and output are done."""
    import atexit
    import os

    code = main()
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    command()
