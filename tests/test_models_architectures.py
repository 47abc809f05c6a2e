"""VGG, ResNet and U-Net: hand-counted parameters, how each adapts to the input size, and what each part does."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lineup.errors import SpecError
from lineup.models import create_model, summarize
from lineup.models._layers import halvings
from lineup.models.resnet import BasicBlock


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def shapes_of(name: str, shape: tuple[int, int, int], kind: str, **options: object) -> list[tuple[int, ...] | None]:
    summary = summarize(create_model(name, shape, 10, **options), shape)
    return [r.output_shape for r in summary.layers if r.type == kind]


@pytest.mark.parametrize(
    ("name", "shape", "options", "expected"),
    [
        # vgg11 with channels (2, 4, 8, 8, 8) on 3×32×32, conv = c_in·c_out·9 + c_out:
        # conv1_1 3→2: 56; conv2_1 2→4: 76; conv3_1 4→8: 296; five 8→8 convs: 5·584; head 8·10+10 = 90
        ("vgg11", (3, 32, 32), {"channels": (2, 4, 8, 8, 8)}, 56 + 76 + 296 + 5 * 584 + 90),
        # The same with a hidden fc layer of 6 units: 8·6+6 = 54 and a classifier of 6·10+10 = 70 instead of 90
        ("vgg11", (3, 32, 32), {"channels": (2, 4, 8, 8, 8), "fc": (6,)}, 56 + 76 + 296 + 5 * 584 + 54 + 70),
        # ResNet with stages (1, 1) of (2, 4) channels on 1×8×8:
        # stem 1·2·9 = 18 (+ BN 4); block 2→2: two 2·2·9 = 36 convs + 2 BNs of 4 = 80, identity shortcut;
        # block 2→4 stride 2: 2·4·9 = 72 + 8, 4·4·9 = 144 + 8, 1×1 projection 2·4 = 8 + 8 → 248; head 4·10+10
        ("resnet18", (1, 8, 8), {"layers": (1, 1), "channels": (2, 4)}, 18 + 4 + 80 + 248 + 50),
        # ResNet-9 at full width on CIFAR: prep 3·64·9 + BN 128 = 1,856; conv1 64·128·9 + 256 = 73,984;
        # res1 2·(128·128·9 + 256) = 295,424; conv2 128·256·9 + 512 = 295,424;
        # conv3 256·512·9 + 1,024 = 1,180,672; res3 2·(512·512·9 + 1,024) = 4,720,640; fc 512·10+10 = 5,130
        ("resnet9", (3, 32, 32), {}, 1_856 + 73_984 + 295_424 + 295_424 + 1_180_672 + 4_720_640 + 5_130),
        # U-Net, depth 1, channels (1, 2) (64/64 and 128/64): encoder 1→1→1: (9+1)·2 = 20;
        # 1→2→2: 18+2 + 36+2 = 58; transposed conv 2→1, 2×2: 8+1 = 9; decoder 2→1→1: 18+1 + 9+1 = 29; head 20
        ("unet", (1, 8, 8), {"depth": 1, "width": 1 / 64}, 20 + 58 + 9 + 29 + 20),
    ],
)
def test_parameter_counts(name: str, shape: tuple[int, int, int], options: dict, expected: int) -> None:
    assert n_params(create_model(name, shape, 10, **options)) == expected


def test_full_size_counts_match_the_literature() -> None:
    # The convolutional part of torchvision's vgg16 (14,714,688) plus a 512·10+10 head; ResNet-18 for CIFAR.
    assert n_params(create_model("vgg16", (3, 32, 32), 10)) == 14_714_688 + 5_130
    assert n_params(create_model("resnet18", (3, 32, 32), 10)) == 11_173_962
    assert 31_000_000 < n_params(create_model("unet", (1, 32, 32), 2)) < 31_100_000  # the paper's "31M"


# ------------------------------------------------------------------------------------------------------------
# Input sizes: pooling that adapts, and the sizes a U-Net cannot take.


@pytest.mark.parametrize(
    ("side", "pooled_sides"),
    [
        (64, [32, 16, 8, 4, 2]),
        (40, [20, 10, 5, 2, 1]),
        (32, [16, 8, 4, 2, 1]),
        (28, [14, 7, 3, 1]),  # no fifth pooling of the 1×1 map
        (8, [4, 2, 1]),
        (1, []),
    ],
)
def test_vgg_pools_while_both_sides_are_at_least_two(side: int, pooled_sides: list[int]) -> None:
    pools = shapes_of("vgg11", (1, side, side), "MaxPool2d", width=0.125)
    assert [s[1] for s in pools if s] == pooled_sides
    assert halvings(side, side, 5) == len(pooled_sides)


def test_vgg_pooling_stops_at_the_short_side() -> None:
    pools = shapes_of("vgg11", (1, 28, 5), "MaxPool2d", width=0.125)
    assert [s[1:] for s in pools if s] == [(14, 2), (7, 1)]


@pytest.mark.parametrize(("side", "head_side"), [(64, 8), (40, 5), (32, 4), (28, 4), (8, 1), (1, 1)])
def test_resnet_reaches_the_head_at_an_eighth_of_the_input(side: int, head_side: int) -> None:
    blocks = shapes_of("resnet18", (1, side, side), "BatchNorm2d", width=0.125)
    assert blocks[-1][1:] == (head_side, head_side)  # the last block's last norm


@pytest.mark.parametrize(("side", "pools"), [(32, 3), (28, 3), (8, 3), (3, 1), (1, 0)])
def test_resnet9_pools_three_times_when_it_can(side: int, pools: int) -> None:
    model = create_model("resnet9", (3, side, side), 10, width=0.125)
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.modules()) == pools
    assert model(torch.randn(2, 3, side, side)).shape == (2, 10)


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 29, 31), (1, 17, 40), (2, 16, 16)])
def test_unet_decoder_output_has_the_input_size(shape: tuple[int, int, int]) -> None:
    model = create_model("unet", shape, 3, width=0.125)
    decoded = model.decode(torch.randn(2, *shape))
    assert decoded.shape == (2, 8, *shape[1:])  # 64 · 0.125 channels at full resolution


def test_unet_too_small_for_its_depth_says_what_fits() -> None:
    with pytest.raises(SpecError) as e:
        create_model("unet", (1, 8, 8), 10)
    message = str(e.value)
    assert "'unet'" in message and "1×8×8" in message and "depth 4" in message and "at least 16" in message
    assert create_model("unet", (1, 8, 8), 10, depth=3, width=0.125)(torch.randn(2, 1, 8, 8)).shape == (2, 10)
    with pytest.raises(SpecError, match="depth must be at least 1"):
        create_model("unet", (1, 8, 8), 10, depth=0)


# ------------------------------------------------------------------------------------------------------------
# What the parts do.


def test_vgg_features_are_the_globally_averaged_last_stage() -> None:
    model = create_model("vgg11", (1, 32, 32), 10, width=0.125, fc=(16,)).eval()
    x = torch.randn(3, 1, 32, 32)
    trunk = model.features[:-2]  # everything before global pooling and flattening
    with torch.no_grad():
        expected = trunk(x).mean(dim=(2, 3))
        torch.testing.assert_close(model.forward_features(x), expected)
    assert model.feature_dim == 64  # 512 · 0.125; the hidden fc layer belongs to the head
    assert [m.out_features for m in model.head.modules() if isinstance(m, nn.Linear)] == [2, 10]  # 16 · 0.125


def test_vgg_batch_norm_and_dropout() -> None:
    model = create_model("vgg13", (1, 28, 28), 10, width=0.125, batch_norm=True, dropout=0.5)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 10 and all(c.bias is None for c in convs)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 10
    assert [m.p for m in model.head.modules() if isinstance(m, nn.Dropout)] == [0.5]
    assert all(not isinstance(m, nn.Dropout) for m in model.features.modules())  # features stay deterministic


@pytest.mark.parametrize(("name", "blocks"), [("resnet18", 8), ("resnet34", 16)])
def test_resnet_blocks_and_projections(name: str, blocks: int) -> None:
    model = create_model(name, (3, 32, 32), 10, width=0.125)
    assert sum(isinstance(m, BasicBlock) for m in model.modules()) == blocks
    # A 1×1 projection only where a stage starts by halving the map and doubling the channels.
    projections = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1)]
    assert [p.stride for p in projections] == [(2, 2)] * 3


def test_a_block_whose_branch_is_silenced_passes_its_input_through() -> None:
    block = BasicBlock(4, 4, stride=1).eval()
    nn.init.zeros_(block.bn2.weight)
    nn.init.zeros_(block.bn2.bias)
    x = torch.rand(2, 4, 5, 5)  # non-negative, as the output of the ReLU before a block
    torch.testing.assert_close(block(x), x)


def test_resnet9_residuals_add_their_input() -> None:
    model = create_model("resnet9", (3, 32, 32), 10, width=0.125).eval()
    res = model.features.res1
    x = torch.randn(2, 16, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(res(x), x + res.branch(x))
    assert isinstance(model.features.global_pool, nn.AdaptiveMaxPool2d) and model.feature_dim == 64


def test_unet_segmentation_head_gives_per_pixel_maps_and_leaves_the_classifier_alone() -> None:
    plain = create_model("unet", (1, 28, 28), 10, width=0.125)
    torch.manual_seed(0)
    with_maps = create_model("unet", (1, 28, 28), 10, width=0.125, segmentation_output=3)
    torch.manual_seed(0)
    again = create_model("unet", (1, 28, 28), 10, width=0.125, segmentation_output=3)
    x = torch.randn(2, 1, 28, 28)
    assert with_maps.segment(x).shape == (2, 3, 28, 28)
    assert with_maps(x).shape == (2, 10)
    torch.testing.assert_close(with_maps(x), again(x))
    assert n_params(with_maps) - n_params(plain) == 8 * 3 + 3  # the 1×1 conv from 8 channels
    with pytest.raises(RuntimeError, match="segmentation_output"):
        plain.segment(x)


def test_unet_skips_carry_the_encoder_maps() -> None:
    model = create_model("unet", (1, 16, 16), 2, depth=2, width=0.125).eval()
    x = torch.randn(1, 1, 16, 16)
    with torch.no_grad():
        before = model.decode(x)
        # The bottom level's output reaches the decoder only through the upsampling: silence it, and the
        # decoder still sees the full-resolution encoder maps through the skips.
        nn.init.zeros_(model.upsample[0].weight)
        nn.init.zeros_(model.upsample[0].bias)
        after = model.decode(x)
    assert not torch.equal(before, after)
    # Biases start at zero, so without the skips a silenced upsampling would leave an all-zero map.
    assert after.abs().sum() > 0


@pytest.mark.parametrize(("option", "value", "message"), [
    ("width", 0.0, "width must be a positive multiplier"),
    ("layers", (1, 1), "one entry per stage"),
    ("layers", (1, 0, 1, 1, 1), "positive"),
])
def test_bad_architecture_options(option: str, value: object, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        create_model("vgg11", (1, 28, 28), 10, **{option: value})
