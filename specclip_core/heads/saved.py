"""Loading a saved head, whichever registered kind it is (see :class:`~specclip_core.interfaces.HeadLayout`)."""

from __future__ import annotations

from pathlib import Path

from specclip_core.components import get_registry
from specclip_core.interfaces import Head, HeadLayout


def load_head(directory: Path) -> Head:
    """The head saved in ``directory``: ``head.json`` names the registered head whose class loads it,
    or ``adapted`` for a finetune stage's model (:class:`~specclip_core.heads.adapted.AdaptedModel`:
    the base rebuilt from its run stages plus the saved adapter)."""
    kind = HeadLayout.read(directory).head
    if kind == "adapted":
        from specclip_core.heads.adapted import AdaptedModel

        return AdaptedModel.load(directory)
    return get_registry().get("head", kind).factory.load(directory)


def head_labels(directory: Path) -> list[str]:
    """The labels a saved head predicts, in order."""
    return HeadLayout.read(directory).labels
