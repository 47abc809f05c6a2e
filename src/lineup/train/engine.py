"""The fit loop: one short, explicit loop for every model and objective.

Pseudo-code of ``fit`` (the engine never knows which model it trains)::

    for epoch in range(max_epochs):
        for x, y in batches(train, order=epoch_order(seed, epoch)):
            if objective has train_step:   # it owns its optimisation (a GAN's several networks and optimisers)
                loss, logits, parts = objective.train_step(model, optimizer, x, y); record grad norm
            else:
                loss, logits, parts = batch_loss(objective, model, x, y); backward; record grad norm; optimizer.step()
        metrics = running train loss/acc/parts + evaluate(model, val)
        history.append(metrics); callbacks.on_epoch_end(...)   # early stopping, divergence guard
        if state.should_stop: break
    callbacks.on_fit_end(...)   # e.g. restore the best weights
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from lineup.data._types import Normalization, Split
from lineup.data.batching import epoch_order, iter_batches, num_batches
from lineup.train.augment import Augment, lr_factor, step_generator
from lineup.train.callbacks import Callback
from lineup.train.objectives import Objective, batch_loss


@dataclass
class History:
    """Plain-data training history (after skorch/Keras): per-epoch dicts, every step's loss, and every step's value
    of each of the objective's terms (``step_parts[name][i]`` belongs to step ``i + 1``)."""

    epochs: list[dict[str, float]] = field(default_factory=list)
    step_loss: list[float] = field(default_factory=list)
    step_parts: dict[str, list[float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"epochs": self.epochs, "step_loss": self.step_loss, "step_parts": self.step_parts}

    @staticmethod
    def from_dict(d: dict[str, Any]) -> History:
        return History(epochs=list(d["epochs"]), step_loss=list(d["step_loss"]),
                       step_parts={k: list(v) for k, v in d.get("step_parts", {}).items()})


class OptimizerLike(Protocol):
    """What the loop needs of an optimiser: a ``torch.optim.Optimizer``, or a group of them that an objective with
    its own ``train_step`` builds (``lineup.train.adversarial.OptimizerGroup``)."""

    @property
    def param_groups(self) -> list[dict[str, Any]]: ...

    def zero_grad(self, set_to_none: bool = True) -> None: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state_dict: dict[str, Any]) -> None: ...


@dataclass
class TrainState:
    """Everything the loop and its callbacks share, and everything a checkpoint needs to resume exactly.

    ``epoch`` counts completed epochs and ``step_in_epoch`` the steps done in the current one; the running
    sums of a partly done epoch (``epoch_losses`` ...) are part of the state so that a run resumed mid-epoch
    reports the same epoch metrics as one that never stopped.
    """

    model: nn.Module
    optimizer: OptimizerLike
    history: History
    max_epochs: int
    steps_per_epoch: int
    callbacks: Sequence[Callback] = ()
    epoch: int = 0
    step: int = 0
    step_in_epoch: int = 0
    should_stop: bool = False
    stop_reason: str = ""
    diverged: bool = False
    diverged_step: int | None = None
    interrupted: bool = False
    restored_epoch: int | None = None
    epoch_losses: list[torch.Tensor] = field(default_factory=list)
    epoch_norms: list[torch.Tensor] = field(default_factory=list)
    epoch_correct: torch.Tensor = field(default_factory=lambda: torch.zeros((), dtype=torch.long))
    epoch_parts: dict[str, list[torch.Tensor]] = field(default_factory=dict)  # the objective's terms, per step
    epoch_time: float = 0.0  # seconds spent in the current epoch before the last resume

    def mark_diverged(self, reason: str) -> None:
        self.diverged, self.diverged_step = True, self.step
        self.should_stop, self.stop_reason = True, f"diverged: {reason}"

    _COUNTERS = ("epoch", "step", "step_in_epoch", "should_stop", "stop_reason", "diverged", "diverged_step",
                 "epoch_time")

    def state_dict(self) -> dict[str, Any]:
        """Model, optimiser, callbacks, history, counters and RNG states: tensors and plain data only, so a
        checkpoint loads with ``torch.load(weights_only=True)``."""
        np_state = np.random.get_state()
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "callbacks": [cb.state_dict() for cb in self.callbacks],
            "history": self.history.to_dict(),
            "counters": {k: getattr(self, k) for k in self._COUNTERS},
            "partial": {
                "losses": torch.stack(self.epoch_losses).cpu() if self.epoch_losses else torch.zeros(0),
                "norms": torch.stack(self.epoch_norms).cpu() if self.epoch_norms else torch.zeros(0),
                "correct": self.epoch_correct.cpu(),
                "parts": {k: torch.stack(v).cpu() for k, v in self.epoch_parts.items()},
            },
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                          "has_gauss": int(np_state[3]), "gauss": float(np_state[4])},
                "python": _python_rng_state(),
            },
        }

    def load_state_dict(self, state: dict[str, Any], device: torch.device) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        for cb, cb_state in zip(self.callbacks, state["callbacks"], strict=True):
            cb.load_state_dict(cb_state)
        self.history = History.from_dict(state["history"])
        for k, v in state["counters"].items():
            setattr(self, k, v)
        if self.stop_reason == "interrupted":  # the interruption is what the resume undoes
            self.should_stop, self.stop_reason = False, ""
        part = state["partial"]
        self.epoch_losses = [t.to(device) for t in part["losses"]]
        self.epoch_norms = [t.to(device) for t in part["norms"]]
        self.epoch_correct = part["correct"].to(device)
        self.epoch_parts = {k: [t.to(device) for t in v] for k, v in part.get("parts", {}).items()}
        rng = state["rng"]
        torch.set_rng_state(rng["torch"])
        if rng["cuda"]:
            torch.cuda.set_rng_state_all(rng["cuda"])
        n = rng["numpy"]
        np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
        _set_python_rng_state(rng["python"])


def _python_rng_state() -> dict[str, Any]:
    version, internal, gauss = random.getstate()
    return {"version": version, "internal": torch.tensor(internal, dtype=torch.int64), "gauss": gauss}


def _set_python_rng_state(s: dict[str, Any]) -> None:
    random.setstate((s["version"], tuple(int(v) for v in s["internal"].tolist()), s["gauss"]))


@dataclass(frozen=True)
class OptimConfig:
    """The optimiser part of a run's training settings."""

    name: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    weight_decay_mode: str = "coupled"


def build_optimizer(params: Any, cfg: OptimConfig) -> torch.optim.Optimizer:
    """Adam, AdamW, SGD with momentum or RMSprop with coupled or decoupled weight decay.

    Coupled decay adds ``weight_decay * w`` to the gradient (L2 regularisation; for Adam it is then scaled
    by the adaptive step, Loshchilov & Hutter, arXiv:1711.05101). Decoupled decay shrinks the weights by
    ``lr * weight_decay`` each step, independently of the gradient.
    """
    wd, lr = cfg.weight_decay, cfg.lr
    decoupled = cfg.weight_decay_mode == "decoupled" or cfg.name == "adamw"
    if cfg.name in ("adam", "adamw"):
        if decoupled:
            return torch.optim.AdamW(params, lr=lr, weight_decay=wd)
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    if cfg.name == "sgd":
        opt = torch.optim.SGD(params, lr=lr, momentum=cfg.momentum, weight_decay=0.0 if decoupled else wd)
    elif cfg.name == "rmsprop":
        opt = torch.optim.RMSprop(params, lr=lr, momentum=cfg.momentum, weight_decay=0.0 if decoupled else wd)
    else:
        raise ValueError(f"unknown optimizer {cfg.name!r}")
    if decoupled and wd > 0:
        _add_decoupled_decay(opt, wd)
    return opt


def _add_decoupled_decay(opt: torch.optim.Optimizer, wd: float) -> None:
    # SGD and RMSprop have no decoupled option in torch: shrink the weights before each step.
    def shrink(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        with torch.no_grad():
            for group in optimizer.param_groups:
                for p in group["params"]:
                    p.mul_(1 - group["lr"] * wd)

    opt.register_step_pre_hook(shrink)


@dataclass
class Evaluation:
    """Predictions of a model on one split, in the split's order."""

    loss: float
    acc: float
    probs: np.ndarray  # (N, K) float32
    y: np.ndarray  # (N,) int64
    index: np.ndarray  # (N,) int64, positions in the source file
    parts: dict[str, float] = field(default_factory=dict)  # the objective's loss terms, means over the split

    @property
    def pred(self) -> np.ndarray:
        return self.probs.argmax(axis=1)


@torch.inference_mode()
def evaluate(model: nn.Module, objective: Objective, split: Split, norm: Normalization, *,
             device: torch.device, batch_size: int = 1024) -> Evaluation:
    """Loss, accuracy and class probabilities of ``model`` on ``split`` (eval mode, no autograd)."""
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=device)
    part_sums: dict[str, torch.Tensor] = {}
    probs = []
    for x, y in iter_batches(split, norm, batch_size=batch_size, device=device):
        loss, out, parts = batch_loss(objective, model, x, y, reduction="sum")
        loss_sum += loss
        for k, v in parts.items():
            part_sums[k] = part_sums.get(k, 0.0) + v
        probs.append(objective.predict_proba(out).float())
    model.train(was_training)
    p = torch.cat(probs).cpu().numpy()
    y_np = split.y.cpu().numpy()
    n = max(len(split), 1)
    return Evaluation(loss=float(loss_sum) / n, acc=float((p.argmax(1) == y_np).mean()) if len(split) else 0.0,
                      probs=p, y=y_np, index=split.index.cpu().numpy(),
                      parts={k: float(v) / n for k, v in part_sums.items()})


#: Training precisions: ``fp32``, and ``bf16`` autocast (float32 weights, bfloat16 matrix products and convolutions).
PRECISIONS = ("fp32", "bf16")


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    """The context a training forward pass runs in for ``precision``.

    ``bf16`` is mixed precision as torch.autocast does it: convolutions and matrix products take bfloat16 inputs,
    while reductions, softmax and the losses stay float32. bfloat16 keeps float32's exponent range, so unlike
    float16 it needs no loss scaling (Kalamkar et al., arXiv:1905.12322). On CPUs without bfloat16 units it is
    slower than ``fp32``; it pays on GPUs with tensor cores.
    """
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")


def _grad_norm(params: Sequence[torch.Tensor]) -> torch.Tensor:
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    # One fused kernel for all the per-tensor norms (as clip_grad_norm_ does), not one launch per parameter.
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))


def fit(model: nn.Module, objective: Objective, optimizer: OptimizerLike, train: Split,
        norm: Normalization, *, epochs: int, batch_size: int, seed: int, device: torch.device,
        val: Split | None = None, eval_batch_size: int = 1024, callbacks: Sequence[Callback] = (),
        resume: dict[str, Any] | None = None, interrupt: threading.Event | None = None,
        lr_schedule: str = "constant", augment: Augment | None = None, precision: str = "fp32") -> TrainState:
    """Train ``model`` in place and return the final state with its history.

    Args:
        model: on ``device`` already.
        objective: maps outputs to a loss and to class probabilities. One with ``train_step(model, optimizer, x,
            y) -> BatchLoss`` does its own backward passes and optimiser steps, and the loop records the norm of
            the gradients the parameters hold after it (each parameter's last one).
        optimizer: over ``model``'s parameters; for an objective with ``train_step``, what its
            ``configure_optimizers`` built.
        train: training examples; shuffled per epoch as a pure function of ``(seed, epoch)``.
        norm: normalisation applied to each batch.
        epochs: maximum number of epochs.
        batch_size: examples per step.
        seed: run seed (shuffling; the caller seeds the global RNGs for initialisation and dropout).
        device: where batches go.
        val: validation split, evaluated after every epoch (``None``: no val_* metrics).
        eval_batch_size: batch size of evaluation passes.
        callbacks: hooks in the order given (a checkpoint callback goes last, to save the others' state).
        resume: a ``TrainState.state_dict()`` to continue from, e.g. a checkpoint's content.
        interrupt: when set (say by a signal handler), training stops after the current step with
            ``state.interrupted``; callbacks see the flag in ``on_step_end`` and can checkpoint.
        lr_schedule: how the learning rate moves over the ``epochs`` (see ``augment.lr_factor``); set at every
            step from the optimizer's base rate.
        augment: random transformation of each training batch, drawn from a generator seeded by
            ``(seed, step)``.
        precision: ``fp32``, or ``bf16``: each training forward pass and loss under bfloat16 autocast (see
            ``autocast``); weights, gradients, optimiser state and evaluation stay float32.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    train_step = getattr(objective, "train_step", None)
    if precision != "fp32" and train_step is not None:
        raise ValueError(f"precision {precision!r} needs an objective whose loss the loop computes; "
                         f"{objective.name!r} takes its own optimisation steps and trains in fp32")
    base_lrs = [group.setdefault("initial_lr", group["lr"]) for group in optimizer.param_groups]
    state = TrainState(model=model, optimizer=optimizer, history=History(), max_epochs=epochs,
                       steps_per_epoch=num_batches(len(train), batch_size), callbacks=callbacks)
    if resume is not None:
        state.load_state_dict(resume, device)
    for cb in callbacks:
        cb.on_fit_start(state)
    model.train()
    while state.epoch < epochs and not state.should_stop:
        for cb in callbacks:
            cb.on_epoch_start(state)
        t0 = time.perf_counter()
        if state.step_in_epoch == 0:
            state.epoch_losses, state.epoch_norms, state.epoch_parts = [], [], {}
            state.epoch_correct = torch.zeros((), dtype=torch.long, device=device)
            state.epoch_time = 0.0
        # Per-step values stay on the device and are read once per epoch: no host sync inside the loop.
        order = epoch_order(len(train), seed=seed, epoch=state.epoch)
        for x, y in iter_batches(train, norm, batch_size=batch_size, device=device, order=order,
                                 start=state.step_in_epoch):
            if augment is not None:
                x = augment(x, step_generator(seed, state.step))
            if lr_schedule != "constant":
                factor = lr_factor(lr_schedule, state.step, epochs * state.steps_per_epoch)
                for group, base in zip(optimizer.param_groups, base_lrs, strict=True):
                    group["lr"] = base * factor
            if train_step is not None:  # the objective does its own backward passes and optimiser steps
                loss, out, parts = train_step(model, optimizer, x, y)
            else:
                with autocast(device, precision):
                    loss, out, parts = batch_loss(objective, model, x, y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
            for k, v in parts.items():
                state.epoch_parts.setdefault(k, []).append(v)
            state.epoch_norms.append(_grad_norm(params))
            if train_step is None:
                optimizer.step()  # type: ignore[attr-defined]
            with torch.no_grad():
                state.epoch_correct += (objective.predict_proba(out).argmax(1) == y).sum()
            state.epoch_losses.append(loss.detach())
            state.step += 1
            state.step_in_epoch += 1
            if interrupt is not None and interrupt.is_set():
                state.interrupted, state.should_stop, state.stop_reason = True, True, "interrupted"
                state.epoch_time += time.perf_counter() - t0
            for cb in callbacks:
                cb.on_step_end(state, loss.detach())
            if state.should_stop:
                break
        if state.interrupted:
            break
        step_losses = torch.stack(state.epoch_losses).float().cpu()
        state.history.step_loss.extend(step_losses.tolist())
        for k, v in state.epoch_parts.items():
            state.history.step_parts.setdefault(k, []).extend(torch.stack(v).float().cpu().tolist())
        seen = min(state.step_in_epoch * batch_size, len(train))
        metrics: dict[str, float] = {
            "epoch": state.epoch + 1,  # epochs completed, so 1 is the first
            "step": state.step,
            # Averages over the epoch's batches while the weights changed (as Keras reports them).
            "train_loss": float(step_losses.mean()),
            "train_acc": float(state.epoch_correct) / seen,
            "grad_norm": float(torch.stack(state.epoch_norms).float().mean()),
            "lr": float(optimizer.param_groups[0]["lr"]),
            **{f"train_{k}": float(torch.stack(v).float().mean()) for k, v in state.epoch_parts.items()},
        }
        if val is not None and not state.diverged:
            ev = evaluate(model, objective, val, norm, device=device, batch_size=eval_batch_size)
            metrics.update(val_loss=ev.loss, val_acc=ev.acc, **{f"val_{k}": v for k, v in ev.parts.items()})
        metrics["time_s"] = state.epoch_time + time.perf_counter() - t0
        state.history.epochs.append(metrics)
        state.epoch += 1
        state.step_in_epoch = 0
        state.epoch_losses, state.epoch_norms, state.epoch_parts = [], [], {}
        for cb in callbacks:
            cb.on_epoch_end(state, metrics)
    for cb in callbacks:
        cb.on_fit_end(state)
    return state
