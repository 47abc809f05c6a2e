"""One run, start to finish, as a pure function of its spec and its data: no store, no report.

Executors call ``execute_run`` wherever the run happens (this process, a pool worker, a Ray task) and hand
the ``RunResult`` back to the driver, which alone writes the store.
"""

from __future__ import annotations

import os
import platform
import random
import subprocess
import threading
import time
import traceback
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

import lineup
from lineup._io import atomic_write
from lineup.data._types import DataBundle
from lineup.models import LineupModel, create_model, summarize
from lineup.models.capture import record_representations
from lineup.spec import RunSpec
from lineup.store import FEATURES, Failure
from lineup.study.generative import generative_results, has_generator, input_range, sample_grids
from lineup.study.known import GRID_SPLIT, known_distribution_results
from lineup.study.latent import has_latent_space, latent_results
from lineup.study.probe import PROBE_TRAIN_EXAMPLES, has_probe, probe_results
from lineup.train import (
    Callback,
    Checkpoint,
    DivergenceGuard,
    EarlyStopping,
    Evaluation,
    History,
    OptimConfig,
    ProgressBar,
    build_optimizer,
    create_objective,
    evaluate,
    fit,
    load_checkpoint,
)
from lineup.train.augment import Augmentation

if TYPE_CHECKING:
    from lineup.search.pruning import PruningContext


@dataclass
class RunResult:
    """What a finished run hands back to the store."""

    status: str  # complete | diverged | failed | interrupted | pruned (a search trial stopped early)
    summary: dict[str, Any] = field(default_factory=dict)
    histories: dict[str, History] = field(default_factory=dict)  # "train", and "refit" when refitted
    evaluations: dict[str, Evaluation] = field(default_factory=dict)  # "train", "val", "test", "test_refit"
    failures: list[Failure] = field(default_factory=list)
    embeddings: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # split -> (index, features)
    # split -> {declared layer: (N, C) channel means}, on the examples of embeddings[split], input side first
    layers: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"
    wall_time: float = 0.0
    error: str | None = None


def resolve_device(name: str) -> torch.device:
    """``auto``: the first CUDA device when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} was asked for but this machine has no CUDA device; use 'auto' or 'cpu'")
    return dev


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@lru_cache(maxsize=1)
def _git_revision() -> str | None:
    src = Path(lineup.__file__).resolve().parent
    try:
        out = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def provenance(device: torch.device, spec: dict[str, Any] | None = None) -> dict[str, Any]:
    """Versions, git revision and machine facts recorded with every run; with the run's ``spec``, also every
    plugin module of the process (package, version, sha256 of its source), so a result can be traced to the
    exact code of a model, dataset or objective that lineup does not ship."""
    info: dict[str, Any] = {
        "lineup": lineup.__version__, "git_revision": _git_revision(), "python": platform.python_version(),
        "torch": torch.__version__, "numpy": np.__version__, "platform": platform.platform(),
        "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "device": str(device),
    }
    if device.type == "cuda":
        info["device_name"] = torch.cuda.get_device_name(device)
    if spec is not None:
        from lineup.plugins import plugin_provenance

        plugins = plugin_provenance(spec)
        if plugins:
            info["plugins"] = plugins
    return info


def _failures(ev: Evaluation, data: DataBundle, k: int) -> list[Failure]:
    """The ``k`` most confident mistakes on the test split, with their stored images."""
    wrong = np.flatnonzero(ev.pred != ev.y)
    conf = ev.probs[wrong, ev.pred[wrong]]
    top = wrong[np.argsort(-conf, kind="stable")[:k]]
    x = data.test.x
    return [Failure(index=int(ev.index[i]), y=int(ev.y[i]), pred=int(ev.pred[i]),
                    confidence=float(ev.probs[i, ev.pred[i]]),
                    image=x[int(i)].cpu().numpy().astype(np.uint8) if x.dtype == torch.uint8
                    else np.clip(x[int(i)].cpu().numpy() * 255, 0, 255).astype(np.uint8))
            for i in top]


#: Examples of the test split whose ``forward_features`` and declared layers (``representation_layers``) are stored
#: with every run (the same ones for every run).
EMBEDDING_EXAMPLES = 1000


def embedding_rows(n: int, k: int = EMBEDDING_EXAMPLES) -> torch.Tensor:
    """A fixed, sorted random subset of ``k`` of ``n`` positions: every run of a study embeds the same examples."""
    if n <= k:
        return torch.arange(n)
    return torch.randperm(n, generator=torch.Generator().manual_seed(0))[:k].sort().values


def _features(model: LineupModel, data: DataBundle, rows: torch.Tensor, device: torch.device,
              batch_size: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``forward_features`` and the declared layers' channel means on test ``rows``, in one forward pass."""
    split = data.test.take(rows)
    batches = (data.normalization.apply(split.x[lo: lo + batch_size].to(device))
               for lo in range(0, len(split), batch_size))
    features, layers = record_representations(model, batches)
    if FEATURES in layers:
        raise ValueError(f"{type(model).__name__}.representation_layers() declares {FEATURES!r}, the name under "
                         "which forward_features is stored; rename that layer")
    return features, layers


@dataclass(frozen=True)
class RunContext:
    """Where a run keeps its files and how it is told to stop; supplied by the executor.

    Attributes:
        artifact_dir: the run's own folder (checkpoints, final weights); ``None``: keep nothing on disk.
        interrupt: set to ask the run to stop after its current step and checkpoint.
        checkpoint_every_s: seconds between checkpoints inside an epoch (epoch ends always checkpoint).
        init_weights: the ``final.pt`` of the run named by the spec's ``init`` (required when it has one).
        pruning: for a search trial, the trials it is judged against after each epoch (``lineup.search.pruning``).
    """

    artifact_dir: Path | None = None
    interrupt: threading.Event | None = None
    checkpoint_every_s: float = 60.0
    init_weights: Path | None = None  # final weights of the run that this one starts from (spec key "init")
    pruning: PruningContext | None = None  # set by the search driver for its trials (spec key "trial")


CHECKPOINT = "checkpoint.pt"
FINAL_WEIGHTS = "final.pt"


def _train_once(run: RunSpec, data: DataBundle, device: torch.device, *, refit_epochs: int | None,
                progress: bool, ctx: RunContext) -> tuple[Any, Any, Any, dict[str, Any]]:
    spec, cfg = run.spec, run.spec["train"]
    seed_everything(run.seed)
    model = create_model(spec["model"]["name"], data.input_shape, data.num_classes, **spec["model"]["options"])
    if "init" in spec:
        _start_from(model, spec["init"]["run"], ctx.init_weights)
    model = model.to(device)
    if has_generator(model):  # a GAN draws images in the value range of the normalised training images
        model.set_input_range(*input_range(data.train, data.normalization))  # type: ignore[operator]
    objective = create_objective(model.default_objective if cfg["objective"] == "auto" else cfg["objective"])
    if getattr(model, "fits_without_gradients", False):  # a scikit-learn estimator: fitted at once, no steps
        return _fit_at_once(run, model, objective, data, device, refit=refit_epochs is not None)
    optim_cfg = OptimConfig(name=cfg["optimizer"], lr=cfg["lr"], momentum=cfg["momentum"],
                            weight_decay=cfg["weight_decay"], weight_decay_mode=cfg["weight_decay_mode"])
    configure = getattr(objective, "configure_optimizers", None)  # an objective that owns its step (a GAN's)
    optimizer = configure(model, optim_cfg) if callable(configure) else build_optimizer(model.parameters(), optim_cfg)
    callbacks: list[Callback] = [DivergenceGuard(every=1 if device.type == "cpu" else 50)]
    es = cfg.get("early_stopping")
    if es and refit_epochs is None:
        callbacks.append(EarlyStopping(es["monitor"], mode=es["mode"], patience=es["patience"],
                                       min_delta=es["min_delta"], restore_best=es["restore_best"]))
    if progress:
        callbacks.append(ProgressBar(f"{run.label} s{run.seed}" + (" refit" if refit_epochs else "")))
    pruner = None
    if ctx.pruning is not None and refit_epochs is None:  # a search trial: stopped early when it looks poor
        from lineup.search.pruning import PruneCallback

        pruner = PruneCallback(ctx.pruning)
        callbacks.append(pruner)
    if has_generator(model) and ctx.artifact_dir is not None and refit_epochs is None:
        callbacks.append(sample_grids(data, cfg["epochs"], ctx.artifact_dir))
    resume = None
    if ctx.artifact_dir is not None:
        path = ctx.artifact_dir / (CHECKPOINT if refit_epochs is None else "checkpoint-refit.pt")
        resume = load_checkpoint(path)
        callbacks.append(Checkpoint(path, every_s=ctx.checkpoint_every_s))  # last: saves the others' state
    if refit_epochs is None:
        train, val, epochs = data.train, data.val, cfg["epochs"]
    else:  # the refit protocol: train+validation, for the epoch count chosen on validation
        train, val, epochs = type(data.train).concat(data.train, data.val), None, refit_epochs
    aug = cfg.get("augment")
    augment = None
    if aug and (aug["hflip"] or aug["shift"]):
        norm = data.normalization
        fill = tuple(-m / sd for m, sd in zip(norm.mean, norm.std, strict=True))  # a black pixel, normalised
        augment = Augmentation(hflip=aug["hflip"], shift=aug["shift"], fill=fill)
    state = fit(model, objective, optimizer, train, data.normalization, epochs=epochs,
                batch_size=cfg["batch_size"], seed=run.seed, device=device, val=val,
                eval_batch_size=cfg["eval_batch_size"], callbacks=callbacks, resume=resume, interrupt=ctx.interrupt,
                lr_schedule=cfg.get("lr_schedule", "constant"), augment=augment)
    info = {"epochs_trained": state.epoch, "stop_reason": state.stop_reason or "max epochs",
            "best_epoch": state.restored_epoch or state.epoch, "diverged": state.diverged,
            "diverged_step": state.diverged_step, "objective": objective.name}
    if pruner is not None:
        info["trial"] = {"number": ctx.pruning.number, "pruned": pruner.pruned,  # type: ignore[union-attr]
                         "system_attrs": pruner.system_attrs()}
    return model, objective, state, info


def _fit_at_once(run: RunSpec, model: Any, objective: Any, data: DataBundle, device: torch.device, *,
                 refit: bool) -> tuple[Any, Any, Any, dict[str, Any]]:
    """``_train_once`` for a model that no gradient trains (``lineup.models.estimators``)."""
    from lineup.train.estimators import fit_estimator

    train = type(data.train).concat(data.train, data.val) if refit else data.train
    state = fit_estimator(model, objective, train, data.normalization, seed=run.seed, device=device,
                          val=None if refit else data.val, eval_batch_size=run.spec["train"]["eval_batch_size"])
    info = {"epochs_trained": state.epoch, "stop_reason": state.stop_reason, "best_epoch": state.epoch,
            "diverged": False, "diverged_step": None, "objective": objective.name}
    return model, objective, state, info


def execute_run(run: RunSpec, data: DataBundle, *, progress: bool = False,
                ctx: RunContext | None = None) -> RunResult:
    """Train and evaluate one run; any exception becomes a ``failed`` result with its traceback.

    With an artifact folder in ``ctx``, the run resumes from its checkpoint when one is there, checkpoints as it
    goes, and leaves its final weights in ``final.pt``. A run resumed after a crash ends with the same weights
    and history, bit for bit on CPU, as one that never stopped.
    """
    t0 = time.perf_counter()
    try:
        result = _execute(run, data, progress=progress, ctx=ctx or RunContext())
    except Exception as e:  # a failed run is recorded and the study goes on
        result = RunResult(status="failed", error=f"{type(e).__name__}: {e}\n{traceback.format_exc()}")
    result.wall_time = time.perf_counter() - t0
    return result


def _trial_result(result: RunResult, model: LineupModel, objective: Any, data: DataBundle, device: torch.device,
                  batch_size: int) -> RunResult:
    """Finish a search trial: its training and validation scores, and ``pruned`` if the pruner stopped it. No test
    evaluation, predictions, embeddings or weights: the search must not see the test split, and keeps little."""
    for name, split in (("train", data.train), ("val", data.val)):
        ev = evaluate(model, objective, split, data.normalization, device=device, batch_size=batch_size)
        result.summary[f"{name}_acc"], result.summary[f"{name}_loss"] = ev.acc, ev.loss
        result.summary.update({f"{name}_{part}": v for part, v in ev.parts.items()})
    if result.summary.get("trial", {}).get("pruned"):
        result.status = "pruned"
    return result


def _start_from(model: torch.nn.Module, source: str, path: Path | None) -> list[str]:
    """Load the final weights of run ``source`` into ``model`` through its ``load_pretrained``."""
    from lineup.study.runner import check_init

    if path is None or not path.exists():
        raise RuntimeError(f"the final weights of run {source[:12]}, which this run starts from, are not at "
                           f"{path}; train that run first (run the study again)")
    weights = torch.load(path, map_location="cpu", weights_only=True)
    return check_init(model, "this run", weights, f"run {source[:12]}")


def _execute(run: RunSpec, data: DataBundle, *, progress: bool, ctx: RunContext) -> RunResult:
    cfg = run.spec["train"]
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg["threads"]))
    device = resolve_device(cfg["device"])
    result = RunResult(status="complete", device=str(device), provenance=provenance(device, run.spec))
    if "init" in run.spec:
        result.provenance["init_from"] = {"run": run.spec["init"]["run"]}
    model, objective, state, info = _train_once(run, data, device, refit_epochs=None, progress=progress, ctx=ctx)
    if state.interrupted:
        return RunResult(status="interrupted", device=str(device), error="interrupted; run again to resume")
    ms = summarize(model, data.input_shape)
    result.summary.update(info, params=ms.total_params, flops=ms.flops)
    result.histories["train"] = state.history
    if state.diverged:
        finite = [m for m in state.history.epochs if np.isfinite(m.get("train_loss", np.nan))]
        result.status, result.error = "diverged", state.stop_reason
        result.summary["last_finite"] = finite[-1] if finite else {}
        return result
    norm, ebs = data.normalization, cfg["eval_batch_size"]
    if "trial" in run.spec:  # a search trial is judged on validation only: the test split stays unseen
        return _trial_result(result, model, objective, data, device, ebs)
    for name, split in (("train", data.train), ("val", data.val), ("test", data.test)):
        ev = evaluate(model, objective, split, norm, device=device, batch_size=ebs)
        result.evaluations[name] = ev
        result.summary[f"{name}_acc"], result.summary[f"{name}_loss"] = ev.acc, ev.loss
        result.summary.update({f"{name}_{part}": v for part, v in ev.parts.items()})  # e.g. test_reconstruction
    if data.distribution is not None:  # measured here: the report reads the store and never draws data
        known, grid = known_distribution_results(model, objective, data, result.evaluations["test"], device=device,
                                                 batch_size=ebs)
        result.summary.update(known)
        if grid is not None:
            result.evaluations[GRID_SPLIT] = grid
    result.failures = _failures(result.evaluations["test"], data, run.spec["protocol"]["failure_cases"])
    rows = embedding_rows(len(data.test))
    features, layers = _features(model, data, rows, device, ebs)
    result.embeddings["test"], result.layers["test"] = (data.test.index[rows].numpy(), features), layers
    if has_probe(model):  # every learned representation read by the same linear probe, on frozen features
        result.summary.update(probe_results(model, data, embedding_rows(len(data.train), PROBE_TRAIN_EXAMPLES),
                                            device=device, batch_size=ebs))
    if has_latent_space(model):  # autoencoders, VAEs: their code read by an SVM and clusterings, beside the pixels'
        result.summary.update(latent_results(model, data, device=device, batch_size=ebs, seed=run.seed,
                                             artifact_dir=ctx.artifact_dir))
    if has_generator(model):  # GANs: per-step losses, sample grids, and two distances of samples to test images
        result.summary.update(generative_results(model, data, state.history.step_parts, device=device,
                                                 batch_size=ebs, seed=run.seed, artifact_dir=ctx.artifact_dir))
    # Train predictions are only needed for the accuracy above; storing them would dwarf the rest.
    del result.evaluations["train"]
    if run.spec["protocol"]["refit"]:
        refit_model, objective, state, _ = _train_once(run, data, device, refit_epochs=info["best_epoch"],
                                                       progress=progress, ctx=ctx)
        if state.interrupted:
            return RunResult(status="interrupted", device=str(device), error="interrupted; run again to resume")
        result.histories["refit"] = state.history
        ev = evaluate(refit_model, objective, data.test, norm, device=device, batch_size=ebs)
        result.evaluations["test_refit"] = ev
        result.summary.update(refit_test_acc=ev.acc, refit_test_loss=ev.loss, refit_epochs=info["best_epoch"])
    if ctx.artifact_dir is not None:
        weights = model.state_dict()
        atomic_write(ctx.artifact_dir / FINAL_WEIGHTS, lambda f: torch.save(weights, f))
    return result
