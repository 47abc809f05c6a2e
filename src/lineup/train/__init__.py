"""Training: objectives, the fit loop and its callbacks."""

from lineup.train.callbacks import Callback, Checkpoint, DivergenceGuard, EarlyStopping, ProgressBar, load_checkpoint
from lineup.train.engine import Evaluation, History, OptimConfig, TrainState, build_optimizer, evaluate, fit
from lineup.train.objectives import Objective, create_objective, list_objectives

__all__ = [
    "Callback", "Checkpoint", "DivergenceGuard", "EarlyStopping", "Evaluation", "History", "Objective", "OptimConfig",
    "ProgressBar", "TrainState", "build_optimizer", "create_objective", "evaluate", "fit", "list_objectives",
    "load_checkpoint",
]
