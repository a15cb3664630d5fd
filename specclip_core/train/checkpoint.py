"""Weights and training checkpoints as safetensors files, written atomically.

A checkpoint is one file: tensors ``model.<name>`` and ``optim.<param index>.<state key>``, and in
the safetensors header the JSON of the optimizer's parameter groups and the loop's state (epoch,
step, early-stopping record). No pickle is written or read.

Every file carries the sha256 of its own bytes (header with the digest left out, then the tensor
data) in its header metadata, and is verified before it is loaded: a truncated, emptied, foreign or
flipped file is an error naming it and saying what to do. The digest lives in the file rather than in
a sidecar so that the one atomic write that replaces a file replaces its digest with it (a sidecar
written after the file would disagree with it after a kill in between, and a good checkpoint would
no longer resume). The training loop keeps the previous checkpoint beside the last one.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load, save

from specclip_core.errors import SpecCLIPError
from specclip_core.util import atomic_write_bytes

DIGEST = "sha256"
RERUN = "rerun the stage that wrote it (specclip run --force --only STAGE)"


def _header(data: bytes) -> tuple[dict[str, Any], int]:
    """The JSON header of safetensors bytes and where the tensor data starts."""
    size = int.from_bytes(data[:8], "little")
    if len(data) < 8 or size > len(data) - 8:
        raise ValueError("the header is cut short")
    return json.loads(data[8 : 8 + size]), 8 + size


def _digest(header: dict[str, Any], body: bytes) -> str:
    meta = {k: v for k, v in (header.get("__metadata__") or {}).items() if k != DIGEST}
    plain = {k: v for k, v in header.items() if k != "__metadata__"} | ({"__metadata__": meta} if meta else {})
    return hashlib.sha256(json.dumps(plain, sort_keys=True).encode() + body).hexdigest()


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Tensors as a safetensors file carrying its sha256, written atomically."""
    first = save(tensors, metadata=metadata or None)
    header, start = _header(first)
    atomic_write_bytes(path, save(tensors, metadata={**(metadata or {}), DIGEST: _digest(header, first[start:])}))


def load_tensors(path: str | Path, advice: str = RERUN) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors and metadata of a file :func:`save_tensors` wrote, verified against its sha256;
    a damaged file is a SpecCLIPError naming it and ending with ``advice``."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise SpecCLIPError(f"{path}: cannot read the weights ({error.strerror}); {advice}") from None
    try:
        header, start = _header(data)
        recorded = header["__metadata__"][DIGEST]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise SpecCLIPError(f"{path}: not a specclip weights file, or its header is damaged (truncated, emptied or overwritten); {advice}") from None
    if _digest(header, data[start:]) != recorded:
        raise SpecCLIPError(f"{path}: damaged weights file (its bytes no longer match the sha256 it was written with); {advice}")
    metadata = {k: v for k, v in header["__metadata__"].items() if k != DIGEST}
    return load(data), metadata


def _plain(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}


def save_weights(module: torch.nn.Module, path: str | Path, metadata: dict[str, str] | None = None) -> None:
    """The module's state dict as a safetensors file (see :func:`save_tensors`)."""
    save_tensors(path, _plain(module.state_dict()), metadata)


def load_weights(module: torch.nn.Module, path: str | Path, map_location: str | torch.device = "cpu", advice: str = RERUN) -> None:
    """Load verified weights into ``module`` (see :func:`load_tensors`)."""
    state = {k: v.to(map_location) for k, v in load_tensors(path, advice)[0].items()}
    missing, unexpected = module.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise RuntimeError(f"{path}: weights do not fit the model (missing {missing[:5]}, unexpected {unexpected[:5]})")


def save_described(module: torch.nn.Module, directory: str | Path, stem: str, description: dict[str, Any]) -> None:
    """``<stem>.safetensors`` (weights) and ``<stem>.json`` (what to rebuild the module from) in ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_weights(module, directory / f"{stem}.safetensors")
    atomic_write_bytes(directory / f"{stem}.json", json.dumps(description, indent=2).encode())


def read_description(directory: str | Path, stem: str) -> dict[str, Any]:
    return json.loads((Path(directory) / f"{stem}.json").read_text())


def save_checkpoint(path: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    tensors = {f"model.{k}": v for k, v in _plain(model.state_dict()).items()}
    optim_state = optimizer.state_dict()
    scalars: dict[str, dict[str, Any]] = {}
    for index, values in optim_state["state"].items():
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{index}.{key}"] = value.detach().to("cpu").contiguous().clone()
            else:
                scalars.setdefault(str(index), {})[key] = value
    metadata = {
        "param_groups": json.dumps(optim_state["param_groups"]),
        "optim_scalars": json.dumps(scalars),
        "state": json.dumps(state),
    }
    save_tensors(path, tensors, metadata)


def load_checkpoint(
    path: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, map_location: str | torch.device = "cpu", advice: str = RERUN
) -> dict[str, Any]:
    """Restore model and optimizer in place from a verified checkpoint; return the loop state saved with them."""
    loaded, metadata = load_tensors(path, advice)
    tensors = {key: value.to(map_location) for key, value in loaded.items()}
    model.load_state_dict({k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")})
    optim_state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            optim_state.setdefault(int(index), {})[name] = value
    for index, values in json.loads(metadata["optim_scalars"]).items():
        optim_state.setdefault(int(index), {}).update(values)
    optimizer.load_state_dict({"state": optim_state, "param_groups": json.loads(metadata["param_groups"])})
    return json.loads(metadata["state"])
