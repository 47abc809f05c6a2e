"""Controlled distortions: their schema and errors, worked examples of each, and their effect through ``load``.

End to end on scikit-learn's digits (digits 3 and 8: 1,438 training and 359 test images in all), which load
in milliseconds.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lineup.data import load
from lineup.data.distortions import (
    Affine,
    Blur,
    Distortions,
    Erasing,
    InputNoise,
    add_noise,
    flip_labels,
    gaussian_blur,
    imbalance_subsample,
    random_affine,
    random_erasing,
)
from lineup.errors import SpecError

TASK = {"dataset": "digits", "classes": [3, 8]}


class Highest:
    """A stand-in generator whose every uniform draw is the top of its range: a known transform."""

    def uniform(self, low: float, high: float, size: object) -> np.ndarray:
        return np.full(size, high, dtype=np.float64)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------------------
# Schema


@pytest.mark.parametrize(
    ("table", "key", "message"),
    [
        ({"lable_noise": {"rate": 0.1}}, "data.distortions.lable_noise", "Did you mean 'label_noise'"),
        ({"label_noise": {"rate": 0.1, "prob": 1}}, "data.distortions.label_noise.prob",
         "Allowed keys: rate, apply_to"),
        ({"label_noise": {}}, "data.distortions.label_noise.rate", "missing required key 'rate'"),
        ({"label_noise": {"rate": 1.5}}, "data.distortions.label_noise.rate", "at most 1.0"),
        ({"input_noise": {"std": 0.1, "apply_to": "test"}}, "data.distortions.input_noise.apply_to",
         "Allowed: 'train', 'all'"),
        ({"imbalance": {"label": 1, "share": 1.0}}, "data.distortions.imbalance.share", "share must be below 1"),
        ({"imbalance": {"share": 0.5}}, "data.distortions.imbalance.label", "missing required key 'label'"),
        ({"affine": {}}, "data.distortions.affine", "changes nothing"),
        ({"erasing": {"area": [0.3, 0.1]}}, "data.distortions.erasing.area", "low <= high"),
        ({"blur": {"sigma": "wide"}}, "data.distortions.blur.sigma", "expected a number"),
        ({"blur": 1.0}, "data.distortions.blur", "expected a table"),
    ],
)
def test_bad_tables_name_the_key_and_what_is_allowed(table: dict, key: str, message: str) -> None:
    with pytest.raises(SpecError, match=message) as e:
        Distortions.parse(table)
    assert e.value.key == key


def test_unknown_distortion_lists_the_allowed_ones() -> None:
    with pytest.raises(SpecError, match="Allowed: imbalance, label_noise, affine, erasing, blur, input_noise"):
        Distortions.parse({"mixup": {}})


def test_defaults_are_filled_in_and_recorded() -> None:
    d = Distortions.parse({"erasing": {}, "label_noise": {"rate": 0.2}})
    assert d.to_dict() == {
        "label_noise": {"rate": 0.2, "apply_to": "train"},
        "erasing": {"probability": 0.5, "area": [0.02, 0.33], "aspect": [0.3, 3.3], "value": 0, "apply_to": "train"},
    }
    assert d and not Distortions.parse({}) and not Distortions.parse(None)


def test_imbalance_label_must_be_a_task_class() -> None:
    with pytest.raises(SpecError, match=r"label 2 is not a class of this task; its labels are 0 \(3\), 1 \(8\)"):
        load(**TASK, distortions={"imbalance": {"label": 2, "share": 0.9}})


# ------------------------------------------------------------------------------------------------------------
# Worked examples


def test_imbalance_subsample_both_ways() -> None:
    y = np.array([0] * 6 + [1] * 4)
    # Class 1 is rarer than 80%: keep its 4, and 4 · 0.2 / 0.8 = 1 of the others.
    assert np.bincount(y[imbalance_subsample(y, 1, 0.8, seed=0)]).tolist() == [1, 4]
    # Class 0 is more common than 20%: keep the 4 others, and 4 · 0.2 / 0.8 = 1 of class 0.
    assert np.bincount(y[imbalance_subsample(y, 0, 0.2, seed=0)]).tolist() == [1, 4]
    # Three classes: the two others keep their 2 : 1 proportions among themselves.
    y3 = np.array([0] * 40 + [1] * 20 + [2] * 10)
    assert np.bincount(y3[imbalance_subsample(y3, 2, 0.25, seed=0)]).tolist() == [20, 10, 10]
    with pytest.raises(SpecError, match="cannot be reached"):
        imbalance_subsample(np.array([0, 1]), 1, 0.99, seed=0)  # would keep 0.01 of an example


def test_label_noise_flips_exactly_the_rate_to_other_classes() -> None:
    y = np.arange(1000) % 3
    noisy, n = flip_labels(y, 0.25, 3, np.random.default_rng(0))
    assert n == 250 and (noisy != y).sum() == 250
    assert np.bincount(noisy[noisy != y] - y[noisy != y] + 3, minlength=6)[[1, 2, 4, 5]].min() > 30  # all directions
    binary, _ = flip_labels(np.zeros(10, dtype=np.int64), 1.0, 2, np.random.default_rng(0))
    assert binary.tolist() == [1] * 10  # with two classes a flip has one place to go


def test_input_noise_has_the_asked_std_and_stays_uint8() -> None:
    x = torch.full((200, 1, 10, 10), 128, dtype=torch.uint8)
    y = add_noise(x, InputNoise(std=0.05), np.random.default_rng(0))
    assert y.dtype == torch.uint8
    diff = y.float() - 128
    # 20,000 draws of std 12.75: the mean is within 0.5 (about 5 standard errors) of 0.
    assert abs(diff.mean()) < 0.5 and diff.std() == pytest.approx(0.05 * 255, rel=0.02)
    assert add_noise(torch.full((1, 1, 50, 50), 250, dtype=torch.uint8), InputNoise(std=0.5),
                     np.random.default_rng(0)).max() == 255  # clipped, not wrapped round


def test_affine_rotation_by_a_quarter_turn_is_exact() -> None:
    # On a 8×16 image, the central 8×8 square rotated a quarter turn lands on itself, pixel centre on pixel
    # centre; this holds only if the different grid units along x and y are accounted for.
    x = torch.zeros(1, 1, 8, 16, dtype=torch.uint8)
    x[..., 4:12] = torch.randint(1, 256, (8, 8), dtype=torch.uint8)
    out = random_affine(x, Affine(degrees=90.0), Highest())  # type: ignore[arg-type]
    square = x[..., 4:12]
    assert torch.equal(out[..., 4:12], torch.rot90(square, 1, dims=(2, 3))) or torch.equal(
        out[..., 4:12], torch.rot90(square, -1, dims=(2, 3))
    )
    assert out[..., :4].sum() == 0 and out[..., 12:].sum() == 0  # new pixels are black


def test_affine_shift_by_a_quarter_moves_two_pixels_of_eight() -> None:
    x = torch.randint(0, 256, (1, 1, 8, 8), dtype=torch.uint8)
    out = random_affine(x, Affine(translate=0.25), Highest())  # type: ignore[arg-type]
    assert torch.equal(out[..., 2:, 2:], x[..., :-2, :-2])  # down and right by 2
    assert out[..., :2, :].sum() == 0 and out[..., :, :2].sum() == 0


def test_erasing_fills_one_rectangle_of_the_asked_area() -> None:
    x = torch.full((50, 1, 20, 20), 255, dtype=torch.uint8)
    out = random_erasing(x, Erasing(probability=1.0, area=[0.1, 0.2], value=7), np.random.default_rng(0))
    erased = (out == 7).sum(dim=(1, 2, 3)).float() / 400
    assert ((erased > 0.05) & (erased < 0.3)).all()  # the asked 10–20%, up to rounding and the image border
    assert set(out.unique().tolist()) == {7, 255}
    for image in out[:, 0] == 7:  # each erased region is one filled rectangle
        rows, cols = image.any(dim=1).nonzero(), image.any(dim=0).nonzero()
        assert image[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].all()
    some = random_erasing(x, Erasing(probability=0.3), np.random.default_rng(0))
    assert 5 < (some != 255).flatten(1).any(dim=1).sum() < 25


def test_blur_keeps_constants_and_mass() -> None:
    flat = torch.full((1, 3, 9, 9), 90, dtype=torch.uint8)
    assert torch.equal(gaussian_blur(flat, Blur(sigma=1.5), np.random.default_rng(0)), flat)
    impulse = torch.zeros(1, 1, 15, 15, dtype=torch.uint8)
    impulse[0, 0, 7, 7] = 255
    out = gaussian_blur(impulse, Blur(sigma=1.0), np.random.default_rng(0)).float()
    assert abs(out.sum() - 255) < 10 and out[0, 0, 7, 7] == out.max() < 255
    torch.testing.assert_close(out, out.flip(2))  # symmetric
    torch.testing.assert_close(out, out.transpose(2, 3))


# ------------------------------------------------------------------------------------------------------------
# Through load()


def test_imbalance_sets_the_share_of_train_and_validation_and_keeps_train_size() -> None:
    # About 145 training images of each digit: 8 keeps all of its and 3 keeps a quarter as many.
    bundle = load(**TASK, train_size=100, distortions={"imbalance": {"label": 1, "share": 0.8}})
    assert len(bundle.train) == 100 and torch.bincount(bundle.train.y).tolist() == [20, 80]
    assert bundle.val.y.float().mean().item() == pytest.approx(0.8, abs=0.03)
    clean = load(**TASK, train_size=100)
    assert torch.equal(bundle.test.index, clean.test.index)  # apply_to = "train": the test split is untouched
    everywhere = load(**TASK, distortions={"imbalance": {"label": 1, "share": 0.8, "apply_to": "all"}})
    assert everywhere.test.y.float().mean().item() == pytest.approx(0.8, abs=0.01)
    note = "imbalance: class 1 (8) made 80% of the training and validation pool"
    assert any(n.startswith(note) for n in bundle.notes)


def test_label_noise_changes_train_and_validation_labels_only() -> None:
    clean = load(**TASK)
    noisy = load(**TASK, distortions={"label_noise": {"rate": 0.2}})
    for split in ("train", "val"):
        a, b = getattr(clean, split), getattr(noisy, split)
        assert torch.equal(a.index, b.index) and torch.equal(a.x, b.x)
        assert (a.y != b.y).sum().item() == round(0.2 * len(a))
    assert torch.equal(clean.test.y, noisy.test.y)
    note = next(n for n in noisy.notes if n.startswith("label noise"))
    assert f"{round(0.2 * len(clean.train))} of {len(clean.train):,} train" in note


@pytest.mark.parametrize(
    "table",
    [
        {"input_noise": {"std": 0.1}},
        {"affine": {"degrees": 10}},
        {"erasing": {"probability": 1.0}},
        {"blur": {"sigma": 0.7}},
    ],
    ids=lambda t: next(iter(t)),
)
def test_input_distortions_follow_apply_to(table: dict) -> None:
    clean = load(**TASK)
    train_only = load(**TASK, distortions=table)
    (name, settings), = table.items()
    everywhere = load(**TASK, distortions={name: dict(settings, apply_to="all")})
    for bundle in (train_only, everywhere):
        assert bundle.train.x.dtype == torch.uint8 and not torch.equal(bundle.train.x, clean.train.x)
        assert not torch.equal(bundle.val.x, clean.val.x) and torch.equal(bundle.train.y, clean.train.y)
    assert torch.equal(train_only.test.x, clean.test.x)
    assert not torch.equal(everywhere.test.x, clean.test.x)
    assert torch.equal(train_only.train.x, everywhere.train.x)  # the test split has its own draws
    assert len({clean.version, train_only.version, everywhere.version}) == 3
    assert train_only.normalization == clean.normalization  # distortions are part of the data, not the protocol


def test_distortions_are_deterministic_per_split_seed_and_independent_of_each_other() -> None:
    table = {"label_noise": {"rate": 0.3}, "input_noise": {"std": 0.2}}
    a, b = load(**TASK, distortions=table), load(**TASK, distortions=table)
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.train.y, b.train.y) and a.version == b.version
    other_seed = load(**TASK, split_seed=1, distortions=table)
    assert not torch.equal(other_seed.val.index, a.val.index)  # a different draw altogether
    # Adding a distortion does not redraw another one's randomness.
    labels_only = load(**TASK, distortions={"label_noise": {"rate": 0.3}})
    assert torch.equal(labels_only.train.y, a.train.y)


def test_every_distortion_is_in_the_notes_and_the_version() -> None:
    table = {
        "imbalance": {"label": 0, "share": 0.6},
        "label_noise": {"rate": 0.1},
        "affine": {"translate": 0.1},
        "erasing": {},
        "blur": {"sigma": 0.5},
        "input_noise": {"std": 0.05},
    }
    bundle = load(**TASK, distortions=table)
    prefixes = ["imbalance:", "label noise:", "affine:", "random erasing:", "blur:", "input noise:"]
    found = [next(i for i, n in enumerate(bundle.notes) if n.startswith(p)) for p in prefixes]
    assert found == sorted(found)  # in the order they are applied
    versions = {load(**TASK, distortions={k: v}).version for k, v in table.items()}
    versions.add(load(**TASK).version)
    assert len(versions) == len(table) + 1
