"""Training: objectives, the fit loop and its callbacks, and the losses of generative and metric learning."""

from lineup._lazy import lazy_submodules
from lineup.train.callbacks import Callback, Checkpoint, DivergenceGuard, EarlyStopping, ProgressBar, load_checkpoint
from lineup.train.engine import Evaluation, History, OptimConfig, TrainState, build_optimizer, evaluate, fit
from lineup.train.losses import ELBO, elbo, gan_step, posterior_collapse, triplet_loss, wgan_step
from lineup.train.objectives import Objective, create_objective, list_objectives

__all__ = [
    "Callback", "Checkpoint", "DivergenceGuard", "EarlyStopping", "Evaluation", "History", "Objective", "OptimConfig",
    "ProgressBar", "TrainState", "build_optimizer", "create_objective", "evaluate", "fit", "list_objectives",
    "load_checkpoint", "ELBO", "elbo", "gan_step", "posterior_collapse", "triplet_loss", "wgan_step",
]

__getattr__, __dir__ = lazy_submodules(__name__, __path__)  # lineup.train.<submodule> without importing it first
