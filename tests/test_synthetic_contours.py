"""Polynomial contour images: the monomial basis, the rendering of level lines on hand-worked functions, and
seeded, deterministic sampling of the declared shape."""

from __future__ import annotations

import numpy as np
import pytest

from lineup.data.synthetic import PolynomialContours, contours, render_contours
from lineup.data.synthetic.contours import monomials


def test_monomials_in_order_of_total_degree() -> None:
    values, degree = monomials(2, max_degree=2)  # pixel centres -0.5, 0.5; u along columns, v down rows
    assert degree.tolist() == [0, 1, 1, 2, 2, 2]  # 1, u, v, u^2, u v, v^2
    u = np.array([-0.5, 0.5, -0.5, 0.5])  # row-major (row = v, column = u)
    v = np.array([-0.5, -0.5, 0.5, 0.5])
    np.testing.assert_allclose(values, [np.ones(4), u, v, u**2, u * v, v**2])
    assert monomials(40)[0].shape == (21, 1600)  # (5 + 1)(5 + 2) / 2 monomials of degree <= 5


def test_level_lines_of_hand_worked_functions() -> None:
    # f = column index 0..5: standardised (c - 2.5) / 1.7078 = -1.46, -0.88, -0.29, 0.29, 0.88, 1.46, so with
    # spacing 1 the levels -1, 0, 1 fall between columns 0|1, 2|3 and 4|5: pixels 0, 2 and 4 are drawn.
    ramp = np.tile(np.arange(6.0), (1, 3, 1))
    img = render_contours(ramp, 1.0)
    assert img.dtype == np.uint8
    assert img[0].tolist() == [[255, 0, 255, 0, 255, 0]] * 3
    # Scaling or shifting f changes nothing: f is standardised first.
    np.testing.assert_array_equal(render_contours(7 * ramp - 3, 1.0), img)
    # A radially symmetric f draws a picture symmetric under transposition (right and lower neighbours swap).
    c = np.arange(40) - 19.5
    bowl = (c[None, :] ** 2 + c[:, None] ** 2)[None]
    circles = render_contours(bowl, 0.5)[0]
    np.testing.assert_array_equal(circles, circles.T)
    assert circles[20, 20] == 0 and circles.any()


def test_samples_are_seeded_uint8_images_of_the_declared_shape() -> None:
    pc = PolynomialContours()
    x, y = pc.sample(600, seed=0)
    assert x.shape == (600, 1, 40, 40) and x.dtype == np.uint8 and y.dtype == np.int64
    assert set(np.unique(x)) == {0, 255}
    assert pc.class_names == ["degree 1", "degree 2", "degree 3", "degree 4", "degree 5"]
    counts = np.bincount(y, minlength=5)
    assert counts.sum() == 600 and counts.min() > 80  # 120 expected per degree, sd 9.8
    x2, y2 = pc.sample(600, seed=0)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    x3, _ = pc.sample(50, seed=0)
    np.testing.assert_array_equal(x3, x[:50])  # a smaller sample is the start of a larger one
    assert not np.array_equal(pc.sample(50, seed=1)[0], x3)
    small = PolynomialContours(degrees=(2, 4), size=16)
    xs, ys = small.sample(20, seed=0)
    assert xs.shape == (20, 1, 16, 16) and set(ys.tolist()) <= {0, 1}


def test_each_label_is_the_exact_degree_of_the_drawn_polynomial(monkeypatch: pytest.MonkeyPatch) -> None:
    # Capture the functions the sampler renders, then fit them by least squares on the monomials: a degree-d
    # polynomial is fitted exactly by the monomials of degree <= d and not by those of degree <= d - 1.
    seen: list[np.ndarray] = []

    def capture(f: np.ndarray, level_spacing: float) -> np.ndarray:
        seen.append(f.copy())
        return render_contours(f, level_spacing)

    monkeypatch.setattr(contours, "render_contours", capture)
    _, y = PolynomialContours(size=12).sample(40, seed=4)
    f = np.concatenate(seen).reshape(40, -1)  # (40, 144)
    values, term_degree = monomials(12)
    for fi, label in zip(f, y, strict=True):
        d = label + 1  # degrees (1, ..., 5) in label order

        def residual(max_degree: int, fi: np.ndarray = fi) -> float:
            basis = values[term_degree <= max_degree].T  # (144, T)
            coef = np.linalg.lstsq(basis, fi, rcond=None)[0]
            return float(np.abs(basis @ coef - fi).max())

        assert residual(d) < 1e-9
        assert residual(d - 1) > 1e-3


def test_bad_parameters_fail_early() -> None:
    with pytest.raises(ValueError, match="degrees must be in 1..5"):
        PolynomialContours(degrees=(1, 6))
    with pytest.raises(ValueError, match="distinct"):
        PolynomialContours(degrees=(2, 2))
