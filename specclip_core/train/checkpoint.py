"""Weights and training checkpoints as safetensors files, written atomically.

A checkpoint is one file: tensors ``model.<name>`` and ``optim.<param index>.<state key>``, and in
the safetensors header the JSON of the optimizer's parameter groups and the loop's state (epoch,
step, early-stopping record). No pickle is written or read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save

from specclip_core.util import atomic_write_bytes


def _plain(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}


def save_weights(module: torch.nn.Module, path: str | Path, metadata: dict[str, str] | None = None) -> None:
    """The module's state dict as a safetensors file."""
    atomic_write_bytes(path, save(_plain(module.state_dict()), metadata=metadata))


def load_weights(module: torch.nn.Module, path: str | Path, map_location: str | torch.device = "cpu") -> None:
    state = load_file(str(path), device=str(map_location))
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
    atomic_write_bytes(path, save(tensors, metadata=metadata))


def load_checkpoint(path: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Restore model and optimizer in place; return the loop state saved with them."""
    with safe_open(str(path), framework="pt", device=str(map_location)) as handle:
        metadata = handle.metadata()
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
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
