"""Named size presets for network configs: ``size: small`` fills any setting the user left out."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def apply_preset(presets: Mapping[str, Mapping[str, Any]], data: Any) -> Any:
    """Settings of the preset named by ``data["size"]`` (default ``small``), overridden by ``data``."""
    if isinstance(data, dict):
        return {**presets.get(data.get("size", "small"), {}), **data}
    return data
