"""The wheels, installed the way users install them: not editable, in a fresh virtual environment.

Every test elsewhere runs against editable installs, which read the source tree and so never notice
a module, package or data file that the wheels leave out. Here every distribution of the repository
(the root, each plugins/*/ and registry/ when they have a pyproject.toml) is built into a wheel from
a copy of its directory and installed with pip (no -e) into a new virtual environment. Third-party
packages come from this interpreter's site-packages through a .pth line; the .pth files in there
(the editable finders of the checkout among them) are not processed, so only the wheels provide
our code. Checked: the plugins are discovered, every module of every wheel imports from the new
environment, the core wheel holds every core module and no survey name, and a tiny run spec
(ingest, pretrain, heads) and ``specclip predict`` work through the installed ``specclip`` script.
"""

from __future__ import annotations

import csv
import json
import math
import os
import runpy
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
FORBIDDEN = runpy.run_path(str(Path(__file__).with_name("survey_names.py")))["FORBIDDEN"]
XP_LIBRARY = REPO / "plugins" / "specclip-gaiaxp" / "tests" / "data" / "apogee_library_spectra-40rows.fits.gz"
PROJECTS = [REPO, *sorted(p.parent for p in [*REPO.glob("plugins/*/pyproject.toml"), *REPO.glob("registry/pyproject.toml")])]
LITTER = shutil.ignore_patterns(".*", "__pycache__", "build", "dist", "*.egg-info", "*.zarr")  # as .gitignore, with /runs/


@dataclass
class Installed:
    venv: Path
    wheels: list[Path]
    core_wheel: Path
    work: Path
    env: dict[str, str]

    def run(self, program: str, *args: str) -> str:
        """Run a program of the new environment's bin/ in the work directory."""
        return _run([str(self.venv / "bin" / program), *args], self.env, self.work)


def _run(command: list[str], env: dict[str, str], cwd: Path) -> str:
    """The command's output; fail with all of it unless the command succeeds."""
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _copy_project(project: Path, dest: Path) -> None:
    """The project's files, without build or run litter and without the other distributions nested in it."""

    def ignore(directory: str, names: list[str]) -> set[str]:
        nested = {name for name in names if (Path(directory, name) / "pyproject.toml").is_file()}
        return set(LITTER(directory, names)) | nested | ({"runs"} if Path(directory) == project else set())

    shutil.copytree(project, dest, ignore=ignore)


def _clean_env(tmp: Path) -> dict[str, str]:
    """This environment without PYTHONPATH (conftest.py puts the toy plugin there) or SPECCLIP_ settings."""
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV") and not key.startswith("SPECCLIP_")}
    return env | {"SPECCLIP_CACHE": str(tmp / "cache"), "SPECCLIP_PROGRESS": "0", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Installed:
    tmp = tmp_path_factory.mktemp("wheels")
    env = _clean_env(tmp)
    sources = [tmp / "src" / project.relative_to(REPO) for project in PROJECTS]  # the repository's layout
    for project, source in zip(PROJECTS, sources, strict=True):
        _copy_project(project, source)
    out = tmp / "wheels"
    build = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(out)]
    _run([*build, *map(str, sources)], env, tmp)
    wheels = sorted(out.glob("*.whl"))
    assert len(wheels) == len(PROJECTS), wheels
    (core_wheel,) = out.glob("specclip-*.whl")  # the plugins' wheels are specclip_<name>-*.whl

    new = tmp / "venv"
    venv.EnvBuilder(with_pip=False).create(new)
    site = Path(_run([str(new / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], env, tmp).strip())
    ours = dict.fromkeys([sysconfig.get_path("purelib"), sysconfig.get_path("platlib")])
    (site / "dev-site-packages.pth").write_text("\n".join(ours) + "\n")
    work = tmp / "work"
    work.mkdir()
    result = Installed(new, wheels, core_wheel, work, env)
    result.run("python", "-m", "pip", "install", "-q", "--no-deps", "--no-index", *map(str, wheels))
    return result


def _members(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def _entry_points(wheel: Path) -> str:
    with zipfile.ZipFile(wheel) as archive:
        names = [name for name in archive.namelist() if name.endswith(".dist-info/entry_points.txt")]
        return archive.read(names[0]).decode() if names else ""


def test_the_installed_script_lists_every_plugin_distribution(installed):
    out = installed.run("specclip", "plugins")
    plugins = {wheel.name.split("-")[0].replace("_", "-") for wheel in installed.wheels if "[specclip]" in _entry_points(wheel)}
    assert {"specclip-gaiaxp", "specclip-lamost", "specclip-phot", "specclip-sim"} <= plugins
    for distribution in plugins:
        assert f"({distribution} " in out, out


def test_every_module_of_every_wheel_imports_from_the_new_environment(installed):
    files = [name for wheel in installed.wheels for name in _members(wheel) if name.endswith(".py")]
    modules = [name.removesuffix(".py").removesuffix("/__init__").replace("/", ".") for name in files]
    assert len(modules) > 80 and "specclip_core.align.model" in modules and "specclip_core.retrieval.search" in modules
    script = """
import importlib, json, sys
failures = {}
for name in sys.argv[1:]:
    try:
        where = importlib.import_module(name).__file__
        if not where.startswith(sys.prefix):
            failures[name] = f"imported from {where}, outside the new environment {sys.prefix}"
    except Exception as error:
        failures[name] = f"{type(error).__name__}: {error}"
print(json.dumps(failures))
"""
    failures = json.loads(installed.run("python", "-c", script, *modules))
    assert not failures, "modules that do not import from the wheels:\n" + "\n".join(f"{k}: {v}" for k, v in failures.items())


def test_the_core_wheel_holds_every_core_module_and_nothing_else(installed):
    members = set(_members(installed.core_wheel))
    sources = {path.relative_to(REPO).as_posix() for path in (REPO / "specclip_core").rglob("*.py") if "__pycache__" not in path.parts}
    assert {"specclip_core/align/model.py", "specclip_core/retrieval/search.py"} <= sources
    assert sorted(sources - members) == []
    assert {name.split("/")[0] for name in members if ".dist-info/" not in name} == {"specclip_core"}


def test_the_core_wheel_names_no_survey(installed):
    offences = []
    with zipfile.ZipFile(installed.core_wheel) as archive:
        for name in archive.namelist():
            for number, line in enumerate(archive.read(name).decode(errors="replace").splitlines(), 1):
                if FORBIDDEN.search(line):
                    offences.append(f"{name}:{number}: {line.strip()}")
    assert any(name.endswith(".dist-info/METADATA") for name in _members(installed.core_wheel))
    assert not offences, "survey names in the core wheel:\n" + "\n".join(offences)


def test_each_survey_plugin_wheel_ships_its_simulator_calibration(installed):
    script = """
import json
from specclip_sim.calibration import calibration_path, load_calibration
parts = load_calibration("lamost_lrs").parts()
print(json.dumps({m: str(calibration_path(m)) for m in ("lamost_lrs", "desi")} | {"lamost_parts": parts.noise is not None and parts.variety is not None}))
"""
    shipped = json.loads(installed.run("python", "-c", script))
    assert shipped["lamost_lrs"].startswith(str(installed.venv)) and "/specclip_lamost/calibrations/" in shipped["lamost_lrs"]
    assert shipped["lamost_parts"], "the LAMOST parts file (noise, ..., variety) did not load, checksum checked, from the wheel"
    assert "/specclip_desi/calibrations/" in shipped["desi"]
    (sim_wheel,) = [w for w in installed.wheels if w.name.startswith("specclip_sim-")]
    assert not [name for name in _members(sim_wheel) if name.endswith((".json", ".npz"))], "specclip-sim ships no survey's calibration"


def test_a_tiny_spec_runs_and_predicts_through_the_installed_script(installed):
    tiny_train = {"epochs": 2, "batch_size": 16, "device": "cpu", "patience": None}
    spec = {
        "name": "wheel-smoke",
        "seed": 0,
        "run_dir": "runs/wheel-smoke",
        "data": {"stage": "ingest"},
        "stages": {
            "ingest": {"kind": "ingest", "modality": "gaia_xp", "paths": [str(XP_LIBRARY)]},
            "pretrain": {
                "kind": "pretrain",
                "modality": "gaia_xp",
                "encoder": {"name": "mlp_autoencoder", "hidden": 16, "bottleneck": 8, "blocks": 1},
                "train": tiny_train,
            },
            "heads": {
                "kind": "heads",
                "needs": ["pretrain"],
                "modality": "gaia_xp",
                "input": "embedding",
                "labels": ["teff", "logg"],
                "head": {"name": "mlp", "hidden": [8]},
                "train": tiny_train,
            },
        },
    }
    (installed.work / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    installed.run("specclip", "run", "spec.yaml")
    run_dir = installed.work / "runs" / "wheel-smoke"
    for stage in spec["stages"]:
        assert (run_dir / stage / "manifest.json").is_file(), stage

    out = installed.run("specclip", "predict", str(run_dir), str(XP_LIBRARY), "-o", "cat.csv", "--quiet")
    with open(installed.work / "cat.csv") as catalogue:
        listed = list(csv.DictReader(line for line in catalogue if not line.startswith("#")))
    rows = [row for row in listed if not row["reason"]]
    assert len(rows) == 37, out  # 40 rows: one star listed twice, two rejected (no usable flux at 550 nm)
    assert sum("550" in row["reason"] for row in listed) == 2, [row for row in listed if row["reason"]]
    assert all(math.isfinite(float(row[label])) for row in rows for label in ("teff", "logg")), rows[:3]


ARCHIVE_XP = REPO.parent / "shared" / "data" / "gaiaxp-archive-samples" / "XP_CONTINUOUS_RAW.csv"
SHIPPED = {"gaiaxp-apogee-small": "gaia_xp", "lamost-dr10-small": "lamost_lrs", "lamost-dr10-lora": "lamost_lrs"}
DR10_SPECTRA = REPO.parent / "shared" / "data" / "lamost-dr10" / "spectra"


def test_the_shipped_models_are_listed_with_their_modality(installed):
    lines = installed.run("specclip", "models", "list").splitlines()
    for name, modality in SHIPPED.items():
        (line,) = [line for line in lines if line.split()[0] == name]
        assert line.split()[1] == modality, line
    (adapted,) = [line for line in lines if line.startswith("lamost-dr10-lora ")]
    assert "adapted on real spectra from a base trained on SIMULATED ones" in adapted


def _catalogue(path: Path):
    from astropy.table import Table

    return Table.read(path)


def test_predict_with_a_shipped_model_needs_no_run(installed):
    """No training run and no runs/ directory: the XP model from the wheels gives values and errors."""
    inputs = [str(XP_LIBRARY)] + ([str(ARCHIVE_XP)] if ARCHIVE_XP.exists() else [])
    installed.run("specclip", "predict", "--model", "gaiaxp-apogee-small", *inputs, "-o", "model.fits", "--quiet")
    table = _catalogue(installed.work / "model.fits")
    assert table.meta["MODEL"].startswith("gaiaxp-apogee-small") and len(table.meta["MODELSHA"]) == 64
    for label in ("teff", "logg", "fe_h", "alpha_m"):
        values = [v for v in table[label] if v == v]
        assert len(values) >= 37 and all(e > 0 for e in table[f"{label}_err"] if e == e), label
    if ARCHIVE_XP.exists():
        assert {"5853498713190525696", "5762406957886626816"} <= {str(i) for i in table["id"]}


@pytest.mark.skipif(not DR10_SPECTRA.is_dir(), reason="needs ../shared/data/lamost-dr10")
def test_the_adapted_lamost_model_predicts_from_the_wheels(installed):
    """A finetune model (adapters on a base, both inside the wheel) gives values, errors and flags."""
    files = [str(path) for path in sorted(DR10_SPECTRA.glob("*.fits.gz"))[:4]]
    installed.run("specclip", "predict", "--model", "lamost-dr10-lora", *files, "-o", "lora.fits", "--quiet", "--workers", "1")
    table = _catalogue(installed.work / "lora.fits")
    assert len(table) == 4 and "adapted on real lamost_lrs spectra" in table.meta["TRAINED"]
    for label in ("teff", "logg", "feh"):
        assert all(np.isfinite(table[label])) and all(table[f"{label}_err"] > 0), label
    assert "flag_knn" in table.colnames and "flags" in table.colnames


def test_a_flipped_byte_in_an_installed_model_fails_its_checksum(installed):
    directory = Path(installed.run("specclip", "models", "show", "gaiaxp-apogee-small").splitlines()[0].removeprefix("# "))
    assert str(directory).startswith(str(installed.venv)), "the model is read from the installed wheel"
    weights = sorted(directory.rglob("*.safetensors"))[0]
    original = weights.read_bytes()
    damaged = bytearray(original)
    damaged[len(damaged) // 2] ^= 0x01
    try:
        weights.write_bytes(bytes(damaged))
        command = [str(installed.venv / "bin" / "specclip"), "predict", "--model", "gaiaxp-apogee-small", str(XP_LIBRARY), "-o", "damaged.csv", "--quiet"]
        done = subprocess.run(command, cwd=installed.work, env=installed.env, capture_output=True, text=True, timeout=300)
    finally:
        weights.write_bytes(original)
    assert done.returncode == 2, done.stderr
    assert str(weights) in done.stderr and "sha256" in done.stderr and "nothing was loaded" in done.stderr
    assert not (installed.work / "damaged.csv").exists()
