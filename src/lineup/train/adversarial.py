"""How the fit loop trains a GAN: an objective that owns its optimisation step (after Lightning's manual
optimisation).

The fit loop (``lineup.train.engine.fit``) calls an objective's ``train_step(model, optimizer, x, y)`` in place of
its own backward and optimiser step when the objective has one, and the run builds the optimiser with the
objective's ``configure_optimizers(model, cfg)`` when it has that. The ``gan`` objective
(``lineup.train.objectives.GANObjective``) has both, and delegates to this module:

- ``configure_optimizers`` gives an ``OptimizerGroup`` of three optimisers, each the study's optimiser and learning
  rate: the generator's and the discriminator's (with the model's Adam betas) and the linear probe's. The group
  has ``param_groups``, ``state_dict`` and ``load_state_dict``, so learning-rate schedules, the logged ``lr``,
  checkpoints and exact resumption work as for any other run.
- ``train_step`` splits the batch into ``n_critic`` slices, one per discriminator (critic) update, then updates the
  generator once (``lineup.train.losses.gan_update`` / ``wgan_update``), and finally the probe once on the
  discriminator's features of the whole batch, computed in evaluation mode, exactly as ``forward`` computes them at
  test time. Noise comes from the global random stream, which checkpoints save.
- ``evaluation_loss`` is what the loop's ``evaluate`` reports on a split: the probe's cross-entropy, plus the
  adversarial terms on the split's images against generated images from noise seeded 0 (the same noise at every
  evaluation, which never moves the training's random stream).

The loss the loop logs per step (``step_loss``, ``train_loss``) is the probe's cross-entropy, which matches the
logged accuracy; the adversarial terms are the step's parts: ``discriminator_loss``, ``generator_loss``, ``d_real``
and ``d_fake`` (the discriminator's mean probability of "real" on real and generated images) for the
non-saturating loss; ``critic_loss``, ``wasserstein`` (the critic's estimate ``E[f(x)] - E[f(G(z))]``),
``generator_loss`` and, with the penalty, ``gradient_penalty`` for the WGANs. The loop keeps each part per step
(``History.step_parts``) and logs its epoch means as ``train_<part>``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from lineup.train.engine import OptimConfig, build_optimizer
from lineup.train.losses import gan_discriminator_loss, gan_generator_loss, gan_update, wgan_update
from lineup.train.objectives import BatchLoss


class OptimizerGroup:
    """Several named optimisers that the fit loop holds as one.

    ``param_groups`` is every optimiser's groups in order (the same dicts, so a learning-rate schedule that writes
    them reaches each optimiser; the first is the one the loop logs as ``lr``), and ``state_dict`` is theirs by
    name. The group has no ``step``: the objective that built it steps each optimiser itself.

    Args:
        **optimizers: the optimisers by name, e.g. ``generator=..., discriminator=...``.
    """

    def __init__(self, **optimizers: torch.optim.Optimizer) -> None:
        if not optimizers:
            raise ValueError("an optimizer group needs at least one optimizer")
        self.optimizers = optimizers

    def __getitem__(self, name: str) -> torch.optim.Optimizer:
        return self.optimizers[name]

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return [group for opt in self.optimizers.values() for group in opt.param_groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:
        return {name: opt.state_dict() for name, opt in self.optimizers.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if set(state) != set(self.optimizers):
            raise ValueError(f"the saved optimizer state holds {sorted(state)}, this group {sorted(self.optimizers)}")
        for name, opt in self.optimizers.items():
            opt.load_state_dict(state[name])


def configure_optimizers(model: Any, cfg: OptimConfig) -> OptimizerGroup:
    """The generator's, the discriminator's and the probe's optimisers, each built from the study's settings; the
    two adversaries use the model's ``betas`` when the optimiser is Adam or AdamW (DCGAN's 0.5 momentum)."""
    group = OptimizerGroup(generator=build_optimizer(model.generator.parameters(), cfg),
                           discriminator=build_optimizer(model.discriminator.parameters(), cfg),
                           probe=build_optimizer(model.head.parameters(), cfg))
    for name in ("generator", "discriminator"):
        for g in group[name].param_groups:
            if "betas" in g:
                g["betas"] = tuple(model.betas)
    return group


def _slices(x: torch.Tensor, n: int) -> list[torch.Tensor]:
    """``n`` consecutive slices of the batch, one per critic step; a batch of fewer than ``n`` examples is used
    whole by every step."""
    return [x] * n if len(x) < n else list(torch.tensor_split(x, n))


def train_step(model: Any, optimizer: OptimizerGroup, x: torch.Tensor, y: torch.Tensor) -> BatchLoss:
    """One generator step after ``model.n_critic`` discriminator steps, then one step of the probe."""
    real = _slices(x, model.n_critic)
    if model.loss == "gan":
        parts = gan_update(model, model.discriminator, optimizer["generator"], optimizer["discriminator"], real,
                           n_discriminator=model.n_critic)
    else:
        parts = wgan_update(model, model.discriminator, optimizer["generator"], optimizer["discriminator"], real,
                            n_critic=model.n_critic, clip=model.clip, gp_weight=model.gp_weight)
        if model.gp_weight == 0:
            del parts["gradient_penalty"]  # always 0 under clipping
    # The probe reads the features as forward() gives them at test time: evaluation mode (batch norm's running
    # statistics, which this pass leaves unchanged).
    was_training = model.discriminator.training
    model.discriminator.eval()
    with torch.no_grad():
        features = model.forward_features(x)
    model.discriminator.train(was_training)
    probe = optimizer["probe"]
    probe.zero_grad(set_to_none=True)
    logits = model.forward_head(features)
    loss = F.cross_entropy(logits, y)
    loss.backward()
    probe.step()
    return BatchLoss(loss.detach(), logits.detach(), parts)


def evaluation_loss(model: Any, x: torch.Tensor, y: torch.Tensor) -> BatchLoss:
    """The probe's cross-entropy on ``(x, y)``, with the adversarial terms of the real images ``x`` against as many
    generated ones, drawn from noise seeded 0; batch means."""
    logits = model(x)
    loss = F.cross_entropy(logits, y)
    noise = torch.Generator(device=x.device).manual_seed(0)
    real, fake = model.discriminator(x), model.discriminator(model.sample(len(x), noise))
    if model.loss == "gan":
        parts = {"discriminator_loss": gan_discriminator_loss(real, fake), "generator_loss": gan_generator_loss(fake),
                 "d_real": torch.sigmoid(real).mean(), "d_fake": torch.sigmoid(fake).mean()}
    else:  # no gradient penalty here: it needs autograd, which evaluation runs without
        parts = {"wasserstein": real.mean() - fake.mean(), "generator_loss": -fake.mean()}
    return BatchLoss(loss, logits, {k: v.detach() for k, v in parts.items()})
