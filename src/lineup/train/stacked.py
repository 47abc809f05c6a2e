"""Stacked training: several runs of one architecture trained together as one vectorised model.

Runs that differ only in their seed, learning rate or weight decay do the same arithmetic on different numbers.
Small models leave a GPU mostly idle, so ``fit_stacked`` trains ``N`` of them at once: the parameters of all
members live in one ``(N, P)`` tensor, the forward pass is ``torch.func.vmap`` over
``torch.func.functional_call``, and the optimiser is the elementwise update of ``torch.optim`` applied to the whole
stack with a per-run learning-rate and weight-decay vector. Pseudo-code (compare ``engine.fit``)::

    theta = stack(initial weights of each member)            # (N, P), one row per run
    for epoch in range(max_epochs):
        orders = [epoch_order(seed_k, epoch) for each member]  # each run sees its own batches
        for step: x (N, B, C, H, W), y (N, B) -> losses (N,) = vmap(loss)(theta, x, y); sum().backward()
                  theta <- adam/sgd update with lr (N, 1), weight_decay (N, 1)
        per member: history.append(metrics); callbacks.on_epoch_end(...)   # early stopping
        members that stop leave the stack (their rows are dropped), the others go on
    per member: callbacks.on_fit_end(...)   # e.g. restore the best weights

Each member ends with what a separate ``fit`` of that run would hand back: a ``TrainState`` whose model holds
its final weights, whose optimiser holds its moments, and whose history has the same epochs and metrics. The
numbers agree to float rounding, not bit for bit: a vmapped convolution is one grouped convolution over all
members, and its kernels add the same products in another order than a convolution of one model does (about
1e-7 relative per step). The optimiser update itself is torch.optim's on CPU, bit for bit. SGD keeps the
differences near that size over several epochs; Adam divides each step by the gradient's running magnitude, so a
near-cancelling gradient sum has its rounding noise turned into a full-size step, and its runs drift apart faster
(``tests/test_stacked.py`` states both tolerances).

What can be stacked (``stacking_refusal`` says why not, and ``fit_auto`` then trains the runs one by one):

- the same model class with the same structure (parameter names and shapes, and printed layers);
- no buffers: batch norm keeps running statistics that a separate run updates in place; stacking them would need
  batched buffers whose updates ``functional_call`` does not return, so such models are refused rather than
  approximated;
- no randomness in the forward pass: a separate run draws dropout masks from the global generator, in an order
  that no batched draw reproduces. Dropout layers are refused, and the forward runs under
  ``vmap(randomness="error")`` so that any other random call fails instead of silently differing;
- objectives that read only the model's outputs (no ``model_loss``, as reconstruction and ELBO have, and no
  ``train_step`` of their own, as a GAN's has);
- Adam, AdamW and SGD with momentum, coupled or decoupled weight decay (not RMSprop);
- callbacks that act only at epoch ends and at the start and end of training (early stopping). Per-step hooks
  (checkpoints, progress bars) would need one member's state in the middle of an epoch, which the stack does not
  keep; a stacked run has no checkpoints: interrupted, it starts again from its first step;
- a member whose loss or gradient stops being finite is taken out of the stack at the end of that epoch and
  marked ``diverged``; a separate run stops at the very step, so ``fit_auto`` trains such members again
  separately from their initial weights to record exactly what a separate run would.

Early stopping is per member: a member that stops leaves the stack with its history ending where a separate
run's would, and restores its best weights as ``EarlyStopping`` does; the others go on training.
"""

from __future__ import annotations

import copy
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, vmap

from lineup.data._types import Normalization, Split
from lineup.data.batching import epoch_order, num_batches
from lineup.train.augment import Augment, lr_factor, step_generator
from lineup.train.callbacks import Callback, DivergenceGuard
from lineup.train.engine import History, OptimConfig, TrainState, autocast, build_optimizer, fit
from lineup.train.objectives import Objective

#: Adam's moment decay rates and epsilon: torch.optim's defaults, which ``build_optimizer`` keeps.
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8

#: Member index -> fresh callbacks for that member (fresh, so that a member trained again starts clean).
CallbackFactory = Callable[[int], Sequence[Callback]]


def stacking_refusal(models: Sequence[nn.Module], objective: Objective, optims: Sequence[OptimConfig],
                     callbacks: Sequence[Sequence[Callback]] = ()) -> str | None:
    """Why these runs cannot be trained as one stack with the results of separate runs; ``None`` when they can.

    Args:
        models: one initialised model per run.
        objective: the objective they all train.
        optims: each run's optimiser settings; only ``lr`` and ``weight_decay`` may differ.
        callbacks: each run's callbacks.
    """
    if not models:
        return "no runs to stack"
    if len(optims) != len(models):
        return f"{len(models)} models but {len(optims)} optimiser settings"
    first = models[0]
    shapes = [(n, tuple(p.shape)) for n, p in first.named_parameters()]
    for m in models[1:]:
        if type(m) is not type(first) or [(n, tuple(p.shape)) for n, p in m.named_parameters()] != shapes \
                or repr(m) != repr(first):
            return "the models differ in class or structure"
    if any(not p.requires_grad for p in first.parameters()):
        return "the model has frozen parameters"
    if any(True for _ in first.buffers()):
        return "the model has buffers (e.g. batch-norm running statistics), which a stack cannot update per run"
    if any(isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0 for m in first.modules()):
        return "the model has dropout, whose random masks a stack cannot draw as separate runs do"
    if getattr(first, "fits_without_gradients", False):
        return "the model is fitted without gradient steps"
    if getattr(objective, "model_loss", None) is not None:
        return f"objective {objective.name!r} computes its loss from the model, not from its outputs"
    if getattr(objective, "train_step", None) is not None:
        return f"objective {objective.name!r} takes its own optimisation steps"
    base = optims[0]
    if base.name not in ("adam", "adamw", "sgd"):
        return f"optimizer {base.name!r} has no stacked update (adam, adamw and sgd have)"
    for o in optims[1:]:
        if (o.name, o.momentum, o.weight_decay_mode) != (base.name, base.momentum, base.weight_decay_mode):
            return "the runs differ in optimiser settings other than lr and weight_decay"
    for cbs in callbacks:
        for cb in cbs:
            if isinstance(cb, DivergenceGuard):  # the stack checks every member at epoch ends (see fit_auto)
                continue
            if type(cb).on_step_end is not Callback.on_step_end or \
                    type(cb).on_epoch_start is not Callback.on_epoch_start:
                return f"callback {type(cb).__name__} acts inside epochs, where a stack keeps no per-run state"
    return None


class _StackedOptimizer:
    """Adam, AdamW or SGD with momentum on an ``(N, P)`` stack, each row with its own lr and weight decay.

    The arithmetic is torch.optim's single-tensor implementation, operation by operation, with the learning rate
    and weight decay of each run as an ``(N, 1)`` column instead of a Python number.
    """

    def __init__(self, cfg: OptimConfig, lrs: Sequence[float], wds: Sequence[float], theta: torch.Tensor) -> None:
        self.name, self.momentum = cfg.name, cfg.momentum
        self.decoupled = cfg.weight_decay_mode == "decoupled" or cfg.name == "adamw"
        # (N, 1) columns in float64, as torch.optim computes with Python floats, on the device: no copy per step
        self.lr = torch.tensor(lrs, dtype=torch.float64, device=theta.device).view(-1, 1)
        self.wd = torch.tensor(wds, dtype=torch.float64, device=theta.device).view(-1, 1)
        self.any_wd = any(w != 0 for w in wds)
        self.steps = 0
        self.m: torch.Tensor | None = None  # Adam's first moment, or SGD's momentum buffer
        self.v: torch.Tensor | None = None  # Adam's second moment
        if cfg.name in ("adam", "adamw"):
            self.m, self.v = torch.zeros_like(theta), torch.zeros_like(theta)

    @torch.no_grad()
    def step(self, theta: torch.Tensor, grad: torch.Tensor, factor: float) -> None:
        """One update of every row of ``theta`` with the learning rates scaled by the schedule's ``factor``."""
        lr = self.lr * factor  # float64, as group["lr"] = base * factor
        self.steps += 1
        if self.any_wd and self.decoupled:
            theta.mul_((1 - lr * self.wd).float())  # param.mul_(1 - lr * weight_decay)
        elif self.any_wd:
            grad = torch.addcmul(grad, self.wd.float(), theta)  # grad.add(param, alpha=weight_decay); + 0 where 0
        if self.name == "sgd":
            if self.momentum != 0:
                if self.m is None:
                    self.m = grad.detach().clone()
                else:
                    self.m.mul_(self.momentum).add_(grad)
                grad = self.m
            theta.addcmul_((-lr).float(), grad)  # param.add_(grad, alpha=-lr), fused the same way
            return
        assert self.m is not None and self.v is not None
        beta1, beta2 = ADAM_BETAS
        self.m.lerp_(grad, 1 - beta1)
        self.v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        bias_correction2_sqrt = (1 - beta2**self.steps) ** 0.5
        denom = (self.v.sqrt() / bias_correction2_sqrt).add_(ADAM_EPS)
        step_size = lr / (1 - beta1**self.steps)
        theta.add_((-step_size).float() * self.m / denom)  # param.addcdiv_(exp_avg, denom, value=-step_size)

    def keep(self, rows: torch.Tensor) -> None:
        """Drop the runs not in ``rows`` (positions in the current stack)."""
        self.lr, self.wd = self.lr[rows], self.wd[rows]
        self.m = None if self.m is None else self.m[rows]
        self.v = None if self.v is None else self.v[rows]

    def export(self, row: int, optimizer: torch.optim.Optimizer, params: Sequence[nn.Parameter]) -> None:
        """Write run ``row``'s moments into its own ``torch.optim`` optimiser, as a separate run would hold them."""
        if self.steps == 0:
            return
        sizes = [p.numel() for p in params]

        def pieces(t: torch.Tensor) -> list[torch.Tensor]:
            return [c.view_as(p).clone() for c, p in zip(t[row].split(sizes), params, strict=True)]

        if self.name == "sgd":
            buffers = pieces(self.m) if self.m is not None else [None] * len(params)
            for p, buf in zip(params, buffers, strict=True):
                optimizer.state[p] = {"momentum_buffer": buf}
            return
        assert self.m is not None and self.v is not None
        for p, m, v in zip(params, pieces(self.m), pieces(self.v), strict=True):
            optimizer.state[p] = {"step": torch.tensor(float(self.steps)), "exp_avg": m, "exp_avg_sq": v}


def _flatten(models: Sequence[nn.Module], device: torch.device) -> torch.Tensor:
    """``(N, P)``: each model's parameters, in ``named_parameters`` order, as one row."""
    return torch.stack([torch.cat([p.detach().reshape(-1) for p in m.parameters()]) for m in models]).to(device)


def _write_row(theta: torch.Tensor, row: int, model: nn.Module) -> None:
    with torch.no_grad():
        offset = 0
        for p in model.parameters():
            p.copy_(theta[row, offset:offset + p.numel()].view_as(p))
            offset += p.numel()


class _Stack:
    """The vectorised forward pass of ``N`` copies of one model whose parameters are the rows of ``theta``."""

    def __init__(self, skeleton: nn.Module, objective: Objective) -> None:
        self.skeleton, self.objective = skeleton, objective
        self.names = [n for n, _ in skeleton.named_parameters()]
        self.shapes = [tuple(p.shape) for p in skeleton.parameters()]
        self.sizes = [math.prod(s) for s in self.shapes]

        def member(params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
            return functional_call(skeleton, params, (x,))

        self._forward = vmap(member, in_dims=(0, 0), randomness="error")
        self._forward_shared = vmap(member, in_dims=(0, None), randomness="error")

    def params(self, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        # split, not slicing: its backward is one concatenation into theta's gradient
        n = theta.shape[0]
        return {name: t.view(n, *shape)
                for name, t, shape in zip(self.names, theta.split(self.sizes, dim=1), self.shapes, strict=True)}

    def outputs(self, theta: torch.Tensor, x: torch.Tensor, *, shared: bool = False) -> torch.Tensor:
        """``(N, B, K)`` outputs for ``x`` of shape ``(N, B, ...)``, or ``(B, ...)`` seen by all with ``shared``."""
        return (self._forward_shared if shared else self._forward)(self.params(theta), x)

    def losses(self, outputs: torch.Tensor, y: torch.Tensor, *, reduction: str = "mean") -> torch.Tensor:
        """``(N,)`` loss of each member on its own labels ``y`` of shape ``(N, B)`` (or ``(B,)``, shared)."""
        loss = self.objective.loss if reduction == "mean" else self.objective.loss_sum
        return vmap(loss, in_dims=(0, 0 if y.ndim == 2 else None))(outputs, y)

    def predictions(self, outputs: torch.Tensor) -> torch.Tensor:
        """``(N, B)`` predicted classes."""
        return vmap(self.objective.predict_proba)(outputs).argmax(-1)


def _batch(x: torch.Tensor, y: torch.Tensor, rows: torch.Tensor, norm: Normalization) -> tuple[torch.Tensor, ...]:
    """Each member's batch: ``x`` of shape ``(N, B, C, H, W)`` normalised, ``y`` of shape ``(N, B)``."""
    xb = x[rows]  # (N, B, C, H, W), still as stored
    return norm.apply(xb.flatten(0, 1)).view(*rows.shape, *xb.shape[2:]), y[rows]


@torch.no_grad()
def _evaluate(stack: _Stack, theta: torch.Tensor, split: Split, norm: Normalization, *, device: torch.device,
              batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(N,)`` mean loss and accuracy of every member on ``split``, which all of them see whole (as ``evaluate``)."""
    stack.skeleton.eval()
    loss_sum = torch.zeros(theta.shape[0], device=device)
    correct = torch.zeros(theta.shape[0], dtype=torch.long, device=device)
    for lo in range(0, len(split), batch_size):
        x = norm.apply(split.x[lo:lo + batch_size].to(device))
        y = split.y[lo:lo + batch_size].to(device)
        out = stack.outputs(theta, x, shared=True)
        loss_sum += stack.losses(out, y, reduction="sum")
        correct += (stack.predictions(out) == y).sum(1)
    stack.skeleton.train()
    n = max(len(split), 1)
    return loss_sum / n, correct.float() / n


def fit_stacked(models: Sequence[nn.Module], objective: Objective, optims: Sequence[OptimConfig], train: Split,
                norm: Normalization, *, epochs: int, batch_size: int, seeds: Sequence[int], device: torch.device,
                val: Split | None = None, eval_batch_size: int = 1024, callbacks: CallbackFactory | None = None,
                lr_schedule: str = "constant", augment: Augment | None = None,
                precision: str = "fp32", interrupt: threading.Event | None = None) -> list[TrainState]:
    """Train ``N`` runs of one architecture as one stacked model; each member's state is what ``fit`` returns.

    Args:
        models: one model per run on ``device``, each initialised as its separate run would be (e.g. built after
            seeding with that run's seed); trained in place, as ``fit`` trains its model.
        objective: the objective of every run.
        optims: each run's optimiser settings (``lr`` and ``weight_decay`` may differ, nothing else).
        train: training examples; each member shuffles them per epoch as a function of its own seed.
        norm: normalisation applied to each batch.
        epochs: maximum number of epochs.
        batch_size: examples per step.
        seeds: each run's seed (batch order and augmentation draws).
        device: where the stack trains.
        val: validation split, evaluated after every epoch.
        eval_batch_size: batch size of evaluation passes.
        callbacks: member index -> that member's callbacks (epoch-end hooks only, see the module docstring).
        lr_schedule: how every learning rate moves over the ``epochs`` (``augment.lr_factor``).
        augment: random transformation of each member's batch, drawn from a generator seeded by
            ``(member seed, step)``.
        precision: ``fp32`` or ``bf16`` (``engine.autocast``), as for ``fit``.
        interrupt: when set, the stack stops after its current step and every member still in it is marked
            ``interrupted``. A stack keeps no checkpoint, so those runs start again from their first step.

    Returns:
        One ``TrainState`` per run, in the order given, with ``model``, ``optimizer`` (its moments filled in),
        ``history``, counters and callbacks as after a separate ``fit``. ``time_s`` in the history is the member's
        share of the epoch: the stack's epoch time divided by the number of members that trained in it.

    Raises:
        ValueError: when ``stacking_refusal`` names a reason these runs cannot be stacked.
    """
    n_runs = len(models)
    if len(seeds) != n_runs:
        raise ValueError(f"{n_runs} models but {len(seeds)} seeds")
    cbs = [list(callbacks(i)) if callbacks is not None else [] for i in range(n_runs)]
    reason = stacking_refusal(models, objective, optims, cbs)
    if reason is not None:
        raise ValueError(f"these runs cannot be stacked: {reason}")
    steps_per_epoch = num_batches(len(train), batch_size)
    optimizers = [build_optimizer(m.parameters(), o) for m, o in zip(models, optims, strict=True)]
    states = [TrainState(model=m, optimizer=o, history=History(), max_epochs=epochs, steps_per_epoch=steps_per_epoch,
                         callbacks=c) for m, o, c in zip(models, optimizers, cbs, strict=True)]
    for state in states:
        state.model.train()
        for cb in state.callbacks:
            cb.on_fit_start(state)

    stack = _Stack(models[0], objective)
    theta = _flatten(models, device).requires_grad_()
    opt = _StackedOptimizer(optims[0], [o.lr for o in optims], [o.weight_decay for o in optims], theta)
    x_all, y_all = train.x.to(device), train.y.to(device)  # indexed on the device: no copy per step
    active = list(range(n_runs))  # the runs still in the stack, by their row
    step = 0
    for epoch in range(epochs):
        t0 = time.perf_counter()
        n = len(active)
        orders = torch.stack([epoch_order(len(train), seed=seeds[i], epoch=epoch) for i in active]).to(device)
        losses: list[torch.Tensor] = []
        norms: list[torch.Tensor] = []
        correct = torch.zeros(n, dtype=torch.long, device=device)
        factor = 1.0
        for lo in range(0, len(train), batch_size):
            x, y = _batch(x_all, y_all, orders[:, lo:lo + batch_size], norm)
            if augment is not None:
                x = torch.stack([augment(x[k], step_generator(seeds[i], step)) for k, i in enumerate(active)])
            factor = lr_factor(lr_schedule, step, epochs * steps_per_epoch)
            with autocast(device, precision):
                out = stack.outputs(theta, x)  # (N, B, K)
                loss = stack.losses(out, y)  # (N,)
            theta.grad = None
            loss.sum().backward()  # each member's gradient is that of its own loss: the rows do not mix
            assert theta.grad is not None
            norms.append(torch.linalg.vector_norm(theta.grad, dim=1))
            opt.step(theta.data, theta.grad, factor)
            with torch.no_grad():
                correct += (stack.predictions(out) == y).sum(1)
            losses.append(loss.detach())
            step += 1
            if interrupt is not None and interrupt.is_set():
                break
        if interrupt is not None and interrupt.is_set():
            for i in active:
                states[i].interrupted, states[i].should_stop, states[i].stop_reason = True, True, "interrupted"
            return states
        step_losses = torch.stack(losses).float().cpu()  # (steps, N)
        grad_norms = torch.stack(norms).float().cpu()
        accs = (correct.float() / len(train)).cpu()
        val_metrics = None
        if val is not None:
            val_metrics = [t.cpu() for t in _evaluate(stack, theta.detach(), val, norm, device=device,
                                                      batch_size=eval_batch_size)]
        elapsed = (time.perf_counter() - t0) / n
        keep = []
        for k, i in enumerate(active):
            state = states[i]
            state.epoch, state.step = epoch + 1, step
            diverged = not bool(torch.isfinite(step_losses[:, k]).all() and torch.isfinite(grad_norms[:, k]).all())
            metrics: dict[str, float] = {
                "epoch": epoch + 1, "step": step, "train_loss": float(step_losses[:, k].mean()),
                "train_acc": float(accs[k]), "grad_norm": float(grad_norms[:, k].mean()),
                "lr": float(optims[i].lr * factor),
            }
            if val_metrics is not None and not diverged:
                metrics.update(val_loss=float(val_metrics[0][k]), val_acc=float(val_metrics[1][k]))
            metrics["time_s"] = elapsed
            state.history.step_loss.extend(step_losses[:, k].tolist())
            state.history.epochs.append(metrics)
            _write_row(theta.detach(), k, state.model)
            if diverged:  # a separate run stops at the very step: see fit_auto, which trains it again
                state.mark_diverged(f"loss or gradient not finite in epoch {epoch + 1} of a stacked run")
            else:
                for cb in state.callbacks:
                    cb.on_epoch_end(state, metrics)
            if state.should_stop or epoch + 1 == epochs:
                opt.export(k, optimizers[i], list(state.model.parameters()))
            else:
                keep.append(k)
        if len(keep) < n:
            rows = torch.tensor(keep, dtype=torch.long, device=device)
            theta = theta.detach()[rows].requires_grad_()
            opt.keep(rows)
            active = [active[k] for k in keep]
        if not active:
            break
    for state in states:
        for cb in state.callbacks:
            cb.on_fit_end(state)
    return states


@dataclass(frozen=True)
class StackingChoice:
    """Whether a group of runs trains stacked or one run after another, and the timings that decided it.

    Attributes:
        stacked: ``True`` to train the group as one stack.
        stacked_s: seconds per training step of the whole group as one stack (``nan`` when it could not stack).
        separate_s: seconds per training step of the whole group, its runs one after another.
        runs: runs in the group.
        device: where both were measured.
        reason: why stacking was refused, empty when it was measured.
    """

    stacked: bool
    stacked_s: float
    separate_s: float
    runs: int
    device: str
    reason: str = ""

    def provenance(self) -> dict[str, Any]:
        """What each run of the group records about how it was trained."""
        return {"stacking": {"choice": "stacked" if self.stacked else "separate", "runs": self.runs,
                             "stacked_s_per_step": self.stacked_s, "separate_s_per_step": self.separate_s,
                             "device": self.device, **({"refused": self.reason} if self.reason else {})}}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_stacking(models: Sequence[nn.Module], objective: Objective, optims: Sequence[OptimConfig],
                     train: Split, norm: Normalization, *, batch_size: int, device: torch.device,
                     callbacks: CallbackFactory | None = None, steps: int = 5, warmup: int = 2,
                     precision: str = "fp32") -> StackingChoice:
    """Time a few training steps of the group stacked and separately on ``device``, and choose the faster.

    Both ways run their real loops (``fit_stacked``, and ``fit`` once per run) on copies of ``models`` for one epoch
    of ``steps`` batches of ``train``, after an untimed epoch of ``warmup`` batches that pays the first calls'
    costs; the models, and the global random state, are left untouched. Which is faster depends on the device, the
    model and the group size (on a small CPU a stack of LeNet-5s is no faster than the runs one by one; on a GPU it
    is many times faster), so it is measured rather than assumed.
    """
    cbs = [list(callbacks(i)) if callbacks is not None else [] for i in range(len(models))]
    reason = "a single run has nothing to share a stack with" if len(models) == 1 else \
        stacking_refusal(models, objective, optims, cbs)
    if reason is not None:
        return StackingChoice(False, math.nan, math.nan, len(models), str(device), reason)
    order = epoch_order(len(train), seed=0, epoch=0)
    warm, timed = train.take(order[:warmup * batch_size]), train.take(order[:steps * batch_size])
    seeds = list(range(len(models)))

    def stacked(split: Split) -> None:
        fit_stacked([copy.deepcopy(m) for m in models], objective, optims, split, norm, epochs=1,
                    batch_size=batch_size, seeds=seeds, device=device, precision=precision)

    def separate(split: Split) -> None:
        for m, o in zip(models, optims, strict=True):
            m = copy.deepcopy(m)
            fit(m, objective, build_optimizer(m.parameters(), o), split, norm, epochs=1, batch_size=batch_size,
                seed=0, device=device, precision=precision)

    seconds = []
    for way in (separate, stacked):
        way(warm)
        _sync(device)
        t0 = time.perf_counter()
        way(timed)
        _sync(device)
        seconds.append((time.perf_counter() - t0) / num_batches(len(timed), batch_size))
    return StackingChoice(seconds[1] < seconds[0], seconds[1], seconds[0], len(models), str(device))


def fit_auto(models: Sequence[nn.Module], objective: Objective, optims: Sequence[OptimConfig], train: Split,
             norm: Normalization, *, epochs: int, batch_size: int, seeds: Sequence[int], device: torch.device,
             val: Split | None = None, eval_batch_size: int = 1024, callbacks: CallbackFactory | None = None,
             lr_schedule: str = "constant", augment: Augment | None = None, precision: str = "fp32",
             interrupt: threading.Event | None = None,
             choice: StackingChoice | None = None) -> tuple[list[TrainState], StackingChoice]:
    """Train a group of runs stacked or one after another, whichever ``measure_stacking`` finds faster.

    The arguments are those of ``fit_stacked``; ``choice`` skips the measurement (say, to force one way). Members
    that diverged inside a stack are trained again separately from their initial weights, so every returned state
    is what a separate ``fit`` of that run gives (to float rounding). Record ``choice.provenance()`` with each run.
    """
    if choice is None:
        choice = measure_stacking(models, objective, optims, train, norm, batch_size=batch_size, device=device,
                                  callbacks=callbacks, precision=precision)
    initial = [copy.deepcopy(m.state_dict()) for m in models]

    def separate(i: int) -> TrainState:
        models[i].load_state_dict(initial[i])
        return fit(models[i], objective, build_optimizer(models[i].parameters(), optims[i]), train, norm,
                   epochs=epochs, batch_size=batch_size, seed=seeds[i], device=device, val=val,
                   eval_batch_size=eval_batch_size, callbacks=list(callbacks(i)) if callbacks else (),
                   lr_schedule=lr_schedule, augment=augment, precision=precision, interrupt=interrupt)

    if not choice.stacked:
        return [separate(i) for i in range(len(models))], choice
    states = fit_stacked(models, objective, optims, train, norm, epochs=epochs, batch_size=batch_size, seeds=seeds,
                         device=device, val=val, eval_batch_size=eval_batch_size, callbacks=callbacks,
                         lr_schedule=lr_schedule, augment=augment, precision=precision, interrupt=interrupt)
    if any(s.interrupted for s in states):
        return states, choice
    return [separate(i) if s.diverged else s for i, s in enumerate(states)], choice
