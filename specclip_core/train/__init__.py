"""The training loop, its objectives, checkpoints, schedule and DDP helpers."""

from specclip_core.train.loop import FitResult, LossModule, Trainer
from specclip_core.train.objectives import Objective, ObjectiveConfig

__all__ = ["FitResult", "LossModule", "Objective", "ObjectiveConfig", "Trainer"]
