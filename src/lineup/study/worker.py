"""One run, start to finish, as a pure function of its spec and its data: no store, no report.

Executors call ``execute_run`` wherever the run happens (this process, a pool worker, a Ray task) and hand
the ``RunResult`` back to the driver, which alone writes the store.
"""

from __future__ import annotations

import json
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
from lineup.data._types import DataBundle, Split
from lineup.data.splits import fixed_rows
from lineup.models import LineupModel, create_model, summarize
from lineup.models.capture import record_representations
from lineup.spec import RunSpec
from lineup.store import FEATURES, Failure
from lineup.study.generative import generative_results, has_generator, input_range, sample_grids
from lineup.study.known import GRID_SPLIT, density_results, known_distribution_results
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
    """The positions every run of a study embeds: ``fixed_rows`` with ``EMBEDDING_EXAMPLES`` by default."""
    return fixed_rows(n, k)


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


#: Device copies of the splits that runs in this process train on: (source split, device) -> copy. A study's runs
#: share one data bundle, so it is copied to a GPU once per process, not once per run.
_RESIDENT: dict[tuple[int, str], tuple[Split, Split]] = {}


def resident(split: Split, device: torch.device) -> Split:
    """``split`` held on ``device``: on a GPU every batch is then sliced there, with no host-to-device copy per step.

    On the CPU it is ``split`` itself. A Fashion-MNIST training split is 42 MB as uint8, so a GPU holds it easily;
    the copies of the last two bundles seen are kept (a study's runs pass one bundle per setting).
    """
    if device.type == "cpu":
        return split
    key = (id(split), str(device))
    if key not in _RESIDENT:
        if len(_RESIDENT) >= 4:
            _RESIDENT.pop(next(iter(_RESIDENT)))
        _RESIDENT[key] = (split, Split(split.x.to(device), split.y.to(device), split.index))  # the source kept alive
    return _RESIDENT[key][1]


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


def _build(run: RunSpec, data: DataBundle, device: torch.device, ctx: RunContext) -> tuple[Any, Any]:
    """The run's model, initialised under its seed (as its own process would build it), and its objective."""
    spec, cfg = run.spec, run.spec["train"]
    seed_everything(run.seed)
    model = create_model(spec["model"]["name"], data.input_shape, data.num_classes, **spec["model"]["options"])
    if "init" in spec:
        _start_from(model, spec["init"]["run"], ctx.init_weights)
    model = model.to(device)
    if callable(getattr(model, "set_input_range", None)):
        # a GAN draws images in the value range of the normalised training images, and a Bernoulli decoder
        # reads that range as its [0, 1]
        model.set_input_range(*input_range(data.train, data.normalization))
    objective = create_objective(model.default_objective if cfg["objective"] == "auto" else cfg["objective"])
    return model, objective


def _optim_config(cfg: dict[str, Any]) -> OptimConfig:
    return OptimConfig(name=cfg["optimizer"], lr=cfg["lr"], momentum=cfg["momentum"],
                       weight_decay=cfg["weight_decay"], weight_decay_mode=cfg["weight_decay_mode"])


def _epoch_callbacks(cfg: dict[str, Any], device: torch.device, *, refit: bool) -> list[Callback]:
    """The callbacks every run has: the divergence guard, and early stopping unless it is a refit."""
    callbacks: list[Callback] = [DivergenceGuard(every=1 if device.type == "cpu" else 50)]
    es = cfg.get("early_stopping")
    if es and not refit:
        callbacks.append(EarlyStopping(es["monitor"], mode=es["mode"], patience=es["patience"],
                                       min_delta=es["min_delta"], restore_best=es["restore_best"]))
    return callbacks


def _fit_options(cfg: dict[str, Any], data: DataBundle) -> dict[str, Any]:
    """The keyword arguments of ``fit`` (and ``fit_stacked``) that come from the run's [train] settings."""
    aug = cfg.get("augment")
    augment = None
    if aug and (aug["hflip"] or aug["shift"]):
        norm = data.normalization
        fill = tuple(-m / sd for m, sd in zip(norm.mean, norm.std, strict=True))  # a black pixel, normalised
        augment = Augmentation(hflip=aug["hflip"], shift=aug["shift"], fill=fill)
    return {"batch_size": cfg["batch_size"], "eval_batch_size": cfg["eval_batch_size"],
            "lr_schedule": cfg.get("lr_schedule", "constant"), "augment": augment,
            "precision": cfg.get("precision", "fp32")}


def _train_info(state: Any, objective: Any) -> dict[str, Any]:
    return {"epochs_trained": state.epoch, "stop_reason": state.stop_reason or "max epochs",
            "best_epoch": state.restored_epoch or state.epoch, "diverged": state.diverged,
            "diverged_step": state.diverged_step, "objective": objective.name}


def _train_once(run: RunSpec, data: DataBundle, device: torch.device, *, refit_epochs: int | None,
                progress: bool, ctx: RunContext) -> tuple[Any, Any, Any, dict[str, Any]]:
    cfg = run.spec["train"]
    model, objective = _build(run, data, device, ctx)
    if getattr(model, "fits_without_gradients", False):  # a scikit-learn estimator: fitted at once, no steps
        return _fit_at_once(run, model, objective, data, device, refit=refit_epochs is not None)
    optim_cfg = _optim_config(cfg)
    configure = getattr(objective, "configure_optimizers", None)  # an objective that owns its step (a GAN's)
    optimizer = configure(model, optim_cfg) if callable(configure) else build_optimizer(model.parameters(), optim_cfg)
    callbacks = _epoch_callbacks(cfg, device, refit=refit_epochs is not None)
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
    train, val = resident(data.train, device), resident(data.val, device)
    if refit_epochs is None:
        epochs = cfg["epochs"]
    else:  # the refit protocol: train+validation, for the epoch count chosen on validation
        train, val, epochs = type(train).concat(train, val), None, refit_epochs
    state = fit(model, objective, optimizer, train, data.normalization, epochs=epochs, seed=run.seed, device=device,
                val=val, callbacks=callbacks, resume=resume, interrupt=ctx.interrupt, **_fit_options(cfg, data))
    info = _train_info(state, objective)
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
    return _finish(run, data, device, result, model, objective, state, info, progress=progress, ctx=ctx)


def _finish(run: RunSpec, data: DataBundle, device: torch.device, result: RunResult, model: Any, objective: Any,
            state: Any, info: dict[str, Any], *, progress: bool, ctx: RunContext) -> RunResult:
    """Everything after a run's training: evaluations, failures, features, probes, latent and generative
    measures, the refit protocol, final weights; the same whether the run trained alone or in a stack."""
    cfg = run.spec["train"]
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
        result.summary.update(density_results(model, data, device=device, seed=run.seed))
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


# ---------------------------------------------------------------------------------------------- stacked groups

#: How executors treat runs that could train together as one stack (``lineup.train.stacked``):
#: ``auto``: on a GPU, time a few steps both ways and keep the faster; on a CPU, train them one by one (stacked
#: LeNet-5s gain nothing on a small CPU, see benchmarks/, and results that depend on a timing would then depend
#: on the machine's load). ``always``: stack every group that can be stacked, without timing. ``off``: never.
STACK_MODES = ("auto", "always", "off")

#: At most this many runs share one stack (beyond it a small CNN's stack no longer gains on an H200).
MAX_STACK = 128


def stack_key(run: RunSpec) -> str | None:
    """What runs must share to train as one stack: everything but the seed, learning rate and weight decay.
    ``None`` for a run that always trains alone: one that starts from another's weights, a search trial, or
    one under the refit protocol (which trains twice)."""
    spec = run.spec
    if "init" in spec or "trial" in spec or spec["protocol"].get("refit"):
        return None
    train = {k: v for k, v in spec["train"].items() if k not in ("lr", "weight_decay")}
    rest = {k: v for k, v in spec.items() if k not in ("seed", "train")}
    return json.dumps({**rest, "train": train, "setting": run.setting}, sort_keys=True, default=str)


def stack_groups(runs: list[RunSpec], mode: str) -> list[list[RunSpec]]:
    """``runs`` in groups that may train as one stack, each in the order of its first run; single runs alone.

    Only runs whose device is a GPU are grouped under ``auto``. Whether a group really stacks is decided when it
    runs (``execute_group``): the models must also pass ``stacking_refusal``.
    """
    if mode not in STACK_MODES:
        raise ValueError(f"unknown stacking mode {mode!r}; choose one of {', '.join(STACK_MODES)}")
    groups: dict[str, list[RunSpec]] = {}
    out: list[list[RunSpec]] = []
    for run in runs:
        key = stack_key(run) if mode != "off" else None
        if key is not None and mode == "auto":
            try:
                key = key if resolve_device(run.spec["train"]["device"]).type == "cuda" else None
            except RuntimeError:  # asked for a GPU this machine lacks: the run fails alone, saying so
                key = None
        if key is None:
            out.append([run])
            continue
        if key not in groups or len(groups[key]) >= MAX_STACK:
            groups[key] = []
            out.append(groups[key])
        groups[key].append(run)
    return out


def execute_group(runs: list[RunSpec], data: DataBundle, ctxs: list[RunContext], *, mode: str = "auto",
                  progress: bool = False) -> list[RunResult]:
    """Train ``runs`` (one group of ``stack_groups``) as one stack where ``mode`` and the models allow, else one
    after another as ``execute_run`` does; one result per run, in order.

    A stacked run records how it was trained under ``provenance["stacking"]`` (the choice and the timings that
    made it). It keeps no checkpoints: interrupted, it trains again from its first step.
    """
    if len(runs) == 1 or mode == "off":
        return [execute_run(r, data, progress=progress, ctx=c) for r, c in zip(runs, ctxs, strict=True)]
    t0 = time.perf_counter()
    try:
        stacked = _train_stacked(runs, data, ctxs, mode=mode)
    except Exception as e:  # a model the stack cannot run (an op vmap lacks, say): train the runs one by one
        stacked = f"{type(e).__name__}: {e}"
    if isinstance(stacked, str):
        results = [execute_run(r, data, progress=progress, ctx=c) for r, c in zip(runs, ctxs, strict=True)]
        for r in results:
            r.provenance["stacking"] = {"choice": "separate", "runs": len(runs), "refused": stacked}
        return results
    device, objective, choice, trained = stacked
    share = (time.perf_counter() - t0) / len(runs)
    results = []
    for run, ctx, (model, state) in zip(runs, ctxs, trained, strict=True):
        t1 = time.perf_counter()
        result = RunResult(status="complete", device=str(device),
                           provenance={**provenance(device, run.spec), **choice.provenance()})
        try:
            result = _finish(run, data, device, result, model, objective, state, _train_info(state, objective),
                             progress=progress, ctx=ctx)
        except Exception as e:  # as in execute_run: this run failed, the others of the stack stand
            result = RunResult(status="failed", error=f"{type(e).__name__}: {e}\n{traceback.format_exc()}")
        result.wall_time = share + time.perf_counter() - t1
        results.append(result)
    return results


def _train_stacked(runs: list[RunSpec], data: DataBundle, ctxs: list[RunContext], *,
                   mode: str) -> str | tuple[torch.device, Any, Any, list[tuple[Any, Any]]]:
    """Train the group as one stack when it can and (under ``auto``) is measured faster; otherwise the reason why
    not, and nothing is trained."""
    from lineup.train.stacked import StackingChoice, fit_auto, measure_stacking, stacking_refusal

    cfg = runs[0].spec["train"]
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg["threads"]))
    device = resolve_device(cfg["device"])
    built = [_build(r, data, device, c) for r, c in zip(runs, ctxs, strict=True)]
    models, objective = [m for m, _ in built], built[0][1]
    optims = [_optim_config(r.spec["train"]) for r in runs]

    def callbacks(i: int) -> list[Callback]:
        return _epoch_callbacks(runs[i].spec["train"], device, refit=False)

    train, val = resident(data.train, device), resident(data.val, device)
    options = _fit_options(cfg, data)
    if mode == "always":
        reason = stacking_refusal(models, objective, optims, [callbacks(i) for i in range(len(runs))])
        choice = StackingChoice(reason is None, float("nan"), float("nan"), len(runs), str(device), reason or "")
    else:
        choice = measure_stacking(models, objective, optims, train, data.normalization, device=device,
                                  callbacks=callbacks, batch_size=options["batch_size"],
                                  precision=options["precision"])
    if not choice.stacked:
        return choice.reason or (f"measured slower: {choice.stacked_s:.4f} s per step stacked against "
                                 f"{choice.separate_s:.4f} s for the runs one by one, on {choice.device}")
    states, choice = fit_auto(models, objective, optims, train, data.normalization, epochs=cfg["epochs"],
                              seeds=[r.seed for r in runs], device=device, val=val, callbacks=callbacks,
                              choice=choice, interrupt=ctxs[0].interrupt, **options)
    return device, objective, choice, list(zip(models, states, strict=True))
