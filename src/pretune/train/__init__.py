"""Training: the loop and its registries (optimizers, schedules, losses) and callbacks."""

from pretune.train.callbacks import Callback, EarlyStoppingCallback, StopTraining
from pretune.train.losses import losses
from pretune.train.optimizers import optimizers
from pretune.train.schedules import schedules

__all__ = ["Callback", "EarlyStoppingCallback", "StopTraining", "losses", "optimizers", "schedules"]
