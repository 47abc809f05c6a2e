"""Synthetic datasets through ``lineup.data.load``: split sizes, dtypes and shapes, the distribution in the bundle,
seeded and versioned draws, options validated with messages that name the option, and models that take them."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lineup.data import DataBundle, list_datasets, load
from lineup.data.synthetic import dataset_options
from lineup.errors import SpecError, UnknownNameError
from lineup.models import create_model

SYNTHETIC = ["gaussian-2", "gaussian-mixture", "gaussian-moons", "gaussian-rings", "gaussian-shapes",
             "gaussian-spirals", "gaussian-xor", "polynomial-contours"]


def test_gaussian_2_bundle_has_the_requested_splits_and_its_distribution() -> None:
    b = load("gaussian-2", options={"n_train": 200, "n_val": 50, "n_test": 3000, "separation": 1.0})
    assert isinstance(b, DataBundle)
    assert (len(b.train), len(b.val), len(b.test)) == (200, 50, 3000)
    assert b.train.x.shape == (200, 1, 1, 2) and b.train.x.dtype == torch.float32
    assert b.train.y.dtype == torch.int64 and b.input_shape == (1, 1, 2) and b.classes == ["0", "1"]
    assert b.normalization.mean == (0.0,) and b.normalization.std == (1.0,) and b.normalization.scale == 1.0
    torch.testing.assert_close(b.normalization.apply(b.train.x), b.train.x)  # stored floats are model inputs
    risk = b.distribution.bayes_risk()
    assert risk.value == pytest.approx(0.5 * math.erfc(0.5 / math.sqrt(2)), abs=1e-12)  # Phi(-1/2)
    assert any("Bayes risk R* = 0.308538" in note for note in b.notes)
    # The three splits are independent draws, not copies of one another.
    assert not torch.equal(b.train.x[:50], b.val.x) and not torch.equal(b.train.x, b.test.x[:200])


def test_default_validation_size_follows_val_fraction() -> None:
    b = load("gaussian-2", options={"n_train": 900, "n_test": 10}, val_fraction=0.1)
    assert len(b.val) == 100  # 900 * 0.1 / 0.9: validation is 10% of training + validation


def test_bayes_classifier_on_the_test_split_agrees_with_the_bayes_risk() -> None:
    b = load("gaussian-xor", options={"n_train": 10, "n_test": 200_000, "weights": [0.7, 0.3], "priors": [0.4, 0.6]})
    r = b.distribution.bayes_risk()
    err = float((b.distribution.bayes_predict(b.test.x) != b.test.y.numpy()).mean())
    se = math.sqrt(r.value * (1 - r.value) / len(b.test))  # 7e-4
    assert abs(err - r.value) <= 3 * se


def test_draws_are_seeded_nested_and_versioned() -> None:
    opts = {"n_train": 300, "n_val": 40, "n_test": 100}
    a, b = load("gaussian-rings", options=opts), load("gaussian-rings", options=opts)
    assert torch.equal(a.train.x, b.train.x) and a.version == b.version
    bigger = load("gaussian-rings", options={**opts, "n_train": 1000})
    assert torch.equal(bigger.train.x[:300], a.train.x)  # a larger training split extends the smaller one
    assert torch.equal(bigger.val.x, a.val.x) and torch.equal(bigger.test.x, a.test.x)  # the others unchanged
    assert bigger.version != a.version
    other = load("gaussian-rings", options=opts, split_seed=1)
    assert not torch.equal(other.train.x, a.train.x) and other.version != a.version
    assert load("gaussian-rings", options={**opts, "spread": 0.6}).version != a.version
    sub = load("gaussian-rings", options=opts, train_size=100, test_size=50)
    assert torch.equal(sub.train.x, a.train.x[:100]) and torch.equal(sub.test.x, a.test.x[:50])


def test_distortion_options_change_data_and_risk_together() -> None:
    base = {"n_train": 20, "n_test": 20}
    clean = load("gaussian-2", options=base).distribution.bayes_risk().value  # Phi(-1)
    noisy = load("gaussian-2", options={**base, "label_noise": 0.1}).distribution.bayes_risk().value
    assert noisy == pytest.approx(0.1 + 0.8 * clean, abs=1e-12)
    wider = load("gaussian-2", options={**base, "input_noise": 1.0}).distribution.bayes_risk().value
    assert wider == pytest.approx(0.5 * math.erfc(math.sqrt(2) / 2 / math.sqrt(2)), abs=1e-12)  # Phi(-sqrt(2)/2)
    closer = load("gaussian-2", options={**base, "mean_scale": 0.5}).distribution.bayes_risk().value
    assert closer == pytest.approx(load("gaussian-2", options={**base, "separation": 1.0})
                                   .distribution.bayes_risk().value, abs=1e-12)
    # classes first, then priors: the priors are those of the kept classes, in their new order.
    b = load("gaussian-rings", options={**base, "num_classes": 3, "priors": [0.3, 0.7]}, classes=[2, 0])
    assert b.classes == ["2", "0"]
    np.testing.assert_allclose(b.distribution.priors, [0.3, 0.7])
    assert len(b.distribution.labels) == 2 * 8 + 1  # ring 2 (16 blobs) and the centre blob
    assert set(b.train.y.tolist()) <= {0, 1}


def test_gaussian_mixture_from_component_tables() -> None:
    options = {
        "n_train": 50, "n_test": 50, "priors": [0.25, 0.75],
        "components": [
            {"label": 0, "mean": [0.0, 0.0], "cov": [[1.0, 0.0], [0.0, 1.0]]},
            {"label": 1, "mean": [2.0, 0.0], "std": 1.0},
        ],
    }
    b = load("gaussian-mixture", options=options)
    # Two unit Gaussians 2 apart with priors 1/4, 3/4: R* = 0.25 Phi(-1 + log 3 / 2) + 0.75 Phi(-1 - log 3 / 2).
    phi = lambda z: 0.5 * math.erfc(-z / math.sqrt(2))  # noqa: E731
    expected = 0.25 * phi(-1 + math.log(3) / 2) + 0.75 * phi(-1 - math.log(3) / 2)
    assert b.distribution.bayes_risk().value == pytest.approx(expected, abs=1e-12)
    with pytest.raises(SpecError, match=r"classes \[1\] have no component"):
        load("gaussian-mixture", options={"components": [{"label": 0, "mean": [0.0, 0.0]},
                                                         {"label": 2, "mean": [1.0, 0.0]}]})
    with pytest.raises(SpecError, match="data.options.components\\[1\\].mean|same, positive length"):
        load("gaussian-mixture", options={"components": [{"label": 0, "mean": [0.0, 0.0]},
                                                         {"label": 1, "mean": [1.0]}]})


def test_image_datasets_through_load() -> None:
    shapes = load("gaussian-shapes", options={"n_train": 30, "n_test": 20, "shapes": ["square", "disk"], "size": 12})
    assert shapes.train.x.shape == (30, 1, 12, 12) and shapes.train.x.dtype == torch.float32
    assert shapes.classes == ["square", "disk"] and shapes.distribution.bayes_risk().method == "closed-form"
    contours = load("polynomial-contours", options={"n_train": 40, "n_val": 10, "n_test": 20, "degrees": [1, 3]})
    assert contours.train.x.shape == (40, 1, 40, 40) and contours.train.x.dtype == torch.uint8
    assert contours.classes == ["degree 1", "degree 3"] and contours.distribution is None
    assert contours.normalization.scale == pytest.approx(1 / 255)
    x = contours.train.x.numpy() / 255.0
    assert contours.normalization.mean == (round(float(x.mean()), 4),)  # measured on the training split


@pytest.mark.parametrize(
    ("dataset", "options", "kwargs", "match"),
    [
        ("gaussian-2", {"seperation": 1.0}, {}, r"data.options.seperation.*Did you mean 'separation'.*Allowed keys"),
        ("gaussian-2", {"separation": -1.0}, {}, r"data.options.separation: must be at least 0"),
        ("gaussian-2", {"label_noise": 0.6}, {}, r"data.options.label_noise: must be at most \(K-1\)/K = 0.5"),
        ("gaussian-2", {"priors": [0.2, 0.3, 0.5]}, {}, r"data.options.priors: priors must be 2 probabilities"),
        ("gaussian-2", {"n_train": 10}, {"train_size": 20}, r"data.train_size: must be in 1..10"),
        ("gaussian-2", {}, {"distortions": {"label_noise": 0.1}}, r"data.distortions.*label_noise"),
        ("gaussian-shapes", {"shapes": ["square", "hexagon"]}, {}, r"unknown shape 'hexagon'; shapes: square"),
        ("gaussian-shapes", {"noise_profile": "ring"}, {}, r"noise_profile.*Allowed: 'isotropic', 'radial'"),
        ("polynomial-contours", {"degrees": [1, 6]}, {}, r"data.options.degrees\[1\]|must be at most 5"),
        ("gaussian-rings", {}, {"classes": [0, 3]}, r"data.classes"),
    ],
)
def test_bad_options_are_spec_errors_that_name_the_option(dataset: str, options: dict, kwargs: dict,
                                                          match: str) -> None:
    with pytest.raises(SpecError, match=match):
        load(dataset, options={"n_train": 10, "n_test": 10, **options}, **kwargs)


def test_names_are_listed_and_unknown_ones_rejected() -> None:
    names = list_datasets()
    assert set(SYNTHETIC) <= set(names) and "digits" in names and names == sorted(names)
    assert "separation" in dataset_options("gaussian-2") and "n_test" in dataset_options("polynomial-contours")
    with pytest.raises(UnknownNameError, match="gaussian-3"):
        load("gaussian-3")


@pytest.mark.parametrize("model", ["softmax_regression", "logistic_regression", "mlp"])
def test_registry_models_take_two_dimensional_inputs(model: str) -> None:
    b = load("gaussian-moons", options={"n_train": 16, "n_test": 10})
    net = create_model(model, b.input_shape, b.num_classes)
    out = net(b.normalization.apply(b.train.x))
    assert out.shape[0] == 16 and torch.isfinite(out).all()
