"""Autoencoders: exact output shapes for any input, the code as features, and the decoder trained through forward."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lineup import data
from lineup.errors import SpecError
from lineup.models import create_model
from lineup.models.autoencoder import Autoencoder, add_auxiliary_loss, conv_plan

SHAPES = [(1, 28, 28), (3, 32, 32), (1, 40, 40), (1, 64, 64), (1, 7, 9), (1, 1, 2)]


@pytest.fixture(autouse=True)
def _seed_and_one_thread() -> Iterator[None]:
    # The models are tiny; on a shared machine extra intra-op threads only wait for each other.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)


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
# The decoder's gradient through forward


def test_add_auxiliary_loss_adds_exactly_the_gradient_of_the_auxiliary_term() -> None:
    w = torch.tensor([1.0, -2.0], requires_grad=True)
    out = add_auxiliary_loss(3 * w, (w**2).sum())
    torch.testing.assert_close(out, 3 * w.detach())  # the value is untouched
    (out * torch.tensor([1.0, 2.0])).sum().backward()
    # d/dw [w0 * 3 + 2 * w1 * 3 + w0^2 + w1^2] = (3 + 2 w0, 6 + 2 w1) = (5, 2)
    torch.testing.assert_close(w.grad, torch.tensor([5.0, 2.0]))
    with pytest.raises(ValueError, match="scalar"):
        add_auxiliary_loss(w, w)


@pytest.mark.parametrize("name", ["autoencoder", "conv_autoencoder"])
def test_forward_trains_classification_plus_weighted_reconstruction(name: str) -> None:
    model = create_model(name, (1, 12, 12), 4, latent_dim=3, width=0.25, reconstruction_weight=0.7)
    x, y = torch.randn(8, 1, 12, 12), torch.randint(0, 4, (8,))

    F.cross_entropy(model(x), y).backward()
    through_forward = grads(model)
    model.zero_grad(set_to_none=True)
    z = model.encode(x)
    (F.cross_entropy(model.head(z), y) + 0.7 * F.mse_loss(model.decode(z), x)).backward()
    explicit = grads(model)

    assert through_forward.keys() == explicit.keys()
    for key, g in explicit.items():
        assert g is not None and g.abs().sum() > 0, key  # every part, decoder included, is trained
        torch.testing.assert_close(through_forward[key], g, msg=key)


def test_no_reconstruction_in_eval_mode_or_at_weight_zero() -> None:
    x, y = torch.randn(4, 1, 8, 8), torch.randint(0, 2, (4,))
    model = create_model("conv_autoencoder", (1, 8, 8), 2, reconstruction_weight=0.0)
    F.cross_entropy(model(x), y).backward()
    assert all(p.grad is None for p in model.decoder.parameters())
    model = create_model("conv_autoencoder", (1, 8, 8), 2).eval()
    F.cross_entropy(model(x), y).backward()
    assert all(p.grad is None for p in model.decoder.parameters())


def test_unsupervised_code_is_read_by_a_probe_that_the_labels_do_not_reach_past() -> None:
    model = create_model("autoencoder", (1, 8, 8), 2, supervised=False, reconstruction_weight=0.0)
    F.cross_entropy(model(torch.randn(4, 1, 8, 8)), torch.randint(0, 2, (4,))).backward()
    assert model.head.fc.weight.grad is not None and model.head.fc.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in [*model.encoder.parameters(), *model.code.parameters()])


@pytest.mark.parametrize("name", ["autoencoder", "conv_autoencoder"])
def test_a_plain_cross_entropy_loop_learns_to_reconstruct_digits(name: str) -> None:
    """Through forward alone, as the fit loop trains it, the decoder learns: with the reconstruction term the
    test reconstruction error halves; without it, the decoder never moves and the error grows as the code does."""
    bundle = data.load("digits", val_fraction=0.0)  # 1,438 training and 359 test 8x8 digits
    x, y = bundle.train.x.float() / 255, bundle.train.y
    x_test = bundle.test.x.float() / 255
    errors = {}
    for weight in (1.0, 0.0):
        torch.manual_seed(0)
        model = create_model(name, (1, 8, 8), 10, latent_dim=2, likelihood="bernoulli",
                             reconstruction_weight=weight)
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
        order = torch.Generator().manual_seed(0)
        with torch.no_grad():
            before = float(model.reconstruction_loss(x_test))
        for _ in range(200):
            i = torch.randint(0, len(x), (64,), generator=order)
            loss = F.cross_entropy(model(x[i]), y[i])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            errors[weight] = float(model.eval().reconstruction_loss(x_test))
    # Measured (binary cross-entropy per pixel): about 0.70 before, 0.35 with the term, 0.9 to 1.1 without.
    assert errors[1.0] < 0.6 * before
    assert errors[0.0] > before > errors[1.0]


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
