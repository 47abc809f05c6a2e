"""Autoencoders: exact output shapes for any input, the code as features, and the decoder trained by the model's own
objective (``reconstruction``) through the ordinary fit loop."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lineup import data
from lineup.data._types import Normalization
from lineup.errors import SpecError
from lineup.models import create_model
from lineup.models.autoencoder import Autoencoder, conv_plan
from lineup.train import create_objective, fit
from lineup.train.objectives import batch_loss

SHAPES = [(1, 28, 28), (3, 32, 32), (1, 40, 40), (1, 64, 64), (1, 7, 9), (1, 1, 2)]


pytestmark = pytest.mark.usefixtures("seeded_one_thread")  # seed 0, one torch thread (conftest.py)


def grads(model: nn.Module) -> dict[str, torch.Tensor | None]:
    return {name: None if p.grad is None else p.grad.clone() for name, p in model.named_parameters()}


# ------------------------------------------------------------------------------------------------------------
# Shapes


@pytest.mark.parametrize(
    ("height", "width", "stages", "sizes", "out"),
    [
        (28, 28, 2, ((28, 28), (14, 14)), (7, 7)),  # the decoder's 7 -> 14 -> 28 needs no output padding
        (40, 40, 3, ((40, 40), (20, 20), (10, 10)), (5, 5)),
        # 7x9: floor halves to 3x4, then 1x2; a 1-pixel side stops the halving, the third stage keeps 1x2.
        # The decoder's transposed convolutions map 1x2 -> 2·1+1 x 2·2+0 = 3x4 -> 2·3+1 x 2·4+1 = 7x9.
        (7, 9, 3, ((7, 9), (3, 4), (1, 2)), (1, 2)),
    ],
)
def test_conv_plan_sizes_are_worked_by_hand(
    height: int, width: int, stages: int, sizes: tuple, out: tuple[int, int]
) -> None:
    plan = conv_plan(height, width, stages)
    assert plan.sizes == sizes and plan.out == out
    assert plan.halves == tuple(min(s) >= 2 for s in sizes)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("name", ["autoencoder", "conv_autoencoder"])
def test_reconstruction_has_the_input_shape_for_any_latent_size(name: str, shape: tuple[int, int, int]) -> None:
    for latent_dim in (2, 7):
        model = create_model(name, shape, 3, latent_dim=latent_dim, width=0.25).eval()
        x = torch.randn(5, *shape)
        z = model.encode(x)
        assert z.shape == (5, latent_dim) and model.feature_dim == latent_dim
        torch.testing.assert_close(model.forward_features(x), z)
        assert model.decode(z).shape == x.shape
        assert model.reconstruct(x).shape == x.shape
        assert model(x).shape == (5, 3)


def test_bernoulli_reconstruction_is_a_probability_and_its_loss_the_cross_entropy() -> None:
    model = create_model("conv_autoencoder", (1, 8, 8), 2, likelihood="bernoulli").eval()
    x = torch.rand(6, 1, 8, 8)
    decoded = model.decode(model.encode(x))
    r = model.reconstruct(x)
    assert ((r > 0) & (r < 1)).all()
    torch.testing.assert_close(r, torch.sigmoid(decoded))
    torch.testing.assert_close(model.reconstruction_loss(x), F.binary_cross_entropy(r, x))
    gaussian = create_model("autoencoder", (1, 8, 8), 2).eval()
    torch.testing.assert_close(gaussian.reconstruction_loss(x), ((gaussian.reconstruct(x) - x) ** 2).mean())


# ------------------------------------------------------------------------------------------------------------
# The reconstruction objective


@pytest.mark.parametrize("name", ["autoencoder", "conv_autoencoder"])
def test_objective_is_classification_plus_weighted_reconstruction(name: str) -> None:
    model = create_model(name, (1, 12, 12), 4, latent_dim=3, width=0.25, reconstruction_weight=0.7)
    assert model.default_objective == "reconstruction"
    x, y = torch.randn(8, 1, 12, 12), torch.randint(0, 4, (8,))

    r = batch_loss(create_objective("reconstruction"), model, x, y)
    r.loss.backward()
    through_objective = grads(model)
    model.zero_grad(set_to_none=True)
    z = model.encode(x)
    ce, mse = F.cross_entropy(model.head(z), y), F.mse_loss(model.decode(z), x)
    (ce + 0.7 * mse).backward()
    explicit = grads(model)

    torch.testing.assert_close(r.outputs, model.head(z))  # the logits, for accuracy and probabilities
    torch.testing.assert_close(r.loss, ce + 0.7 * mse)  # the logged loss is what is minimised
    assert r.parts.keys() == {"cross_entropy", "reconstruction"}
    torch.testing.assert_close(r.parts["reconstruction"], mse.detach())
    assert through_objective.keys() == explicit.keys()
    for key, g in explicit.items():
        assert g is not None and g.abs().sum() > 0, key  # every part, decoder included, is trained
        torch.testing.assert_close(through_objective[key], g, msg=key)


def test_forward_is_the_logits_and_weight_zero_never_runs_the_decoder() -> None:
    x, y = torch.randn(4, 1, 8, 8), torch.randint(0, 2, (4,))
    model = create_model("conv_autoencoder", (1, 8, 8), 2)  # training mode: forward is still the logits alone
    F.cross_entropy(model(x), y).backward()
    assert all(p.grad is None for p in model.decoder.parameters())
    model = create_model("conv_autoencoder", (1, 8, 8), 2, reconstruction_weight=0.0)
    r = batch_loss(create_objective("reconstruction"), model, x, y)
    r.loss.backward()
    assert set(r.parts) == {"cross_entropy"}
    assert all(p.grad is None for p in model.decoder.parameters())


def test_the_objective_refuses_a_model_without_a_decoder() -> None:
    model = create_model("mlp", (1, 8, 8), 2)
    with pytest.raises(TypeError, match="'reconstruction' trains autoencoders; MLP has no decode"):
        batch_loss(create_objective("reconstruction"), model, torch.randn(2, 1, 8, 8), torch.tensor([0, 1]))


def test_unsupervised_code_is_read_by_a_probe_that_the_labels_do_not_reach_past() -> None:
    model = create_model("autoencoder", (1, 8, 8), 2, supervised=False, reconstruction_weight=0.0)
    F.cross_entropy(model(torch.randn(4, 1, 8, 8)), torch.randint(0, 2, (4,))).backward()
    assert model.head.fc.weight.grad is not None and model.head.fc.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in [*model.encoder.parameters(), *model.code.parameters()])


@pytest.mark.parametrize("name", ["autoencoder", "conv_autoencoder"])
def test_the_fit_loop_learns_to_reconstruct_digits_and_logs_both_terms(name: str) -> None:
    """Through the ordinary fit loop and the model's own objective the decoder learns: with the reconstruction term
    the test reconstruction error halves; without it the decoder never moves and the error grows as the code does.
    The logged training loss is the sum the objective minimises, term by term."""
    bundle = data.load("digits", val_fraction=0.0)  # 1,438 training and 359 test 8x8 digits
    pixels = Normalization(mean=(0.0,), std=(1.0,), scale=1 / 255)  # inputs in [0, 1], as a Bernoulli decoder needs
    x_test = pixels.apply(bundle.test.x)
    errors, histories = {}, {}
    for weight in (1.0, 0.0):
        torch.manual_seed(0)
        model = create_model(name, (1, 8, 8), 10, latent_dim=2, likelihood="bernoulli",
                             reconstruction_weight=weight)
        decoder_before = [p.detach().clone() for p in model.decoder.parameters()]
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
        with torch.no_grad():
            before = float(model.reconstruction_loss(x_test))
        state = fit(model, create_objective(model.default_objective), optimizer, bundle.train, pixels, epochs=9,
                    batch_size=64, seed=0, device=torch.device("cpu"))
        histories[weight] = state.history.epochs
        with torch.no_grad():
            errors[weight] = float(model.eval().reconstruction_loss(x_test))
        moved = any(not torch.equal(a, b) for a, b in zip(decoder_before, model.decoder.parameters(), strict=True))
        assert moved == (weight > 0)
    # Measured (binary cross-entropy per pixel): about 0.70 before, 0.35 with the term, 0.9 to 1.1 without.
    assert errors[1.0] < 0.6 * before
    assert errors[0.0] > before > errors[1.0]
    for e in histories[1.0]:  # per-epoch means of a sum are the sums of the per-epoch means
        assert e["train_loss"] == pytest.approx(e["train_cross_entropy"] + e["train_reconstruction"], rel=1e-5)
    assert histories[1.0][-1]["train_reconstruction"] < histories[1.0][0]["train_reconstruction"]
    assert "train_reconstruction" not in histories[0.0][0]
    unweighted = histories[0.0]
    assert [e["train_loss"] for e in unweighted] == pytest.approx([e["train_cross_entropy"] for e in unweighted])


# ------------------------------------------------------------------------------------------------------------
# Options and representation layers


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"latent_dim": 0}, "latent_dim must be at least 1"),
        ({"reconstruction_weight": -1.0}, "reconstruction_weight must be >= 0"),
        ({"likelihood": "poisson"}, "one of 'gaussian', 'bernoulli'"),
        ({"channels": ()}, "at least one"),
    ],
)
def test_bad_options(options: dict, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        create_model("conv_autoencoder", (1, 28, 28), 10, **options)


def test_batch_norm_and_layer_names() -> None:
    model = create_model("conv_autoencoder", (1, 28, 28), 10, channels=(4, 8, 16), batch_norm=True)
    assert isinstance(model, Autoencoder)
    assert list(model.representation_layers()) == ["conv1", "conv2", "conv3"]
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 3 + 3  # encoder stages, projection + 2
    assert [type(m).__name__ for m in model.decoder if isinstance(m, (nn.ConvTranspose2d, nn.Conv2d))] == [
        "ConvTranspose2d"
    ] * 3
    dense = create_model("autoencoder", (1, 28, 28), 10, hidden=(64, 32))
    assert list(dense.representation_layers()) == ["fc1", "fc2"]
    widths = [m.out_features for m in dense.decoder if isinstance(m, nn.Linear)]
    assert widths == [32, 64, 784]  # the encoder's widths mirrored, then back to the pixels
