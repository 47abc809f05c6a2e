"""Training objectives: how a model's outputs become a loss and class probabilities.

The engine calls only these functions, so it never needs to know which model it trains.

Most objectives read the model's outputs alone (``loss(outputs, y)``). An objective whose loss needs more of the
model than its logits, such as a reconstruction or an evidence lower bound, also defines
``model_loss(model, x, y) -> BatchLoss``: it runs the model itself and returns the loss, the logits that
``predict_proba`` reads, and the loss's terms, which the loop logs per epoch (``train_reconstruction``,
``val_kl`` ...). ``batch_loss`` is the one call the engine makes, whichever kind it holds.
"""

from __future__ import annotations

import math
from typing import Any, Literal, NamedTuple, Protocol, TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from lineup.plugins import DiscoveringRegistry


class Objective(Protocol):
    name: str

    def loss(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean loss of a batch (scalar tensor)."""
        ...

    def loss_sum(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Summed loss of a batch, for exact averages over a split."""
        ...

    def predict_proba(self, outputs: torch.Tensor) -> torch.Tensor:
        """Class probabilities ``(B, K)``."""
        ...


class BatchLoss(NamedTuple):
    """What one batch costs under an objective.

    Attributes:
        loss: the scalar the optimiser minimises (a batch mean, or a sum under ``reduction="sum"``).
        outputs: ``(B, K)`` model outputs that ``predict_proba`` turns into class probabilities (the logits).
        parts: the loss's terms by name, detached scalars reduced as ``loss`` is (empty for a plain objective).
    """

    loss: torch.Tensor
    outputs: torch.Tensor
    parts: dict[str, torch.Tensor]


def batch_loss(objective: Objective, model: nn.Module, x: torch.Tensor, y: torch.Tensor, *,
               reduction: Literal["mean", "sum"] = "mean") -> BatchLoss:
    """The loss of ``model`` on the batch ``(x, y)`` under ``objective``, in the model's current mode.

    An objective with ``model_loss(model, x, y)`` computes it from the model (it returns batch means, which a sum
    scales by ``B``); any other objective gets ``model(x)`` through ``loss`` or ``loss_sum``, exactly as a
    classifier always has.
    """
    model_loss = getattr(objective, "model_loss", None)
    if model_loss is not None:
        r: BatchLoss = model_loss(model, x, y)
        if reduction == "mean":
            return r
        n = len(y)
        return BatchLoss(r.loss * n, r.outputs, {k: v * n for k, v in r.parts.items()})
    outputs = model(x)
    loss = objective.loss(outputs, y) if reduction == "mean" else objective.loss_sum(outputs, y)
    return BatchLoss(loss, outputs, {})


# Installed plugins are imported when a name is missing or the objectives are listed (see lineup.plugins).
_objectives: DiscoveringRegistry = DiscoveringRegistry("objective")

ObjectiveClass = TypeVar("ObjectiveClass", bound=type)


@_objectives.register(name="cross_entropy")
class CrossEntropy:
    """Softmax cross-entropy on ``(B, K)`` logits."""

    name = "cross_entropy"

    def loss(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(outputs, y)

    def loss_sum(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(outputs, y, reduction="sum")

    def predict_proba(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs.softmax(dim=1)


@_objectives.register(name="binary_cross_entropy")
class BinaryCrossEntropy:
    """Logistic loss on ``(B, 1)`` logits of class 1 (labels 0/1)."""

    name = "binary_cross_entropy"

    def loss(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(outputs.squeeze(1), y.to(outputs.dtype))

    def loss_sum(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(outputs.squeeze(1), y.to(outputs.dtype), reduction="sum")

    def predict_proba(self, outputs: torch.Tensor) -> torch.Tensor:
        p1 = torch.sigmoid(outputs.squeeze(1))
        return torch.stack([1 - p1, p1], dim=1)


def _require(model: nn.Module, objective: str, needs: tuple[str, ...], kind: str) -> None:
    missing = [n for n in needs if not hasattr(model, n)]
    if missing:
        raise TypeError(f"objective {objective!r} trains {kind}; {type(model).__name__} has no "
                        f"{', '.join(missing)}. Use objective = \"auto\" (the model's own objective)")


@_objectives.register(name="reconstruction")
class Reconstruction(CrossEntropy):
    """Cross-entropy of the head plus the weighted reconstruction error: an autoencoder's own objective.

    ``cross_entropy + reconstruction_weight * reconstruction`` (``lineup.models.autoencoder``): with a supervised
    head, a supervised autoencoder (Le, Patterson & White, 2018); with ``supervised = False``, an autoencoder
    trained on reconstruction alone whose head is a linear probe. Logged terms: ``cross_entropy`` and
    ``reconstruction`` (mean squared error or binary cross-entropy per value). ``loss(outputs, y)`` on logits alone
    is the cross-entropy.
    """

    name = "reconstruction"

    def model_loss(self, model: Any, x: torch.Tensor, y: torch.Tensor) -> BatchLoss:
        _require(model, self.name, ("decode", "reconstruction_loss", "reconstruction_weight"), "autoencoders")
        code = model.forward_features(x)
        logits = model.forward_head(code)
        ce = F.cross_entropy(logits, y)
        parts = {"cross_entropy": ce.detach()}
        loss = ce
        if model.reconstruction_weight > 0:  # weight 0: a classifier with a bottleneck, the decoder is not run
            reconstruction = model.reconstruction_loss(x, model.decode(code))
            loss = ce + model.reconstruction_weight * reconstruction
            parts["reconstruction"] = reconstruction.detach()
        return BatchLoss(loss, logits, parts)


@_objectives.register(name="elbo")
class ELBOObjective(CrossEntropy):
    """Cross-entropy of the head plus the weighted beta-ELBO: a VAE's own objective.

    ``cross_entropy + elbo_weight * (reconstruction + beta * kl)`` (``lineup.models.vae``), where
    ``reconstruction = -log p(x|z)`` for one reparameterised draw of ``z`` and ``kl = KL(q(z|x) || N(0, I))``, both
    in nats per example (``lineup.train.losses.elbo``). Logged terms: ``cross_entropy``, ``reconstruction`` and
    ``kl``. In evaluation mode the draw comes from a generator seeded 0, so a validation loss is the same number
    every time and evaluating never moves the training's random stream.
    """

    name = "elbo"

    def model_loss(self, model: Any, x: torch.Tensor, y: torch.Tensor) -> BatchLoss:
        from lineup.train.losses import elbo  # losses imports the models, which must not import the train package

        _require(model, self.name, ("encode", "reparameterize", "decode", "beta", "elbo_weight"), "VAEs")
        mu, logvar = model.encode(x)
        logits = model.forward_head(mu)
        ce = F.cross_entropy(logits, y)
        parts = {"cross_entropy": ce.detach()}
        loss = ce
        if model.elbo_weight > 0:
            generator = None if model.training else torch.Generator(device=x.device).manual_seed(0)
            decoded = model.decode(model.reparameterize(mu, logvar, generator))
            terms = elbo(model.likelihood_target(x), decoded, mu, logvar, model.beta, model.likelihood,
                         log_scale=model.decoder_log_scale())
            loss = ce + model.elbo_weight * terms.loss
            parts.update(reconstruction=terms.reconstruction.detach(), kl=terms.kl.detach())
        return BatchLoss(loss, logits, parts)


def create_objective(name: str) -> Objective:
    """The objective registered as ``name``."""
    return _objectives.get(name)()  # type: ignore[no-any-return]


def list_objectives() -> list[str]:
    return _objectives.names()


def objective_doc(name: str) -> str:
    """The first line of objective ``name``'s docstring."""
    doc = (_objectives.get(name).__doc__ or "").strip()
    return doc.splitlines()[0] if doc else ""


def register_objective(cls: ObjectiveClass) -> ObjectiveClass:
    """Register a training objective class under its ``name`` attribute, after checking its contract.

    The class is built with no arguments and tried on a batch of 4 examples with ``(4, 3)`` logits, the outputs
    every classifier returns (``lineup.study.runner.check_contract`` holds models to that shape): ``loss`` must
    be a finite scalar that gradients flow through, ``loss_sum`` four times it (the engine averages over a
    split with it), and ``predict_proba`` ``(4, 3)`` probabilities whose rows sum to 1. A class that fails is
    refused here, with what is missing, rather than halfway through a study.

    Raises:
        TypeError: the class breaks the contract.
        ValueError: an objective of that name is already registered.
    """
    name = getattr(cls, "name", None)
    where = f"objective class {cls.__module__}.{cls.__qualname__}"
    if not isinstance(name, str) or not name:
        raise TypeError(f"{where} needs a class attribute name = '<objective name>', the name studies use")
    missing = [m for m in ("loss", "loss_sum", "predict_proba") if not callable(getattr(cls, m, None))]
    if missing:
        raise TypeError(f"{where} lacks {', '.join(missing)}: an objective defines loss(outputs, y) -> mean loss, "
                        "loss_sum(outputs, y) -> summed loss and predict_proba(outputs) -> (B, K) probabilities")
    _check_objective(cls(), where)
    _objectives.register(cls, name=name)
    return cls


def _check_objective(objective: Objective, where: str) -> None:
    # Logits of 4 examples and 3 classes; fixed values, so the check is the same on every machine.
    outputs = torch.tensor([[2.0, -1.0, 0.5], [0.0, 1.0, -2.0], [-1.0, 0.0, 3.0], [1.5, 1.5, 0.0]],
                           requires_grad=True)
    y = torch.tensor([0, 1, 2, 1])
    loss = objective.loss(outputs, y)
    if not isinstance(loss, torch.Tensor) or loss.ndim != 0 or not torch.isfinite(loss):
        raise TypeError(f"{where}: loss(outputs, y) must return a finite scalar tensor, got {loss!r}")
    if not loss.requires_grad:
        raise TypeError(f"{where}: loss(outputs, y) is detached from the outputs, so no gradient would reach the "
                        "model; compute it with torch operations on the outputs")
    total = objective.loss_sum(outputs, y)
    expected = 4 * float(loss.detach())
    if not isinstance(total, torch.Tensor) or total.ndim != 0 or not math.isclose(
            float(total.detach()), expected, rel_tol=1e-4, abs_tol=1e-6):
        got = f"{float(total.detach()):.6g}" if isinstance(total, torch.Tensor) and total.ndim == 0 else repr(total)
        raise TypeError(f"{where}: loss_sum(outputs, y) must be the batch's summed loss, {expected:.6g} for this "
                        f"batch of 4 (4 x loss), got {got}")
    with torch.no_grad():
        probs = objective.predict_proba(outputs)
    if not isinstance(probs, torch.Tensor) or tuple(probs.shape) != (4, 3):
        shape = tuple(probs.shape) if isinstance(probs, torch.Tensor) else type(probs).__name__
        raise TypeError(f"{where}: predict_proba(outputs) must return (B, K) = (4, 3) probabilities, got {shape}")
    if bool((probs < 0).any()) or not torch.allclose(probs.sum(dim=1), torch.ones(4), atol=1e-4):
        raise TypeError(f"{where}: predict_proba(outputs) must return probabilities: non-negative rows that sum "
                        "to 1")


@_objectives.register(name="triplet")
class Triplet(CrossEntropy):
    """Triplet margin loss on the embedding, plus a head fitted to it without moving it: metric learning.

    ``triplet_loss(forward_features(x), y)`` with the model's ``margin`` and ``mining`` (``lineup.train.losses``;
    Schroff et al., 2015; Hermans et al., 2017) trains the encoder. The head's cross-entropy is added on the
    *detached* embedding, so the labels reach the head alone: the run's accuracy is that of a linear classifier
    that followed the embedding while it moved, an online estimate. The linear probe the report compares is fitted
    afterwards on the frozen embedding (``lineup.study.probe``). Logged terms: ``triplet`` and ``cross_entropy``.
    In evaluation mode random mining draws from a generator seeded 0, so a validation loss is the same number
    every time and evaluating never moves the training's random stream.
    """

    name = "triplet"

    def model_loss(self, model: Any, x: torch.Tensor, y: torch.Tensor) -> BatchLoss:
        from lineup.train.losses import triplet_loss  # losses imports the models, which must not import train

        _require(model, self.name, ("margin", "mining"), "metric-learning encoders (contrastive_encoder)")
        embedding = model.forward_features(x)
        generator = None if model.training else torch.Generator(device=x.device).manual_seed(0)
        triplet = triplet_loss(embedding, y, margin=model.margin, mining=model.mining, generator=generator)
        logits = model.forward_head(embedding.detach())
        ce = F.cross_entropy(logits, y)
        return BatchLoss(triplet + ce, logits, {"triplet": triplet.detach(), "cross_entropy": ce.detach()})


@_objectives.register(name="gan")
class GANObjective(CrossEntropy):
    """Adversarial training of a GAN's two networks, plus a linear probe of the discriminator's features.

    For ``lineup.models.gan.GAN`` (``dcgan``, ``wgan``, ``wgan_gp``): the objective owns the optimisation step, so
    the fit loop calls ``train_step`` instead of its own backward and step, and the run builds the optimisers
    with ``configure_optimizers`` (``lineup.train.adversarial``). The logged loss is the probe's cross-entropy on
    the detached features; the adversarial terms are the logged parts (``generator_loss``, ``discriminator_loss``
    or ``critic_loss`` and ``wasserstein`` ...), kept per step as well as per epoch.
    """

    name = "gan"

    def configure_optimizers(self, model: Any, cfg: Any) -> Any:
        from lineup.train import adversarial  # it imports the engine, which imports this module

        _require(model, self.name, ("generator", "discriminator", "head", "sample"), "GANs (lineup.models.gan)")
        return adversarial.configure_optimizers(model, cfg)

    def train_step(self, model: Any, optimizer: Any, x: torch.Tensor, y: torch.Tensor) -> BatchLoss:
        from lineup.train import adversarial

        return adversarial.train_step(model, optimizer, x, y)

    def model_loss(self, model: Any, x: torch.Tensor, y: torch.Tensor) -> BatchLoss:
        from lineup.train import adversarial

        _require(model, self.name, ("generator", "discriminator", "head", "sample"), "GANs (lineup.models.gan)")
        return adversarial.evaluation_loss(model, x, y)
