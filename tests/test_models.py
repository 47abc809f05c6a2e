"""Model registry and families: every registered model is built, run and differentiated (as timm's tests)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lineup.errors import SpecError, UnknownNameError
from lineup.models import (
    LineupModel,
    create_model,
    list_models,
    model_doc,
    model_options,
    register_model,
    register_variant,
)
from lineup.models._layers import ACTIVATIONS
from lineup.models.lenet import LeNet
from lineup.train import OptimConfig, create_objective
from lineup.train.objectives import batch_loss

SHAPES = [(1, 28, 28), (3, 32, 32), (1, 40, 40), (1, 64, 64)]
BINARY = {"logistic_regression"}  # models that only take two classes


def num_classes(name: str) -> int:
    return 2 if name in BINARY else 10


def narrow(name: str) -> dict:
    """An eighth of the default width where a model has one: the layers are what is tested, not their width."""
    return {"width": 0.125} if "width" in model_options(name) else {}


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def loss_for(model: LineupModel, x: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The loss of the model's own objective, written out from the model's parts rather than taken from
    ``lineup.train.objectives``; a new objective must be added here to be tested."""
    if model.default_objective == "cross_entropy":
        return F.cross_entropy(logits, y)
    if model.default_objective == "binary_cross_entropy":
        assert logits.shape[1] == 1
        return F.binary_cross_entropy_with_logits(logits[:, 0], y.float())
    if model.default_objective == "reconstruction":  # autoencoders: the decoder is trained through the loss
        return F.cross_entropy(logits, y) + model.reconstruction_weight * model.reconstruction_loss(x)
    if model.default_objective == "elbo":  # VAEs: one reparameterised draw, from the global stream
        return F.cross_entropy(logits, y) + model.elbo_weight * model.negative_elbo(x).mean()
    raise AssertionError(f"no test loss for objective {model.default_objective!r}")


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def test_registry_holds_the_expected_models() -> None:
    expected = {"logistic_regression", "softmax_regression", "mlp", "lenet5", "lenet5_bn", "lenet5_dropout"}
    expected |= {"vgg11", "vgg13", "vgg16", "vgg19", "resnet9", "resnet18", "resnet34", "unet"}
    assert expected <= set(list_models())
    assert list_models() == sorted(list_models())


# ------------------------------------------------------------------------------------------------------------
# Registry-driven: every model, every input shape.


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("name", list_models())
def test_forward_backward_and_features(name: str, shape: tuple[int, int, int]) -> None:
    k = num_classes(name)
    model = create_model(name, shape, k, **narrow(name))
    assert isinstance(model, LineupModel) and model.training
    x = torch.randn(4, *shape)
    y = torch.randint(0, k, (4,))

    logits = model(x)
    out_dim = 1 if model.default_objective == "binary_cross_entropy" else k
    assert logits.shape == (4, out_dim)
    assert torch.isfinite(logits).all()

    objective = create_objective(model.default_objective)
    if getattr(model, "fits_without_gradients", False):  # a scikit-learn estimator: nothing to differentiate
        assert not list(model.parameters())
    elif callable(getattr(objective, "train_step", None)):
        # An objective that owns its optimisation step (a GAN's, with one optimiser per network): after one step
        # every parameter holds the gradient of its own network's update.
        trained = objective.train_step(model, objective.configure_optimizers(model, OptimConfig()), x, y)
        assert trained.outputs.shape == (4, k) and torch.isfinite(trained.loss)
    else:
        torch.manual_seed(1)  # the same random draws (dropout, a VAE's z) for the loop's loss and the written-out one
        trained = batch_loss(create_objective(model.default_objective), model, x, y)
        torch.manual_seed(1)
        expected = loss_for(model, x, model(x), y)
        # What the fit loop minimises is the model's whole objective, and the gradient of every parameter
        # (decoders included) comes from that loss itself, so the loss it logs is the one it follows.
        torch.testing.assert_close(trained.loss, expected, rtol=1e-5, atol=1e-6)
        trained.loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{name}: {pname} gets no gradient"
        assert p.grad.abs().sum() > 0, f"{name}: {pname} has an all-zero gradient"

    features = model.forward_features(x)
    assert features.shape == (4, model.feature_dim)
    model.eval()  # dropout off, so the two paths must agree exactly
    with torch.no_grad():
        torch.testing.assert_close(model(x), model.forward_head(model.forward_features(x)))


@pytest.mark.parametrize("name", list_models())
def test_every_model_documents_itself_and_its_options_build(name: str) -> None:
    assert model_doc(name), f"{name} has no docstring"
    # Passing every option at its listed default must build: the listing is what the study validator trusts.
    model = create_model(name, (1, 28, 28), num_classes(name), **model_options(name)).eval()
    assert isinstance(model, LineupModel)
    with torch.no_grad():  # and run at full width, which the test above does not
        assert torch.isfinite(model(torch.randn(2, 1, 28, 28))).all()


# ------------------------------------------------------------------------------------------------------------
# Parameter counts worked by hand.


def test_lenet5_has_61706_parameters() -> None:
    # conv1 1→6, 5×5:          6·(1·25) + 6    =    156
    # conv2 6→16, 5×5:         16·(6·25) + 16  =  2,416
    # fc1 16·5·5 = 400 → 120:  400·120 + 120   = 48,120
    # fc2 120 → 84:            120·84 + 84     = 10,164
    # fc3 84 → 10:             84·10 + 10      =    850
    #                                    total = 61,706
    assert n_params(create_model("lenet5", (1, 28, 28), 10)) == 61_706


@pytest.mark.parametrize(
    ("name", "shape", "options", "expected"),
    [
        # 3×32×32: conv1 6·75+6 = 456; 32 →pool 16 →conv 12 →pool 6, so fc1 sees 16·6·6 = 576:
        # 456 + 2,416 + (576·120+120 = 69,240) + 10,164 + 850
        ("lenet5", (3, 32, 32), {}, 83_126),
        # Doubled filters: conv1 12·25+12 = 312; conv2 32·12·25+32 = 9,632; fc1 32·25·120+120 = 96,120
        ("lenet5", (1, 28, 28), {"channels": (12, 32)}, 312 + 9_632 + 96_120 + 10_164 + 850),
        # 3×3 first kernel (padding 1 keeps 28×28): conv1 6·9+6 = 60 instead of 156
        ("lenet5", (1, 28, 28), {"first_kernel_size": 3}, 61_706 - 156 + 60),
        # Batch norm drops the biases of conv/fc hidden layers (6+16+120+84 = 226) and adds a scale and a
        # shift per channel or unit (2·226 = 452): 61,706 - 226 + 452
        ("lenet5_bn", (1, 28, 28), {}, 61_932),
        ("lenet5_bn", (1, 28, 28), {"batch_norm": False}, 61_706),  # the variant is lenet5 + one default
        ("lenet5_dropout", (1, 28, 28), {}, 61_706),  # dropout has no parameters
        # 784·256+256 = 200,960; 256·128+128 = 32,896; 128·10+10 = 1,290
        ("mlp", (1, 28, 28), {}, 235_146),
        ("mlp", (1, 28, 28), {"hidden": [32]}, 784 * 32 + 32 + 32 * 10 + 10),  # a TOML list works
        ("mlp", (1, 28, 28), {"hidden": ()}, 7_850),  # no hidden layer: softmax regression
        ("softmax_regression", (1, 28, 28), {}, 784 * 10 + 10),
        ("logistic_regression", (3, 32, 32), {}, 3 * 32 * 32 + 1),
        # width scales the hidden units: (128, 64); 784·128+128 + 128·64+64 + 64·10+10
        ("mlp", (1, 28, 28), {"width": 0.5}, 100_480 + 8_256 + 650),
        # width 2 scales channels and fc: (12, 32) and (240, 168); conv1 312, conv2 9,632,
        # fc1 32·25·240+240 = 192,240, fc2 240·168+168 = 40,488, fc3 168·10+10 = 1,690
        ("lenet5", (1, 28, 28), {"width": 2}, 312 + 9_632 + 192_240 + 40_488 + 1_690),
    ],
)
def test_parameter_counts(name: str, shape: tuple[int, int, int], options: dict, expected: int) -> None:
    assert n_params(create_model(name, shape, num_classes(name), **options)) == expected


# ------------------------------------------------------------------------------------------------------------
# Options change the layers they claim to.


def count(model: nn.Module, kind: type[nn.Module]) -> int:
    return sum(isinstance(m, kind) for m in model.modules())


def test_batch_norm_variant_has_norms_before_activations_and_no_redundant_bias() -> None:
    model = create_model("lenet5_bn", (1, 28, 28), 10)
    assert (count(model, nn.BatchNorm2d), count(model, nn.BatchNorm1d)) == (2, 2)
    names = list(dict(model.features.named_children()))
    assert names.index("conv1_bn") == names.index("conv1") + 1 == names.index("conv1_act") - 1
    assert model.features.conv1.bias is None and model.features.fc1.bias is None
    assert count(create_model("lenet5", (1, 28, 28), 10), nn.modules.batchnorm._BatchNorm) == 0


def test_dropout_variant_drops_hidden_fc_outputs_only_in_training() -> None:
    model = create_model("lenet5_dropout", (1, 28, 28), 10)
    drops = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    assert len(drops) == 2 and all(
        d.p == 0.5 for d in drops
    )  # after fc1 (120) and before the classifier (84)
    assert count(create_model("lenet5", (1, 28, 28), 10), nn.Dropout) == 0
    x = torch.randn(4, 1, 28, 28)
    assert not torch.equal(model(x), model(x))  # masks differ between training passes
    model.eval()
    assert torch.equal(model(x), model(x))


def test_mlp_dropout_and_batch_norm_per_hidden_layer() -> None:
    model = create_model("mlp", (1, 28, 28), 10, hidden=(64, 32, 16), dropout=0.2, batch_norm=True)
    assert count(model, nn.Dropout) == 3 and count(model, nn.BatchNorm1d) == 3
    assert model.feature_dim == 16


def test_lenet_activation_and_pooling_options() -> None:
    leaky = create_model("lenet5", (1, 28, 28), 10, activation="leaky_relu", negative_slope=0.2)
    slopes = [m.negative_slope for m in leaky.modules() if isinstance(m, nn.LeakyReLU)]
    assert slopes == [0.2] * 4  # two convs and two hidden fc layers
    classic = create_model("lenet5_classic", (1, 28, 28), 10)
    assert (
        count(classic, nn.Tanh) == 4
        and count(classic, nn.AvgPool2d) == 2
        and count(classic, nn.MaxPool2d) == 0
    )


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_every_listed_activation_builds(activation: str) -> None:
    model = create_model("mlp", (1, 8, 8), 3, hidden=(4,), activation=activation)
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 3)


def test_lenet_features_are_the_last_hidden_layer() -> None:
    model = create_model("lenet5", (1, 28, 28), 10).eval()
    x = torch.randn(3, 1, 28, 28)
    assert model.feature_dim == 84
    # ReLU features are non-negative and feed the classifier unchanged.
    features = model.forward_features(x)
    assert (features >= 0).all()
    torch.testing.assert_close(model.head.fc(features), model(x))


# ------------------------------------------------------------------------------------------------------------
# Input sizes.


@pytest.mark.parametrize(
    ("options", "smallest"),
    [
        # 12 →conv(pad 2) 12 →pool 6 →conv5 2 →pool 1; at 11: 11 → 5 → 1 → pool 0.
        ({}, 12),
        # 8 →conv3(pad 1) 8 →pool 4 →conv3 2 →pool 1.
        ({"kernel_size": 3}, 8),
    ],
)
def test_lenet_smallest_input_is_exact(options: dict, smallest: int) -> None:
    model = create_model("lenet5", (1, smallest, smallest), 10, **options)
    assert model(torch.randn(2, 1, smallest, smallest)).shape == (2, 10)
    with pytest.raises(SpecError, match=f"at least {smallest}"):
        create_model("lenet5", (1, smallest - 1, smallest - 1), 10, **options)


def test_too_small_input_names_model_shape_and_fix() -> None:
    with pytest.raises(SpecError) as e:
        create_model("lenet5", (1, 4, 4), 10)
    message = str(e.value)
    assert "'lenet5'" in message and "1×4×4" in message and "at least 12" in message
    with pytest.raises(SpecError, match="1×28×11"):  # one short side is enough to fail
        create_model("lenet5", (1, 28, 11), 10)


def test_lenet_any_channel_count() -> None:
    model = create_model("lenet5", (5, 20, 24), 4)
    assert model(torch.randn(2, 5, 20, 24)).shape == (2, 4)


# ------------------------------------------------------------------------------------------------------------
# Errors a user will meet.


def test_unknown_model_suggests_close_names() -> None:
    with pytest.raises(UnknownNameError, match="Did you mean 'lenet5'") as e:
        create_model("lenet", (1, 28, 28), 10)
    assert "softmax_regression" in str(e.value)  # the known names are listed
    assert e.value.exit_code == 2
    with pytest.raises(UnknownNameError):
        model_options("lenet")


def test_unknown_option_lists_allowed_options_with_defaults() -> None:
    with pytest.raises(SpecError) as e:
        create_model("lenet5", (1, 28, 28), 10, dropot=0.3)
    message = str(e.value)
    assert "'dropot'" in message and "Did you mean 'dropout'" in message
    assert "dropout=0.0" in message and "channels=(6, 16)" in message and "batch_norm=False" in message
    with pytest.raises(SpecError, match="takes no options"):
        create_model("softmax_regression", (1, 28, 28), 10, hidden=(3,))


@pytest.mark.parametrize(
    ("name", "options", "expected"),
    [
        ("mlp", {"dropout": "high"}, "must be float, got str"),
        ("lenet5", {"batch_norm": 1}, "must be bool, got int"),
        ("lenet5", {"kernel_size": 5.0}, "must be int, got float"),
        ("lenet5", {"channels": [6, "16"]}, "must be a list of int"),
        ("lenet5", {"first_kernel_size": "3"}, "must be int or None"),
        ("lenet5", {"activation": "swish"}, "one of 'relu', 'leaky_relu', 'tanh'"),
        ("lenet5", {"pooling": "min"}, "one of 'max', 'avg'"),
    ],
)
def test_wrong_option_type_names_expected_type(name: str, options: dict, expected: str) -> None:
    with pytest.raises(SpecError, match=expected):
        create_model(name, (1, 28, 28), 10, **options)


@pytest.mark.parametrize(
    ("name", "options", "expected"),
    [
        ("lenet5", {"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
        ("mlp", {"hidden": (0, 5)}, "positive"),
        ("lenet5", {"channels": ()}, "at least one"),
        ("lenet5", {"first_kernel_size": 0}, "positive"),
    ],
)
def test_bad_option_values(name: str, options: dict, expected: str) -> None:
    with pytest.raises(SpecError, match=expected):
        create_model(name, (1, 28, 28), 10, **options)


def test_logistic_regression_is_binary_and_points_to_softmax() -> None:
    with pytest.raises(SpecError, match="softmax_regression"):
        create_model("logistic_regression", (1, 28, 28), 10)


@pytest.mark.parametrize("shape", [(28, 28), (1, 0, 28), (1, 28.0, 28)])
def test_bad_input_shape(shape: tuple) -> None:
    with pytest.raises(SpecError, match="input_shape"):
        create_model("mlp", shape, 10)


def test_variant_options_show_their_own_defaults() -> None:
    assert model_options("lenet5_bn") == dict(model_options("lenet5"), batch_norm=True)
    assert model_options("lenet5_dropout")["dropout"] == 0.5
    assert model_options("softmax_regression") == {}
    assert model_options("vgg11")["layers"] == (1, 1, 2, 2, 2) and model_options("vgg19")["layers"] == (2, 2, 4, 4, 4)
    assert model_options("resnet34") == dict(model_options("resnet18"), layers=(3, 4, 6, 3))


# ------------------------------------------------------------------------------------------------------------
# Registration.


def test_duplicate_registration_raises_and_keeps_the_original() -> None:
    def lenet5(input_shape: tuple[int, int, int], num_classes: int) -> LineupModel:
        raise AssertionError("never built")

    with pytest.raises(ValueError, match="already registered"):
        register_model(lenet5)
    with pytest.raises(ValueError, match="already registered"):
        register_variant("lenet5", LeNet, "again")
    assert isinstance(create_model("lenet5", (1, 28, 28), 10), LeNet)


def test_builders_must_have_defaulted_keyword_only_options() -> None:
    before = list_models()

    def no_default(input_shape: tuple[int, int, int], num_classes: int, *, width: int) -> LineupModel:
        raise AssertionError

    def positional_option(input_shape: tuple[int, int, int], num_classes: int, width: int = 3) -> LineupModel:
        raise AssertionError

    for builder in (no_default, positional_option):
        with pytest.raises(TypeError, match="keyword-only with a default"):
            register_model(builder)
    with pytest.raises(TypeError, match="no options"):
        register_variant("lenet5_typo", LeNet, "doc", batchnorm=True)
    with pytest.raises(TypeError, match="do not match"):
        register_variant("lenet5_typo", LeNet, "doc", dropout="0.5")
    assert list_models() == before
