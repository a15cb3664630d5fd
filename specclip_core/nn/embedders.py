"""Loading whatever a stage saved as a modality's embedder (``encoders/<modality>/encoder.json``).

An embedder (:class:`~specclip_core.interfaces.Embedder`) maps preprocessed spectra of one modality
to one vector each. Kinds are registered as components of kind ``embedder`` whose factory is the
class (``.load(directory)``); the ``type`` in ``encoder.json`` names the kind (a pretrained encoder,
an aligned projection, ...).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from specclip_core.components import get_registry


def load_embedder(directory: str | Path, map_location: str = "cpu") -> Any:
    """The embedder saved in ``directory``, whichever registered kind it is."""
    described = json.loads((Path(directory) / "encoder.json").read_text())
    kind = described.get("type", "modality_encoder")
    return get_registry().get("embedder", kind).factory.load(directory, map_location=map_location)
