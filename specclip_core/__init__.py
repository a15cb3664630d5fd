"""specclip: plugin-based foundation models for stellar spectra.

The core knows no survey: modalities, readers and datasets arrive through plugins (entry-point group
``specclip``). What a plugin may import from the core is :mod:`specclip_core.api`. See
``docs/architecture.md``.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("specclip")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+unknown"
