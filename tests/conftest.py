"""Test setup: the toy plugin is pip-installed into a temporary directory at session start, so every
test (and every subprocess, through PYTHONPATH) discovers it through its real ``specclip`` entry point."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
REPO = TESTS.parent
SHARED_DATA = REPO.parent / "shared" / "data"

_site = Path(tempfile.mkdtemp(prefix="specclip-toy-site-"))
subprocess.run(
    [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index", "--target", str(_site), str(TESTS / "toy_plugin")],
    check=True,
    capture_output=True,
)
sys.path.insert(0, str(_site))
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_site), os.environ.get("PYTHONPATH", "")]))
os.environ.setdefault("SPECCLIP_PROGRESS", "0")


@pytest.fixture(scope="session")
def toy_site() -> Path:
    """Where the toy plugin is installed (on sys.path and PYTHONPATH)."""
    return _site


@pytest.fixture
def toy_store(tmp_path):
    from specclip_toy import make_store

    return make_store(tmp_path / "toy.zarr", n=256)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SPECCLIP_CACHE", str(tmp_path / "cache"))


def _aligned(root: Path, **align):
    """Pretrain both toy modalities on 200 paired toy stars, then align them as CLIP-split (shared 16
    + private 8, in-modal and cross-modal decoders) with ``align``'s settings on top. Returns (run directory, paired store)."""
    from specclip_core.runner import run_spec
    from specclip_core.spec import validate_spec
    from specclip_toy import make_paired_store

    store = make_paired_store(root / "pair.zarr", n=200)
    train = {"epochs": 1, "batch_size": 64, "device": "cpu"}
    stages = {
        "pretrain_toy": {
            "kind": "pretrain",
            "modality": "toy",
            "objectives": [{"name": "masked_modeling", "n_chunks": 2, "chunk_tokens": 3}],
            "train": train,
        },
        "pretrain_toy_broad": {"kind": "pretrain", "modality": "toy_broad", "train": train},
        "align": {
            "kind": "align",
            "needs": ["pretrain_toy", "pretrain_toy_broad"],
            "projections": {"toy": {"name": "cross_attention"}, "toy_broad": {"name": "mlp", "hidden": 32}},
            "shared_dim": 16,
            "private_dim": 8,
            "reconstruction": {"name": "mlp_decoder", "multipliers": [2.0]},
            "prediction": {"name": "mlp_decoder", "multipliers": [2.0]},
            "train": {"epochs": 20, "batch_size": 64, "lr": 3e-3, "drop_last": True, "device": "cpu"},
            "translation_examples": 2,
        }
        | align,
    }
    spec = validate_spec({"name": "toy-aligned", "run_dir": str(root / "run"), "data": {"store": str(store.path)}, "stages": stages})
    run_spec(spec, progress=False, log=lambda *_: None)
    return root / "run", store


@pytest.fixture(scope="session")
def aligned_run(tmp_path_factory):
    """A tiny finished run on 200 paired toy stars: pretrain both toy modalities, then align them as
    CLIP-split (shared 16 + private 8, both decoders). Returns (run directory, paired store)."""
    return _aligned(tmp_path_factory.mktemp("aligned"))


@pytest.fixture(scope="session")
def ordered_run(tmp_path_factory):
    """As :func:`aligned_run`, with ordered embeddings (prefix widths 4 and 8 of the shared 16) trained
    for 5 epochs. Returns (run directory, paired store)."""
    return _aligned(tmp_path_factory.mktemp("ordered"), ordered={"widths": [4, 8]}, train={"epochs": 5, "batch_size": 64, "lr": 3e-3, "drop_last": True, "device": "cpu"})
