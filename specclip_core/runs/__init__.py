"""Running specs: the stage runner, its manifests and the built-in stages."""

from specclip_core.runs.runner import StageContext, run_spec

__all__ = ["StageContext", "run_spec"]
