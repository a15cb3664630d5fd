"""``specclip --help`` loads every plugin but none of the heavy libraries (a test of imports, not of time)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("torch", "matplotlib", "zarr", "faiss", "sklearn", "astropy")
PROBE = f"""
import sys
from specclip_core.cli import build_parser
build_parser()
print(",".join(m for m in {HEAVY!r} if m in sys.modules))
"""


def _without(path: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != path)
    return env


def test_building_the_parser_imports_no_heavy_module(toy_site):
    # the toy plugin imports numpy and the core's contracts at module level, as a plugin may; the shipped ones do not
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=_without(str(toy_site)))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"imported while building the parser: {done.stdout.strip()}"


def test_help_lists_the_plugins_commands(toy_site):
    pytest.importorskip("specclip_sim")
    done = subprocess.run([sys.executable, "-m", "specclip_core.cli", "data", "--help"], capture_output=True, text=True, env=_without(str(toy_site)))
    assert done.returncode == 0, done.stderr
    assert "simulate" in done.stdout, "specclip-sim adds 'data simulate' through specclip_add_commands"


PREDICT_PROBE = """
import sys
import specclip_core.predict
from specclip_core.components import get_registry
get_registry().kinds()
print(",".join(m for m in ("matplotlib", "sklearn", "scipy.stats", "scipy.signal") if m in sys.modules))
"""


def test_predict_and_every_plugins_components_load_without_plotting_or_fitting_libraries(toy_site):
    # each takes 0.8-2 s to import, a predict of a few thousand spectra about as long: they load on first use
    done = subprocess.run([sys.executable, "-c", PREDICT_PROBE], capture_output=True, text=True, env=_without(str(toy_site)))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"imported by predict or a plugin's registration: {done.stdout.strip()}"


READING_PROBE = """
import sys
import specclip_core.predict
from specclip_core.components import get_modality, get_registry, readers_for
from specclip_core.data.stream import SpectraStream
registry = get_registry()
modalities = [get_modality(name) for name in registry.names("modality")]
readers = list(readers_for())
files = sys.argv[1:]
rows = sum(len(batch.files) for batch in SpectraStream(files, get_modality("lamost_lrs"), progress=False)) if files else 0
print(len(modalities), len(readers), rows, ",".join(m for m in ("torch", "zarr") if m in sys.modules) or "-")
"""


def test_reading_and_preprocessing_spectra_imports_neither_torch_nor_zarr(toy_site):
    # predict forks its reader processes before torch (1.2-1.5 s of a LAMOST predict's start) and zarr (0.2 s,
    # for stores) are imported, so every plugin's modalities and readers, and the stream that reads and
    # preprocesses, must do without them
    spectra = Path(__file__).resolve().parents[2] / "shared" / "data" / "lamost-dr10" / "spectra"
    files = sorted(spectra.glob("*.fits.gz"))[:3]
    if files:
        pytest.importorskip("specclip_lamost")
    done = subprocess.run([sys.executable, "-c", READING_PROBE, *map(str, files)], capture_output=True, text=True, env=_without(str(toy_site)))
    assert done.returncode == 0, done.stderr
    n_modalities, n_readers, rows, loaded = done.stdout.split()
    assert int(n_modalities) >= 1 and int(n_readers) >= 1 and int(rows) == len(files)
    assert loaded == "-", f"imported by a modality, a reader, the stream or specclip_core.predict: {loaded}"


COMMAND = """
import atexit, sys
atexit.register(lambda: print("exit handlers ran"))
sys.argv = ["specclip", *sys.argv[1:]]
from specclip_core.cli import command
command()
print("never reached")
"""


def test_the_program_runs_the_exit_handlers_flushes_and_keeps_the_exit_status(tmp_path):
    done = subprocess.run([sys.executable, "-c", COMMAND, "list", "modality"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("modality:") and done.stdout.rstrip().endswith("exit handlers ran")
    assert "never reached" not in done.stdout
    failed = subprocess.run([sys.executable, "-c", COMMAND, "models", "show", "no-such-model"], capture_output=True, text=True)
    assert failed.returncode == 2 and "unknown model 'no-such-model'" in failed.stderr


def test_the_network_contracts_are_listed_and_handed_out_by_the_interfaces_module():
    import specclip_core.interfaces as interfaces
    from specclip_core.nn import contracts

    for name in interfaces.NETWORK_CONTRACTS:
        assert name in dir(interfaces) and getattr(interfaces, name) is getattr(contracts, name)
    with pytest.raises(AttributeError, match="no attribute 'Encoders'"):
        interfaces.Encoders
