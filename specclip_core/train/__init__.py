"""The training loop, checkpoints, schedule, DDP helpers and the pretraining objectives."""
