"""LoRA adapters on an adapted model (:class:`~specclip_core.heads.adapted.AdaptedModel`), through peft.

Where each named adapter goes, as the LoRA paper places them (arXiv 2507.20972), with its rank and
alpha:

==========  ==========================================================================  ====  =====
name        what it adapts (every ``nn.Linear`` of)                                      r     alpha
==========  ==========================================================================  ====  =====
``lora1``   each self-attention layer of a masked-transformer encoder (qkv and output)    4     8
``lora_ae`` the encoding half of an MLP-autoencoder encoder                               4     8
``lora2``   the MLP head, when it reads the encoder's embedding (or the spectra)          8     16
``lora3``   the projection into the aligned space                                         16    32
``lora4``   the MLP head, when it reads the aligned (projected) embedding                 8     16
==========  ==========================================================================  ====  =====

The paper's LoRA2 sits in the MLP on the foundation model's embedding and LoRA4 in the MLP
after the projection; here those are the MLP head of a heads stage on a ``pretrain`` stage's
encoder and of a heads stage on an ``align`` stage's projection. In a ``cross_attention`` projection
LoRA3 adapts the MLP after the attention: peft adapts ``nn.MultiheadAttention`` only where queries,
keys and values have one width, and there the keys are the encoder's tokens. peft (an optional extra,
``specclip[lora]``) is imported only when an adapter is added.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from specclip_core.errors import SpecCLIPError
from specclip_core.nn.autoencoder import MLPAutoencoder
from specclip_core.nn.transformer import SelfAttention


@dataclass(frozen=True)
class Placement:
    """Where a named adapter goes (``targets`` gives module names of the model, or raises) and its size."""

    rank: int
    alpha: float
    adapts: str
    targets: Callable[[nn.Module], list[str]]


def _linears(module: nn.Module | None, prefix: str) -> list[str]:
    """Names of the ``nn.Linear`` layers under ``module``, except those inside an ``nn.MultiheadAttention``,
    whose forward reads their weights directly (a LoRA layer there would do nothing)."""
    if module is None:
        return []
    inside = [name for name, child in module.named_modules() if isinstance(child, nn.MultiheadAttention)]
    return [
        f"{prefix}.{name}"
        for name, child in module.named_modules()
        if isinstance(child, nn.Linear) and not any(name.startswith(f"{outer}.") for outer in inside)
    ]


def _attention(model: nn.Module) -> list[str]:
    if model.encoder is None:
        return []
    return [
        name
        for block, child in model.encoder.named_modules()
        if isinstance(child, SelfAttention)
        for name in _linears(child, f"encoder.{block}")
    ]


def _autoencoder(model: nn.Module) -> list[str]:
    inner = getattr(model.encoder, "encoder", None)
    return _linears(inner.encoder, "encoder.encoder.encoder") if isinstance(inner, MLPAutoencoder) else []


def _head_on_encoder(model: nn.Module) -> list[str]:
    return _linears(model.head, "head") if model.projection is None else []


def _projection(model: nn.Module) -> list[str]:
    return _linears(model.projection, "projection")


def _head_on_projection(model: nn.Module) -> list[str]:
    return _linears(model.head, "head") if model.projection is not None else []


ADAPTERS: dict[str, Placement] = {
    "lora1": Placement(4, 8, "the self-attention layers of a masked-transformer encoder", _attention),
    "lora_ae": Placement(4, 8, "the encoder half of an MLP autoencoder", _autoencoder),
    "lora2": Placement(
        8, 16, "the MLP head on an encoder's embedding or on the spectra (a head on aligned embeddings takes lora4)", _head_on_encoder
    ),
    "lora3": Placement(16, 32, "the projection of an aligned model (a head on an align stage's embeddings)", _projection),
    "lora4": Placement(
        8, 16, "the MLP head on aligned embeddings (a head on a pretrain stage's embeddings takes lora2)", _head_on_projection
    ),
}


def adapter_targets(model: nn.Module, names: list[str], base: str) -> dict[str, list[str]]:
    """Adapter name -> the module names it adapts in ``model``; a SpecCLIPError for an unknown name
    or one whose target the base (described by ``base``) does not have."""
    found = {}
    for name in names:
        if name not in ADAPTERS:
            raise SpecCLIPError(f"unknown adapter {name!r}; known: {sorted(ADAPTERS)}")
        found[name] = ADAPTERS[name].targets(model)
        if not found[name]:
            raise SpecCLIPError(f"adapter {name!r} adapts {ADAPTERS[name].adapts}, which {base} does not have")
    return found


def add_lora(model: nn.Module, targets: dict[str, list[str]], sizes: dict[str, tuple[int, float]]) -> None:
    """Inject LoRA layers (peft) into ``model`` in place: adapter name -> its target modules, each with
    that adapter's (rank, alpha). Only the LoRA matrices are left trainable."""
    from peft import LoraConfig, inject_adapter_in_model

    modules = [module for name in targets for module in targets[name]]
    ranks = {re.escape(module): sizes[name][0] for name in targets for module in targets[name]}
    alphas = {re.escape(module): sizes[name][1] for name in targets for module in targets[name]}
    first = sizes[next(iter(targets))]
    config = LoraConfig(
        r=first[0], lora_alpha=first[1], target_modules=modules, rank_pattern=ranks, alpha_pattern=alphas, lora_dropout=0.0, bias="none"
    )
    inject_adapter_in_model(config, model)
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(".lora_" in name)
