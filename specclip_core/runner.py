"""Run a spec stage by stage in a run directory, reusing finished stages.

Each stage works in ``<run_dir>/<stage>.partial/`` (kept across crashes so that ``--resume`` picks
up its checkpoint) and is renamed to ``<run_dir>/<stage>/`` when it finishes, with a
``manifest.json``: the stage's key (a hash of its settings, the seed, the fingerprints of its data
and of its input stores, the keys of the stages it needs, what its
:meth:`~specclip_core.interfaces.Stage.fingerprint` adds and the versions of the distributions
whose components it uses), the sha256 of its inputs and outputs, its summary and timings. A later
run whose key matches and whose outputs still hash the same reuses the stage without running it.
The directory layout is :mod:`specclip_core.rundir`'s.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from specclip_core.components import distributions_of
from specclip_core.data.store import SpectralStore
from specclip_core.errors import SpecCLIPError
from specclip_core.rundir import MANIFEST, SPEC, THREADS, RunDir, encoder_dir, has_encoder
from specclip_core.spec import DataSpec, RunSpec, StageSpec, components_used
from specclip_core.threads import ENV as THREADS_ENV
from specclip_core.threads import available_cpus, use_threads
from specclip_core.util import atomic_write_text, sha256_file


@dataclass
class StageContext:
    """What a stage's ``run`` gets: its settings, its working directory, its data and the earlier stages.

    ``out_dir`` is where the stage writes (renamed to ``run_dir / name`` when ``run`` returns);
    ``resume`` is set under ``--resume`` (continue from the checkpoints in ``out_dir``); ``progress``
    says whether to draw progress bars.
    """

    spec: RunSpec
    name: str
    stage: StageSpec
    run_dir: Path
    out_dir: Path
    resume: bool = False
    progress: bool = True
    _stores: dict[str, SpectralStore] = field(default_factory=dict)

    @property
    def run(self) -> RunDir:
        return RunDir(self.run_dir)

    @property
    def config(self) -> Any:
        return self.stage.config

    @property
    def seed(self) -> int:
        return self.spec.seed

    def data_spec(self) -> DataSpec:
        data = self.spec.data_for(self.name)
        if data is None:
            raise SpecCLIPError(f"stage {self.name!r}: no data given (set 'data' on the stage or at the top of the spec)")
        return data

    def store(self) -> SpectralStore:
        """The stage's spectral store (a registered dataset is fetched on first use)."""
        return self._open(self.data_spec())

    def input_store(self, name: str) -> SpectralStore:
        """The store named ``name`` in the stage's :meth:`~specclip_core.interfaces.Stage.inputs` (fetched on first use)."""
        inputs = self.stage.stage.inputs()
        if name not in inputs:
            raise SpecCLIPError(f"stage {self.name!r} has no input store {name!r}; its inputs are {list(inputs)}")
        return self._open(inputs[name])

    def _open(self, data: DataSpec) -> SpectralStore:
        key = data.model_dump_json()
        if key not in self._stores:
            self._stores[key] = open_data(data, self.run_dir, progress=self.progress)
        return self._stores[key]

    def upstream(self, name: str) -> Path:
        """The finished output directory of an earlier stage this one needs."""
        if name not in self.stage.needs:
            raise SpecCLIPError(f"stage {self.name!r} reads stage {name!r} but does not list it in 'needs'")
        path = self.run.stage(name)
        if not (path / MANIFEST).exists():
            raise SpecCLIPError(f"stage {name!r} has not finished (no {path / MANIFEST})")
        return path

    def find_encoder(self, modality: str) -> Path:
        """The embedder for ``modality`` that one of the needed stages trained (the first in ``needs``)."""
        for need in self.stage.needs:
            if has_encoder(self.upstream(need), modality):
                return encoder_dir(self.upstream(need), modality)
        raise SpecCLIPError(f"stage {self.name!r}: none of its needs {self.stage.needs} produced an encoder for {modality!r}")

    def upstream_of_kind(self, kind: str) -> Path:
        """The output of the one needed stage of ``kind`` (e.g. the ``pretrain`` stage a head reads)."""
        matches = [n for n in self.stage.needs if self.spec.stages[n].kind == kind]
        if len(matches) != 1:
            raise SpecCLIPError(f"stage {self.name!r} must need exactly one {kind!r} stage, it needs {self.stage.needs}")
        return self.upstream(matches[0])


def open_data(data: DataSpec, run_dir: Path, progress: bool = True) -> SpectralStore:
    """The store a data spec names: a path, the store an earlier stage wrote, or a registered dataset (fetched)."""
    if data.store is not None:
        return SpectralStore.open(data.store)
    if data.stage is not None:
        return SpectralStore.open(RunDir(run_dir).store(data.stage))
    from specclip_core.data.datasets import fetch_dataset

    return SpectralStore.open(fetch_dataset(data.dataset, progress=progress))


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def seed_everything(seed: int, stage: str) -> None:
    """Seed torch's and numpy's global generators from (spec seed, stage name) before a stage runs, so
    whatever a stage draws before its own seeding (network initialisation) is the same in every run."""
    import numpy as np
    import torch

    value = int.from_bytes(hashlib.sha256(f"{seed}:{stage}".encode()).digest()[:8], "little") % (2**63 - 1)
    torch.manual_seed(value)
    np.random.seed(value % (2**32))


def stage_versions(spec: RunSpec, name: str) -> dict[str, str]:
    """Distribution -> version of specclip and of every plugin whose components the stage uses (its
    kind, the components and modalities its settings name, the dataset it reads)."""
    from specclip_core import __version__

    stage = spec.stages[name]
    used = {("stage", stage.kind)} | components_used(stage.config)
    data = spec.data_for(name)
    if stage.stage.requires_data and data is not None and data.dataset is not None:
        used.add(("dataset", data.dataset))
    used |= {("dataset", d.dataset) for d in stage.stage.inputs().values() if d.dataset is not None}
    return {"specclip": __version__, **distributions_of(used)}


def stage_key(
    spec: RunSpec, name: str, data_fingerprint: str | None, upstream_keys: dict[str, str], inputs: dict[str, str] | None = None
) -> str:
    """Hash of what a stage's result depends on: its settings, the seed, its data, the fingerprints
    of its input stores, the stages it needs, the versions of the distributions it uses and whatever
    its ``fingerprint()`` adds."""
    stage = spec.stages[name]
    settings = json.loads(stage.model_dump_json())
    payload = {
        "settings": settings,
        "seed": spec.seed,
        "data": data_fingerprint,
        "needs": upstream_keys,
        "inputs": stage.stage.fingerprint(),
        "versions": stage_versions(spec, name),
    }
    if inputs:  # only where a stage has input stores, so that other stages keep their keys
        payload["stores"] = inputs
    return hashlib.sha256(_canonical(payload).encode()).hexdigest()


def _output_hashes(directory: Path) -> dict[str, str]:
    return {
        str(path.relative_to(directory)): sha256_file(path)
        for path in sorted(directory.rglob("*"))
        if path.is_file() and path.name != MANIFEST
    }


def _reusable(directory: Path, key: str) -> dict[str, Any] | None:
    manifest_path = directory / MANIFEST
    if not manifest_path.exists():
        return None
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("key") != key:
        return None
    if _output_hashes(directory) != manifest.get("outputs"):
        return None
    return manifest


def _sync() -> None:
    """Wait for every rank when running under torchrun (a no-op otherwise)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def _threads_for(spec: RunSpec, run_dir: Path, resume: bool) -> int | None:
    """The threads asked for: the spec's, else (under ``--resume``, with no SPECCLIP_THREADS) those the
    run started with, so that a resumed run computes as the interrupted one did; else None (the default)."""
    if spec.threads is not None or not resume or os.environ.get(THREADS_ENV, "").strip() or not (run_dir / THREADS).is_file():
        return spec.threads
    try:
        return int(json.loads((run_dir / THREADS).read_text())["threads"])
    except (ValueError, KeyError, TypeError):
        return None


def _key_now(spec: RunSpec, name: str, context: StageContext, data, keys: dict[str, str]) -> tuple[str, str | None, dict[str, str]]:
    """(key, data fingerprint, input store fingerprints) of stage ``name`` given the keys of the
    stages before it (KeyError for a need without one; SpecCLIPError for a missing store)."""
    stage = spec.stages[name]
    fingerprint = context.store().fingerprint if data is not None else None
    stores = {store: context.input_store(store).fingerprint for store in stage.stage.inputs()}
    upstream = {need: keys[need] for need in stage.needs}
    return stage_key(spec, name, fingerprint, upstream, stores), fingerprint, stores


def run_spec(
    spec: RunSpec,
    run_dir: str | Path | None = None,
    resume: bool = False,
    force: bool = False,
    only: list[str] | None = None,
    progress: bool = True,
    log=print,
) -> dict[str, dict[str, Any]]:
    """Run every stage of ``spec`` in order (or only those in ``only``, whose needs must be finished).

    Returns stage name -> manifest. ``force`` reruns stages even when they could be reused.
    Under torchrun every rank runs each stage (the training loop shares the work); only rank 0
    writes manifests and moves directories.
    """
    is_main = int(os.environ.get("RANK", "0")) == 0
    if not is_main:
        log = lambda *_: None  # noqa: E731
    run_dir = Path(run_dir or spec.run_dir or Path("runs") / spec.name)
    layout = RunDir(run_dir)
    threads = use_threads(_threads_for(spec, run_dir, resume))
    chosen = spec.threads is None and not os.environ.get(THREADS_ENV, "").strip()
    busy = f" ({available_cpus() - threads} of {available_cpus()} CPUs busy with other work at the start)" if chosen and threads < available_cpus() else ""
    log(f"[{spec.name}] {threads} CPU thread(s) for torch and BLAS/OpenMP{busy}; the thread count can change results in the last digits: --threads N fixes it")
    if is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / SPEC, yaml.safe_dump(spec.dump(), sort_keys=False))
        atomic_write_text(run_dir / THREADS, json.dumps({"threads": threads}))
    manifests: dict[str, dict[str, Any]] = {}
    keys: dict[str, str] = {}
    for name, stage in spec.stages.items():
        context = StageContext(spec, name, stage, run_dir, layout.partial(name), resume=resume, progress=progress)
        data = spec.data_for(name) if stage.stage.requires_data else None
        skipped = only is not None and name not in only
        try:
            key, fingerprint, stores = _key_now(spec, name, context, data, keys)
        except (SpecCLIPError, KeyError):
            if not skipped:
                raise
            key = None  # a skipped stage whose data or needed stages are not there is not finished
        final = layout.stage(name)
        if skipped:
            manifest = _reusable(final, key) if key is not None else None
            if manifest is None and any(name in spec.stages[o].needs for o in only):
                raise SpecCLIPError(f"stage {name!r} is needed but not finished; run it first")
            if manifest is not None:
                manifests[name], keys[name] = manifest, key
            continue
        keys[name] = key
        manifest = None if force else _reusable(final, key)
        if manifest is not None:
            log(f"[{name}] reused (finished {manifest['finished']}, key {key[:12]})")
            manifests[name] = manifest
            continue
        if is_main:
            if context.out_dir.exists() and not resume:
                shutil.rmtree(context.out_dir)
            for unfinished in context.out_dir.rglob(".*.tmp") if context.out_dir.exists() else ():
                unfinished.unlink(missing_ok=True)  # an atomic write a kill interrupted (specclip_core.util.atomic_write_bytes)
            context.out_dir.mkdir(parents=True, exist_ok=True)
        _sync()
        log(f"[{name}] running {stage.kind} stage")
        started = time.time()
        seed_everything(spec.seed, name)
        summary = stage.stage.run(context)
        _sync()
        if not is_main:
            _sync()
            manifests[name] = json.loads((final / MANIFEST).read_text())
            continue
        inputs = {f"stage:{need}": manifests[need]["outputs_sha256"] for need in stage.needs}
        if fingerprint is not None:
            inputs["data"] = {"fingerprint": fingerprint, **data_provenance(context.store())}
        for store, store_fingerprint in stores.items():
            inputs[f"store:{store}"] = {"fingerprint": store_fingerprint, **data_provenance(context.input_store(store))}
        outputs = _output_hashes(context.out_dir)
        manifest = {
            "stage": name,
            "kind": stage.kind,
            "key": key,
            "versions": stage_versions(spec, name),
            "settings": json.loads(stage.model_dump_json()),
            "seed": spec.seed,
            "inputs": inputs,
            "outputs": outputs,
            "outputs_sha256": hashlib.sha256(_canonical(outputs).encode()).hexdigest(),
            "summary": summary or {},
            "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "seconds": round(time.time() - started, 2),
        }
        atomic_write_text(context.out_dir / MANIFEST, json.dumps(manifest, indent=2, default=str))
        if final.is_symlink():
            final.unlink()  # a linked stage directory whose result no longer holds: replace the link, keep its target
        elif final.exists():
            shutil.rmtree(final)
        context.out_dir.rename(final)
        manifests[name] = manifest
        _sync()
        log(f"[{name}] done in {manifest['seconds']:.1f} s")
    if not is_main:
        return manifests
    atomic_write_text(
        run_dir / MANIFEST,
        json.dumps({"name": spec.name, "threads": threads, "stages": {n: {"key": m["key"], "finished": m["finished"], "summary": m["summary"]} for n, m in manifests.items()}}, indent=2, default=str),
    )
    reports = [str(layout.report(name)) for name in manifests if layout.report(name).exists()]
    log(f"[{spec.name}] results in {run_dir}" + (f"; report: {', '.join(reports)}" if reports else ""))
    return manifests


def data_provenance(store: SpectralStore) -> dict[str, Any]:
    meta = store.meta
    return {k: meta[k] for k in ("dataset", "source_sha256", "source") if k in meta}
