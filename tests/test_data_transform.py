"""Resizing and channel conversion of stored images: worked values, and their effect through ``load``."""

from __future__ import annotations

import pytest
import torch

from lineup.data import load
from lineup.data.transform import ImageTransform, channel_stats, convert_channels, resize_images
from lineup.errors import SpecError


def test_bilinear_enlarging_by_hand() -> None:
    # Output column j samples input position (j + 0.5) / 2 - 0.5, clamped to the image:
    # -0.25 → 0, 0.25 → 0.75·0 + 0.25·255 = 63.75, 0.75 → 191.25, 1.25 → 255 (clamped to the last pixel).
    x = torch.tensor([[[[0, 255]]]], dtype=torch.uint8)
    assert resize_images(x, (1, 4)).tolist() == [[[[0, 64, 191, 255]]]]


def test_shrinking_is_antialiased() -> None:
    # Alternating black and white columns reduced threefold: plain bilinear sampling would land on single
    # columns and keep them pure black or white; the antialiasing filter averages them towards grey.
    x = torch.zeros(1, 1, 12, 12, dtype=torch.uint8)
    x[..., 1::2] = 255
    y = resize_images(x, (4, 4))
    assert y.shape == (1, 1, 4, 4) and y.dtype == torch.uint8
    assert 64 < y.float().mean() < 192 and y.min() > 40 and y.max() < 215


def test_resizing_to_the_same_size_changes_nothing() -> None:
    x = torch.randint(0, 256, (3, 2, 5, 7), dtype=torch.uint8)
    assert resize_images(x, (5, 7)) is x


def test_channel_conversion() -> None:
    rgb = torch.tensor([255, 0, 0], dtype=torch.uint8).view(1, 3, 1, 1)
    assert convert_channels(rgb, 1).item() == 76  # round(0.299 · 255) = round(76.245)
    white = torch.full((1, 3, 1, 1), 255, dtype=torch.uint8)
    assert convert_channels(white, 1).item() == 255  # the weights sum to 1
    grey = torch.tensor([[[[7, 200]]]], dtype=torch.uint8)
    assert convert_channels(grey, 3).tolist() == [[[[7, 200]], [[7, 200]], [[7, 200]]]]
    with pytest.raises(SpecError, match="cannot convert images with 4 channels"):
        convert_channels(torch.zeros(1, 4, 2, 2, dtype=torch.uint8), 3)


def test_channel_stats_by_hand() -> None:
    # Channel 0 holds 0 and 255: mean 0.5, std 0.5. Channel 1 holds 51 twice: mean 0.2, std 0 → 1 (no division by 0).
    x = torch.tensor([[[[0]], [[51]]], [[[255]], [[51]]]], dtype=torch.uint8)
    assert channel_stats(x) == ((0.5, 0.2), (0.5, 1.0))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"resize": [0, 3]}, r"resize must be a positive int or \[height, width\]"),
        ({"resize": [28, 28, 28]}, r"resize must be a positive int or \[height, width\]"),
        ({"resize": "big"}, "expected a list of an integer or an integer"),
        ({"channels": 2}, "2 is not allowed. Allowed: 1, 3"),
    ],
)
def test_bad_settings_name_their_key(options: dict, message: str) -> None:
    with pytest.raises(SpecError, match=message) as e:
        ImageTransform.pop_from(dict(options))
    assert e.value.key is not None and e.value.key.startswith("data.options.")


def test_pop_leaves_the_datasets_own_options() -> None:
    options = {"resize": 32, "manifest": "a.csv"}
    transform = ImageTransform.pop_from(options)
    assert options == {"manifest": "a.csv"} and transform.size == (32, 32) and transform


def test_load_resizes_and_converts_every_split() -> None:
    plain = load("digits", classes=[3, 8])
    bundle = load("digits", classes=[3, 8], options={"resize": [16, 12], "channels": 3})
    assert bundle.input_shape == (3, 16, 12)
    for split, before in ((bundle.train, plain.train), (bundle.val, plain.val), (bundle.test, plain.test)):
        assert split.x.shape == (len(before), 3, 16, 12) and split.x.dtype == torch.uint8
        assert torch.equal(split.index, before.index) and torch.equal(split.y, before.y)
        assert torch.equal(split.x[:, 0], split.x[:, 2])  # grey repeated
    expected = resize_images(plain.test.x[:5], (16, 12))[:, 0]
    assert torch.equal(bundle.test.x[:5, 0], expected)
    # Measured on the transformed training split, the same in each channel.
    mean, std = channel_stats(bundle.train.x)
    assert bundle.normalization.mean == mean and bundle.normalization.std == std and len(set(mean)) == 1
    assert bundle.version != plain.version
    assert any(n.startswith("images: 1×8×8 → 3×16×12") for n in bundle.notes)


def test_plain_data_keeps_its_version() -> None:
    # Computed before resizing and distortions existed; results stored under it must stay valid.
    assert load("digits").version == "digits-d9740a4411c08a2f+1f32a61919a0"
    assert load("digits", classes=[3, 8], train_size=100, test_size=50).version == (
        "digits-d9740a4411c08a2f+376ac95dcc2d"
    )
