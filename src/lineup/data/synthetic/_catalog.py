"""The named synthetic datasets: their options (``[data.options]`` of a study), and how a bundle is drawn.

Every dataset draws three independent samples from its distribution with the study's ``split_seed``: the
training split (``n_train``), the validation split (``n_val``) and a fresh test split (``n_test``), each from its
own seed stream, so that changing one size changes no example of another split and a smaller training split is a
prefix of a larger one. Distortions whose effect on the Bayes risk is known are options here, applied in this
order: ``classes`` (of ``[data]``), ``priors``, ``mean_scale``, ``input_noise``, ``label_noise``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from lineup._registry import did_you_mean
from lineup._schema import opt, parse_section
from lineup.data._types import DataBundle, Normalization, Split
from lineup.data.synthetic._distribution import LabelNoise
from lineup.data.synthetic.contours import MAX_DEGREE, PolynomialContours
from lineup.data.synthetic.images import NOISE_PROFILES, SHAPES, shape_templates
from lineup.data.synthetic.mixtures import GaussianMixture, moons, rings, spirals, two_gaussians, xor_blobs
from lineup.errors import SpecError, UnknownNameError

#: Bumped when the same options would draw different data, so stored results are not reused by mistake.
FORMAT = 1
_TRAIN, _VAL, _TEST = 0, 1, 2  # seed streams of the three splits
_KEY = "data.options"


# ---------------------------------------------------------------------- options


@dataclass(frozen=True, kw_only=True)
class SampleOptions:
    n_train: int = opt(1000, "training examples", min=1)
    n_val: int | None = opt(
        None, "validation examples (default: val_fraction of training + validation, as for data from files)", min=1
    )
    n_test: int = opt(50_000, "test examples: a large, fresh sample independent of the training data", min=1)
    train_seed: int | None = opt(
        None, "seed of the training and validation samples (default: [data] split_seed, which also draws the test "
              "sample): another value draws them independently of another setting's, on the same test sample", min=0)
    train_on_test: bool = opt(
        False, "train on the test sample itself: the training split is the test split, so the test risk is a "
               "training risk (the reference of [decomposition] reference = \"test\")")


@dataclass(frozen=True, kw_only=True)
class KnownOptions(SampleOptions):
    priors: list[float] | None = opt(None, "class probabilities (class imbalance); default equal", gt=0.0)
    mean_scale: float = opt(1.0, "every class mean is multiplied by this: below 1 the classes overlap more", min=0.0)
    input_noise: float = opt(
        0.0, "standard deviation of Gaussian noise added to every input value (covariances + noise^2 I)", min=0.0
    )
    label_noise: float = opt(
        0.0, "probability that a label is replaced by one of the other K-1 classes, at most (K-1)/K", min=0.0
    )


@dataclass(frozen=True, kw_only=True)
class TwoGaussianOptions(KnownOptions):
    separation: float = opt(2.0, "Mahalanobis distance between the two means (R* = Phi(-separation/2))", min=0.0)
    covariance: list[list[float]] | None = opt(None, "the shared 2x2 covariance; default the identity")


@dataclass(frozen=True, kw_only=True)
class XorOptions(KnownOptions):
    separation: float = opt(3.0, "distance between neighbouring blobs of different classes", min=0.0)
    spread: float = opt(1.0, "standard deviation of every blob", gt=0.0)
    weights: list[float] = opt([0.5, 0.5], "weights of the two blobs within each class", gt=0.0)


@dataclass(frozen=True, kw_only=True)
class RingOptions(KnownOptions):
    num_classes: int = opt(2, "number of classes: a centre blob and num_classes - 1 rings", min=2)
    spacing: float = opt(2.0, "difference of radius between consecutive rings", gt=0.0)
    blobs: int = opt(8, "blobs on the first ring (ring k has k times as many)", min=1)
    spread: float = opt(0.5, "standard deviation of every blob", gt=0.0)


@dataclass(frozen=True, kw_only=True)
class MoonOptions(KnownOptions):
    blobs: int = opt(8, "blobs per moon", min=2)
    spread: float = opt(0.2, "standard deviation of every blob", gt=0.0)


@dataclass(frozen=True, kw_only=True)
class SpiralOptions(KnownOptions):
    num_classes: int = opt(3, "number of spiral arms, one per class", min=2)
    blobs: int = opt(10, "blobs per arm", min=1)
    turns: float = opt(0.75, "turns of each arm", min=0.0)
    radius: float = opt(4.0, "radius of the outermost blobs", gt=0.0)
    spread: float = opt(0.3, "standard deviation of every blob", gt=0.0)


@dataclass(frozen=True, kw_only=True)
class ComponentOptions:
    label: int = opt(..., "class of this component, 0..K-1", min=0)
    mean: list[float] = opt(..., "mean vector; every component has the same length")
    cov: list[list[float]] | None = opt(None, "covariance matrix (give cov or std; default the identity)")
    std: float | None = opt(None, "standard deviation of an isotropic covariance std^2 I", gt=0.0)
    weight: float = opt(1.0, "weight within its class (normalised per class)", gt=0.0)


@dataclass(frozen=True, kw_only=True)
class MixtureOptions(KnownOptions):
    components: list[dict[str, Any]] = opt(
        ..., "the Gaussian components, each a table with label, mean and optionally cov or std, and weight"
    )
    class_names: list[str] | None = opt(None, "one name per class; default 0..K-1")


@dataclass(frozen=True, kw_only=True)
class ShapeOptions(KnownOptions):
    n_test: int = opt(10_000, "test examples: a large, fresh sample independent of the training data", min=1)
    shapes: list[str] = opt(["square", "disk", "cross", "diamond"], f"one class per shape, of: {', '.join(SHAPES)}")
    size: int = opt(16, "images are 1 x size x size", min=4, max=64)
    noise: float | list[float] = opt(
        1.5, "pixel noise standard deviation (templates are 0/1): one value, or one per class (quadratic rule)",
        gt=0.0,
    )
    noise_profile: str = opt("isotropic", "how the noise varies over the image", choices=tuple(NOISE_PROFILES))


@dataclass(frozen=True, kw_only=True)
class ContourOptions(SampleOptions):
    n_train: int = opt(5000, "training examples", min=1)
    n_test: int = opt(5000, "test examples: a fresh sample independent of the training data", min=1)
    degrees: list[int] = opt([1, 2, 3, 4, 5], f"polynomial degrees, one class each, in 1..{MAX_DEGREE}", min=1,
                             max=MAX_DEGREE)
    size: int = opt(40, "images are 1 x size x size", min=4, max=256)
    level_spacing: float = opt(0.5, "distance between drawn levels, in standard deviations of f", gt=0.0)


# ---------------------------------------------------------------------- builders


def _mixture_from_tables(o: MixtureOptions) -> GaussianMixture:
    comps = [parse_section(ComponentOptions, c, key=f"{_KEY}.components[{i}]") for i, c in enumerate(o.components)]
    if not comps:
        raise SpecError("give at least one component per class", key=f"{_KEY}.components")
    dim = len(comps[0].mean)
    covs = []
    for i, c in enumerate(comps):
        key = f"{_KEY}.components[{i}]"
        if len(c.mean) != dim or dim == 0:
            raise SpecError(f"every mean needs the same, positive length ({dim}), got {len(c.mean)}", key=key)
        if c.cov is not None and c.std is not None:
            raise SpecError("give cov or std, not both", key=key)
        cov = np.asarray(c.cov, dtype=np.float64) if c.cov is not None else (c.std or 1.0) ** 2 * np.eye(dim)
        if cov.shape != (dim, dim):
            raise SpecError(f"cov must be {dim}x{dim}, got shape {cov.shape}", key=f"{key}.cov")
        covs.append(cov)
    labels = [c.label for c in comps]
    k = max(labels) + 1
    missing = sorted(set(range(k)) - set(labels))
    if missing:
        raise SpecError(f"classes {missing} have no component; labels must cover 0..{k - 1}", key=f"{_KEY}.components")
    return GaussianMixture(np.full(k, 1.0 / k), labels, [c.weight for c in comps], [c.mean for c in comps],
                           np.stack(covs), class_names=o.class_names)


@dataclass(frozen=True)
class SyntheticDataset:
    """A named synthetic dataset: its one-line summary, its options and the distribution they define."""

    name: str
    summary: str
    options: type
    build: Callable[[Any], GaussianMixture | PolynomialContours]


DATASETS: dict[str, SyntheticDataset] = {}


def _register(name: str, summary: str, options: type, build: Callable[[Any], Any]) -> None:
    if name in DATASETS:
        raise ValueError(f"synthetic dataset {name!r} is already registered")
    DATASETS[name] = SyntheticDataset(name, summary, options, build)


_register("gaussian-2", "two Gaussians with a shared covariance (linear Bayes boundary, closed-form R*)",
          TwoGaussianOptions, lambda o: two_gaussians(o.separation, o.covariance))
_register("gaussian-xor", "XOR: four Gaussian blobs, opposite corners in the same class", XorOptions,
          lambda o: xor_blobs(o.separation, o.spread, o.weights))
_register("gaussian-rings", "concentric classes: a centre blob and rings of Gaussian blobs", RingOptions,
          lambda o: rings(o.num_classes, o.spacing, o.blobs, o.spread))
_register("gaussian-moons", "two interleaving half circles of Gaussian blobs", MoonOptions,
          lambda o: moons(o.blobs, o.spread))
_register("gaussian-spirals", "K interleaved spiral arms of Gaussian blobs", SpiralOptions,
          lambda o: spirals(o.num_classes, o.blobs, o.turns, o.radius, o.spread))
_register("gaussian-mixture", "classes that are Gaussian mixtures given component by component", MixtureOptions,
          _mixture_from_tables)
_register("gaussian-shapes", "shape templates plus Gaussian pixel noise (known linear or quadratic Bayes rule)",
          ShapeOptions, lambda o: shape_templates(o.shapes, size=o.size, noise=o.noise, noise_profile=o.noise_profile))
_register("polynomial-contours", "contour lines of random polynomials, labelled by degree (no known R*)",
          ContourOptions, lambda o: PolynomialContours(tuple(o.degrees), o.size, o.level_spacing))


def list_datasets() -> list[str]:
    """The names of the synthetic datasets, sorted."""
    return sorted(DATASETS)


def is_synthetic(name: str) -> bool:
    """Whether ``name`` is a synthetic dataset (drawn by ``load_synthetic`` rather than read from files)."""
    return name in DATASETS


def has_known_distribution(name: str) -> bool:
    """Whether dataset ``name`` is drawn from a distribution whose posterior and Bayes risk are known (the
    synthetic datasets whose options include the distortions with a known effect on the risk)."""
    return name in DATASETS and issubclass(DATASETS[name].options, KnownOptions)


def dataset_options(name: str) -> dict[str, str]:
    """Option name -> help text with its default, for ``[data.options]`` of synthetic dataset ``name``."""
    fields = dataclasses.fields(_get(name).options)
    return {f.name: f"{f.metadata['help']} (default: {_default(f)})" for f in fields}


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else "required"


def _get(name: str) -> SyntheticDataset:
    if name not in DATASETS:
        names = list_datasets()
        raise UnknownNameError(f"unknown synthetic dataset {name!r}.{did_you_mean(name, names)} Known: "
                               f"{', '.join(names)}.")
    return DATASETS[name]


# ---------------------------------------------------------------------- drawing a bundle


def _distort(dist: Any, o: Any, classes: Sequence[int] | None) -> tuple[Any, list[str]]:
    """Apply ``classes`` and the distortion options in their documented order; returns notes saying what was."""
    notes = []
    if classes is not None:
        names = list(dist.class_names)
        if isinstance(dist, PolynomialContours):
            bad = [c for c in classes if not 0 <= c < dist.num_classes]
            if bad or len(set(classes)) != len(classes) or not classes:
                raise SpecError(f"classes must be distinct labels in 0..{dist.num_classes - 1}, got {list(classes)}",
                                key="data.classes")
            dist = dataclasses.replace(dist, degrees=tuple(dist.degrees[c] for c in classes))
        else:
            dist = _checked(lambda: dist.select_classes(classes), "data.classes")
        notes.append(f"classes: {len(classes)} of {len(names)} kept ({', '.join(dist.class_names)}), "
                     f"relabelled 0..{len(classes) - 1} in that order")
    if not isinstance(o, KnownOptions):
        return dist, notes
    if o.priors is not None:
        if len(o.priors) != dist.num_classes or abs(sum(o.priors) - 1.0) > 1e-6:
            raise SpecError(f"priors must be {dist.num_classes} probabilities that sum to 1, got {o.priors}",
                            key=f"{_KEY}.priors")
        dist = dist.with_priors(np.asarray(o.priors) / sum(o.priors))
        notes.append(f"class priors: {', '.join(f'{p:g}' for p in o.priors)}")
    if o.mean_scale != 1.0:
        dist = dist.with_mean_scale(o.mean_scale)
        notes.append(f"overlap: every class mean scaled by {o.mean_scale:g}")
    if o.input_noise > 0:
        dist = dist.with_input_noise(o.input_noise)
        notes.append(f"input noise: N(0, {o.input_noise:g}^2) added to every input value")
    if o.label_noise > 0:
        k = dist.num_classes
        if o.label_noise > (k - 1) / k:
            raise SpecError(f"must be at most (K-1)/K = {(k - 1) / k:g} for {k} classes, got {o.label_noise}",
                            key=f"{_KEY}.label_noise")
        dist = LabelNoise(dist, o.label_noise)
        notes.append(f"symmetric label noise: each label replaced by another class with probability "
                     f"{o.label_noise:g}, in every split")
    return dist, notes


def _checked(make: Callable[[], Any], key: str) -> Any:
    """``make()``, with the ValueError of a parameter that does not fit turned into a SpecError at ``key``."""
    try:
        return make()
    except ValueError as e:
        raise SpecError(str(e), key=key) from None


def _split(x: np.ndarray, y: np.ndarray) -> Split:
    x_t = torch.from_numpy(np.ascontiguousarray(x if x.dtype == np.uint8 else x.astype(np.float32)))
    return Split(x=x_t, y=torch.from_numpy(y.astype(np.int64)), index=torch.arange(len(y), dtype=torch.int64))


def load_synthetic(
    dataset: str,
    *,
    options: Mapping[str, Any] | None = None,
    classes: Sequence[int] | None = None,
    train_size: int | None = None,
    val_fraction: float = 0.1,
    test_size: int | None = None,
    split_seed: int = 0,
    distortions: Mapping[str, Any] | None = None,
) -> DataBundle:
    """Draw the splits of synthetic dataset ``dataset``; the arguments are those of ``lineup.data.load``.

    Args:
        dataset: a name from ``list_datasets()``.
        options: the dataset's options (``dataset_options(dataset)``).
        classes: keep these classes of the distribution (it is conditioned on them), relabelled ``0..k-1``.
        train_size: use only the first ``train_size`` of the ``n_train`` training examples.
        val_fraction: sets the default ``n_val``: ``round(n * val_fraction / (1 - val_fraction))``, ``n`` the
            number of training examples (``n_test`` under ``train_on_test``).
        test_size: use only the first ``test_size`` of the ``n_test`` test examples.
        split_seed: seed of the three samples.
        distortions: not supported: a distortion of a known distribution must change the distribution too, so
            the synthetic datasets take theirs as options.

    Returns:
        float32 inputs ``(N, C, H, W)`` with an identity normalisation and the distribution in
        ``distribution`` (the polynomial contours: uint8 images and no distribution); ``index`` is each
        example's position in its sample.
    """
    entry = _get(dataset)
    if distortions:
        raise SpecError(f"{dataset} takes its distortions as [data.options] (priors, mean_scale, input_noise, "
                        f"label_noise), so that its Bayes risk follows them; remove [data.distortions]",
                        key="data.distortions")
    o = parse_section(entry.options, dict(options or {}), key=_KEY)
    base = _checked(lambda: entry.build(o), _KEY)
    classes = None if classes is None else [int(c) for c in classes]
    dist, notes = _distort(base, o, classes)

    if not 0.0 <= val_fraction < 1.0:
        raise SpecError(f"val_fraction must be in [0, 1), got {val_fraction}", key="data.val_fraction")
    if o.train_on_test and train_size is not None:
        raise SpecError("train_on_test trains on the whole test sample: remove train_size (or use test_size)",
                        key="data.train_size")
    n_train, n_test = o.n_train, o.n_test
    for option, size, available in (("train_size", train_size, n_train), ("test_size", test_size, n_test)):
        if size is not None and not 1 <= size <= available:
            raise SpecError(f"must be in 1..{available:,} (n_{option[:-5]} of [data.options]), got {size:,}",
                            key=f"data.{option}")
    n_train, n_test = train_size or n_train, test_size or n_test
    n_fit = n_test if o.train_on_test else n_train  # the examples actually trained on
    n_val = o.n_val if o.n_val is not None else max(1, round(n_fit * val_fraction / (1.0 - val_fraction)))
    # The test sample always comes from split_seed; train_seed moves only the samples a model learns from.
    train_seed = split_seed if o.train_seed is None else o.train_seed
    seeds = {"train": train_seed, "val": train_seed, "test": split_seed}
    splits = {name: dist.sample(n, seed=(seeds[name], stream))
              for name, n, stream in (("train", n_train, _TRAIN), ("val", n_val, _VAL), ("test", n_test, _TEST))
              if not (name == "train" and o.train_on_test)}
    notes.insert(0, f"synthetic: {entry.summary}")
    if o.train_on_test:
        splits = {"train": splits["test"], **splits}  # train, val, test: the order the version hashes them in
        notes.append(f"drawn with split seed {split_seed}: {n_test:,} test examples, which are also the training "
                     f"split (train_on_test), and {n_val:,} validation examples (seed {train_seed})")
    else:
        seeds_note = f"split seed {split_seed}" if train_seed == split_seed else \
            f"seed {train_seed} (training and validation) and split seed {split_seed} (test)"
        notes.append(f"drawn with {seeds_note}: {n_train:,} training, {n_val:,} validation and {n_test:,} "
                     "test examples, three independent samples")

    known = not isinstance(dist, PolynomialContours)
    if known:
        channels = dist.input_shape[0]
        normalization = Normalization(mean=(0.0,) * channels, std=(1.0,) * channels, scale=1.0)
        notes.append(f"Bayes risk R* = {dist.bayes_risk()}")
    else:
        train_x = splits["train"][0] / 255.0
        normalization = Normalization(mean=(round(float(train_x.mean()), 4),),
                                      std=(round(max(float(train_x.std()), 1e-4), 4),))
        notes.append("the Bayes risk of this task is not known")

    resolved = dataclasses.asdict(o)
    for key, default in (("train_seed", None), ("train_on_test", False)):
        if resolved[key] == default:  # left out at their defaults, so data drawn before they existed keeps its version
            del resolved[key]
    derivation = json.dumps({"format": FORMAT, "dataset": dataset, "options": resolved, "classes": classes,
                             "n_train": n_train, "n_val": n_val, "n_test": n_test, "split_seed": split_seed},
                            sort_keys=True).encode()
    h = hashlib.sha256(derivation)
    for x, y in splits.values():
        h.update(np.ascontiguousarray(x).tobytes())
        h.update(y.astype("<i8").tobytes())
    return DataBundle(
        name=dataset,
        train=_split(*splits["train"]),
        val=_split(*splits["val"]),
        test=_split(*splits["test"]),
        classes=list(dist.class_names),
        input_shape=tuple(int(d) for d in dist.input_shape),  # type: ignore[arg-type]
        normalization=normalization,
        version=f"synthetic-{FORMAT}+{h.hexdigest()[:12]}",
        notes=notes,
        distribution=dist if known else None,
    )
