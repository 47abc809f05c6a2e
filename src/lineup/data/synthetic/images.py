"""Images whose Bayes rule is known: class templates of simple shapes plus Gaussian pixel noise.

Class ``k`` draws ``x = t_k + e`` with ``t_k`` a binary template (a square, a disk, a cross ...) and
``e ~ N(0, diag(s_k^2))``. That is a ``GaussianMixture`` with one diagonal-covariance component per class, so
the posterior, the Bayes classifier and the Bayes risk come from there: with one noise level for all classes the
Bayes rule is linear in the pixels (a template matcher), with a level per class it is quadratic. With shared
noise the risk is exact: two classes have the closed form ``Phi(-delta / 2)`` (``delta`` the noise-whitened
distance between the templates, unequal priors included), and three classes reduce to a problem on the plane
that is integrated numerically; otherwise it is a Monte-Carlo estimate with its standard error.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from lineup.data.synthetic.mixtures import GaussianMixture


def _square(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.maximum(abs(u), abs(v)) <= 0.6


def _disk(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return u**2 + v**2 <= 0.65**2


def _ring(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    r2 = u**2 + v**2
    return (r2 >= 0.4**2) & (r2 <= 0.75**2)


def _cross(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return ((abs(u) <= 0.2) & (abs(v) <= 0.75)) | ((abs(v) <= 0.2) & (abs(u) <= 0.75))


def _diamond(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return abs(u) + abs(v) <= 0.75


def _triangle(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    # Apex at the top (image rows grow downwards, so the apex is at v = -0.65), base at v = 0.65.
    return (v <= 0.65) & (abs(u) <= (v + 0.65) * 0.6)


def _x(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return (abs(abs(u) - abs(v)) <= 0.25) & (np.maximum(abs(u), abs(v)) <= 0.7)


def _hbar(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return (abs(v) <= 0.2) & (abs(u) <= 0.8)


def _vbar(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return (abs(u) <= 0.2) & (abs(v) <= 0.8)


#: Shape name -> indicator on the square ``[-1, 1]^2`` (``u`` to the right, ``v`` downwards).
SHAPES: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "square": _square,
    "disk": _disk,
    "ring": _ring,
    "cross": _cross,
    "diamond": _diamond,
    "triangle": _triangle,
    "x": _x,
    "hbar": _hbar,
    "vbar": _vbar,
}

#: Noise profiles: the standard deviation of each pixel relative to ``noise``, as a function of its radius
#: ``r`` from the centre (``r = sqrt(2)`` in the corners).
NOISE_PROFILES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "isotropic": lambda r: np.ones_like(r),
    "radial": lambda r: 0.5 + r / np.sqrt(2.0),  # from 0.5 at the centre to 1.5 in the corners
}


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    c = (np.arange(size) + 0.5) / size * 2.0 - 1.0  # pixel centres on [-1, 1]
    v, u = np.meshgrid(c, c, indexing="ij")  # (size, size): row index is v
    return u, v


def shape_template(name: str, size: int) -> np.ndarray:
    """The binary template ``(size, size)`` float64 of shape ``name`` (1 inside, 0 outside), sampled at pixel
    centres.

    Example:
        >>> shape_template("square", 5).astype(int).tolist()[0]  # pixel centres at -0.8, -0.4, 0, 0.4, 0.8
        [0, 0, 0, 0, 0]
        >>> int(shape_template("square", 5).sum())  # the 3x3 centres with |u|, |v| <= 0.6
        9
    """
    if name not in SHAPES:
        raise ValueError(f"unknown shape {name!r}; shapes: {', '.join(SHAPES)}")
    u, v = _grid(size)
    return SHAPES[name](u, v).astype(np.float64)


def shape_templates(
    shapes: Sequence[str] = ("square", "disk", "cross", "diamond"),
    *,
    size: int = 16,
    noise: float | Sequence[float] = 1.5,
    noise_profile: str = "isotropic",
    priors: Sequence[float] | None = None,
) -> GaussianMixture:
    """One class per shape: the shape's template plus independent Gaussian noise on every pixel.

    Args:
        shapes: names from ``SHAPES``, one class each, in label order.
        size: images are ``1 x size x size``.
        noise: the noise standard deviation (templates are 0/1), one for all classes or one per class (which
            makes the Bayes rule quadratic).
        noise_profile: how the standard deviation varies over the image (``NOISE_PROFILES``): ``"isotropic"``
            or ``"radial"`` (a diagonal covariance).
        priors: class probabilities; default equal.

    Returns:
        The distribution, with inputs of shape ``(1, size, size)`` and the shape names as class names.
    """
    k = len(shapes)
    if k < 2 or len(set(shapes)) != k:
        raise ValueError(f"need at least two distinct shapes, got {list(shapes)}")
    if noise_profile not in NOISE_PROFILES:
        raise ValueError(f"unknown noise profile {noise_profile!r}; profiles: {', '.join(NOISE_PROFILES)}")
    sigma = np.atleast_1d(np.asarray(noise, dtype=np.float64))
    if sigma.shape not in ((1,), (k,)) or (sigma <= 0).any():
        raise ValueError(f"noise must be one positive number or one per class ({k}), got {sigma.tolist()}")
    sigma = np.broadcast_to(sigma, (k,))
    u, v = _grid(size)
    profile = NOISE_PROFILES[noise_profile](np.sqrt(u**2 + v**2)).ravel()  # (D,)
    templates = np.stack([shape_template(s, size).ravel() for s in shapes])  # (K, D)
    variances = (sigma[:, None] * profile[None]) ** 2  # (K, D)
    return GaussianMixture(
        np.full(k, 1.0 / k) if priors is None else priors,
        np.arange(k),
        np.ones(k),
        templates,
        variances,
        input_shape=(1, size, size),
        class_names=list(shapes),
    )
