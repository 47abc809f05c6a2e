"""Triplet loss with batch-hard and random mining, worked by hand; the contrastive encoder it trains."""

from __future__ import annotations

import math

import pytest
import torch

from lineup import data
from lineup.models import create_model
from lineup.train.losses import mine_triplets, pairwise_distances, triplet_loss

# Four points of the plane, two classes:
#   p0 = (0, 0) class 0,  p1 = (0, 2) class 0,  p2 = (1, 0) class 1,  p3 = (4, 0) class 1.
# Distances: d01 = 2, d02 = 1, d03 = 4, d12 = sqrt(5), d13 = sqrt(20), d23 = 3.
POINTS = torch.tensor([[0.0, 0.0], [0.0, 2.0], [1.0, 0.0], [4.0, 0.0]])
LABELS = torch.tensor([0, 0, 1, 1])
SQRT5, SQRT20 = math.sqrt(5), math.sqrt(20)


pytestmark = pytest.mark.usefixtures("seeded_one_thread")  # seed 0, one torch thread (conftest.py)


def test_pairwise_distances() -> None:
    d = pairwise_distances(POINTS)
    expected = torch.tensor([
        [0.0, 2.0, 1.0, 4.0],
        [2.0, 0.0, SQRT5, SQRT20],
        [1.0, SQRT5, 0.0, 3.0],
        [4.0, SQRT20, 3.0, 0.0],
    ])
    torch.testing.assert_close(d, expected, atol=1e-6, rtol=0)  # the diagonal is sqrt(1e-12) = 1e-6


def test_batch_hard_triplet_loss_by_hand() -> None:
    # Margin 1; each anchor's only positive, and its closest negative:
    #   anchor 0: d(0, 1) = 2, closest of d(0, 2) = 1 and d(0, 3) = 4 is 1:    max(0, 2 - 1 + 1)       = 2
    #   anchor 1: d(1, 0) = 2, closest of sqrt(5) and sqrt(20) is sqrt(5):      max(0, 2 - sqrt(5) + 1) = 3 - sqrt(5)
    #   anchor 2: d(2, 3) = 3, closest of d(2, 0) = 1 and sqrt(5) is 1:        max(0, 3 - 1 + 1)       = 3
    #   anchor 3: d(3, 2) = 3, closest of d(3, 0) = 4 and sqrt(20) is 4:       max(0, 3 - 4 + 1)       = 0
    # Mean: (2 + 3 - sqrt(5) + 3 + 0) / 4 = (8 - sqrt(5)) / 4 = 1.4410
    anchors, pos, neg = mine_triplets(pairwise_distances(POINTS), LABELS)
    assert anchors.tolist() == [0, 1, 2, 3] and pos.tolist() == [1, 0, 3, 2] and neg.tolist() == [2, 2, 0, 0]
    loss = triplet_loss(POINTS, LABELS, margin=1.0, mining="batch_hard")
    assert loss.item() == pytest.approx((8 - SQRT5) / 4, abs=1e-6)
    # With margin 0.5 anchor 1's hinge becomes 2.5 - sqrt(5) = 0.264 and anchor 3's stays 0:
    # (1.5 + 2.5 - sqrt(5) + 2.5 + 0) / 4
    assert triplet_loss(POINTS, LABELS, margin=0.5).item() == pytest.approx((6.5 - SQRT5) / 4, abs=1e-6)


def test_batch_hard_takes_the_farthest_positive() -> None:
    # A third class-0 point at (0, -3): anchor 0's positives are at 2 and 3, batch-hard takes 3.
    points = torch.cat([POINTS, torch.tensor([[0.0, -3.0]])])
    labels = torch.cat([LABELS, torch.tensor([0])])
    anchors, pos, _ = mine_triplets(pairwise_distances(points), labels)
    assert pos[anchors.tolist().index(0)].item() == 4


def test_random_mining_picks_valid_triplets_and_averages_all_of_them() -> None:
    # Every anchor has one positive, so random mining only chooses among its two negatives. Hinges (margin 1):
    #   anchor 0: negatives at 1 and 4:             2 and 0                         -> mean 1
    #   anchor 1: negatives at sqrt(5), sqrt(20):   3 - sqrt(5) and 0               -> mean (3 - sqrt(5)) / 2
    #   anchor 2: negatives at 1 and sqrt(5):       3 and 4 - sqrt(5)               -> mean (7 - sqrt(5)) / 2
    #   anchor 3: negatives at 4 and sqrt(20):      0 and 0                         -> mean 0
    # Expected loss: (1 + (3 - sqrt(5)) / 2 + (7 - sqrt(5)) / 2 + 0) / 4 = (6 - sqrt(5)) / 4 = 0.9410
    generator = torch.Generator().manual_seed(0)
    distances = pairwise_distances(POINTS)
    for _ in range(20):
        a, p, n = mine_triplets(distances, LABELS, mining="random", generator=generator)
        assert (LABELS[a] == LABELS[p]).all() and (a != p).all() and (LABELS[a] != LABELS[n]).all()
    losses = torch.stack([
        triplet_loss(POINTS, LABELS, margin=1.0, mining="random", generator=generator) for _ in range(4000)
    ])
    # Each draw averages four independent choices; its standard deviation is about 0.5, so the mean of
    # 4,000 draws has a standard error of about 0.008.
    assert losses.mean().item() == pytest.approx((6 - SQRT5) / 4, abs=0.04)


def test_anchors_without_a_positive_or_a_negative_are_left_out() -> None:
    # A lone class-2 point has no positive: the loss is that of the other four anchors.
    points = torch.cat([POINTS, torch.tensor([[10.0, 10.0]])])
    labels = torch.cat([LABELS, torch.tensor([2])])
    assert triplet_loss(points, labels, margin=1.0).item() == pytest.approx((8 - SQRT5) / 4, abs=1e-6)
    # A batch of one class has no negatives: the loss is 0 and still differentiable.
    e = torch.randn(3, 2, requires_grad=True)
    loss = triplet_loss(e, torch.zeros(3, dtype=torch.long))
    loss.backward()
    assert loss.item() == 0.0 and e.grad is not None


def test_a_gradient_step_on_the_loss_lowers_it() -> None:
    e = POINTS.clone().requires_grad_(True)
    loss = triplet_loss(e, LABELS, margin=1.0)
    loss.backward()
    with torch.no_grad():
        assert triplet_loss(e - 0.05 * e.grad, LABELS, margin=1.0) < loss


# ------------------------------------------------------------------------------------------------------------
# The contrastive encoder


def test_contrastive_encoder_embeds_on_the_unit_sphere() -> None:
    model = create_model("contrastive_encoder", (1, 28, 28), 10, embedding_dim=16, width=0.25).eval()
    x = torch.randn(5, 1, 28, 28)
    z = model.forward_features(x)
    assert z.shape == (5, 16) and model.feature_dim == 16
    torch.testing.assert_close(z.norm(dim=1), torch.ones(5))
    torch.testing.assert_close(model(x), model.head.fc(model.logit_scale * z))
    assert list(model.representation_layers()) == ["conv1", "conv2", "conv3"]


def test_triplet_training_of_the_encoder_separates_digit_classes() -> None:
    """60 batch-hard steps on 8x8 digits: test digits' nearest training digit in the embedding is of their class
    far more often (measured: 76% for the random initial encoder, 97% after), and the loss falls."""
    bundle = data.load("digits", val_fraction=0.0)
    x, y = bundle.train.x.float() / 255, bundle.train.y
    x_test, y_test = bundle.test.x.float() / 255, bundle.test.y
    model = create_model("contrastive_encoder", (1, 8, 8), 10, embedding_dim=16, channels=(16, 32))

    @torch.no_grad()
    def nearest_neighbour_accuracy_and_loss() -> tuple[float, float]:
        model.eval()
        train, test = model.forward_features(x), model.forward_features(x_test)
        nearest = torch.cdist(test, train).argmin(dim=1)
        model.train()
        return (y[nearest] == y_test).float().mean().item(), triplet_loss(test, y_test).item()

    before = nearest_neighbour_accuracy_and_loss()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    order = torch.Generator().manual_seed(0)
    for _ in range(60):
        i = torch.randint(0, len(x), (128,), generator=order)
        loss = triplet_loss(model.forward_features(x[i]), y[i], margin=0.2)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = nearest_neighbour_accuracy_and_loss()
    assert after[0] > 0.9 and after[0] > before[0] + 0.1
    assert after[1] < before[1]
