"""specclip: plugin-based foundation models for stellar spectra.

The core knows no survey: modalities, readers and datasets arrive through plugins (entry-point group
``specclip``). See ``docs/architecture.md``.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("specclip")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+unknown"

from specclip_core.components import (  # noqa: E402
    Component,
    ComponentList,
    create_component,
    get_modality,
    get_registry,
    list_components,
)
from specclip_core.hookspecs import hookimpl  # noqa: E402
from specclip_core.interfaces import (  # noqa: E402
    Decoder,
    Encoder,
    EncoderOutput,
    Head,
    Instrument,
    LabelledInputs,
    Modality,
    Projection,
    Reader,
    Spectra,
    Tokenizer,
    Writer,
)

__all__ = [
    "Component",
    "ComponentList",
    "Decoder",
    "Encoder",
    "EncoderOutput",
    "Head",
    "Instrument",
    "LabelledInputs",
    "Modality",
    "Projection",
    "Reader",
    "Spectra",
    "Tokenizer",
    "Writer",
    "__version__",
    "create_component",
    "get_modality",
    "get_registry",
    "hookimpl",
    "list_components",
]
