"""What a catalog entry is: a source that can find, verify and read one dataset's raw arrays."""

from __future__ import annotations

import hashlib
import os
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np


@dataclass(frozen=True)
class RawDataset:
    """A dataset's arrays exactly as its source defines them, before any subset or validation split.

    Attributes:
        name: catalog name.
        train_x: ``(N, C, H, W)`` uint8 training images.
        train_y: ``(N,)`` int64 labels in ``[0, len(classes))``.
        test_x: ``(M, C, H, W)`` uint8 test images.
        test_y: ``(M,)`` int64 labels.
        train_index: ``(N,)`` int64 position of each training example in its source file.
        test_index: ``(M,)`` int64 position of each test example in its source file.
        classes: class names, index = label.
        mean: per-channel mean of ``pixel / 255`` over ``train_x``.
        std: per-channel standard deviation of ``pixel / 255`` over ``train_x``.
        version: content identifier: the name and a digest of the files or arrays.
        notes: facts about the source for the report (where it was read from, what was verified ...).
    """

    name: str
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    train_index: np.ndarray
    test_index: np.ndarray
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    version: str
    notes: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        for split, x, y, index in (
            ("train", self.train_x, self.train_y, self.train_index),
            ("test", self.test_x, self.test_y, self.test_index),
        ):
            if x.dtype != np.uint8 or x.ndim != 4:
                raise ValueError(
                    f"{self.name}: {split}_x must be (N, C, H, W) uint8, got {x.shape} {x.dtype}"
                )
            if y.shape != (len(x),) or index.shape != (len(x),):
                raise ValueError(f"{self.name}: {split} x, y and index disagree on N")
            # The arrays are shared by every load() of this dataset in the process; nobody may edit them.
            for a in (x, y, index):
                a.flags.writeable = False


def in_file_order(name: str, train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray], *,
                  classes: tuple[str, ...], mean: tuple[float, ...], std: tuple[float, ...], version: str,
                  notes: tuple[str, ...]) -> RawDataset:
    """A ``RawDataset`` whose examples are indexed by their position in the source, in reading order."""
    (train_x, train_y), (test_x, test_y) = train, test
    return RawDataset(name, train_x=train_x, train_y=train_y, test_x=test_x, test_y=test_y,
                      train_index=np.arange(len(train_y), dtype=np.int64),
                      test_index=np.arange(len(test_y), dtype=np.int64),
                      classes=classes, mean=mean, std=std, version=version, notes=notes)


class Source(ABC):
    """One named dataset: where its files are, how to verify them and how to read them.

    Subclasses declare their data as class attributes (name, classes, normalisation constants, files and
    checksums), so that a test can replace a declaration with ``monkeypatch.setattr``.

    Args:
        root: an explicit directory to look in first; see ``lineup.data.paths.search_dirs``.
    """

    name: ClassVar[str]
    classes: ClassVar[tuple[str, ...]]
    # Per-channel mean and std of pixel / 255 over the training split; each subclass says where its
    # numbers were measured, and a test recomputes them from the data that is available.
    mean: ClassVar[tuple[float, ...]]
    std: ClassVar[tuple[float, ...]]
    # Whether ``load_raw`` keeps the arrays for the rest of the process, so that the next data setting of a study
    # skips reading them. Worth it where reading is slow (decoding image files: most of a minute for CINIC-10); not
    # where it takes a second and the cache would hold a second copy of the images beside the splits taken from them,
    # all through training (45 MB for Fashion-MNIST, 150 MB for CIFAR-10).
    cache: ClassVar[bool] = True

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else None

    @abstractmethod
    def locate(self) -> Path | None:
        """The file or directory the data would be read from, or ``None`` when it is not on this machine."""

    @abstractmethod
    def check(self) -> list[str]:
        """Verify the data fully; return one line per fact verified. Raises ``DataError`` when it cannot."""

    @abstractmethod
    def fetch(self) -> Path:
        """Make the data present (downloading it if it can be downloaded), verify it, return ``locate()``."""

    @abstractmethod
    def load(self, *, download: bool = True) -> RawDataset:
        """Read and verify the data; ``download=False`` raises ``DataError`` rather than download."""


class DownloadableSource(Source):
    """A source whose files can be missing and downloaded: ``fetch`` and the search-then-download order."""

    @abstractmethod
    def _download(self) -> Path:
        """Download and verify the files; return where they are now."""

    @abstractmethod
    def _missing(self) -> Exception:
        """The error that says which files were looked for where, and how to obtain them."""

    @abstractmethod
    def _read(self, where: Path) -> object:
        """Read and verify the files at ``where``."""

    def _present(self, *, download: bool) -> Path:
        """Where the data is, downloaded first when it is missing and ``download`` allows it."""
        where = self.locate()
        if where is not None:
            return where
        if not download:
            raise self._missing()
        return self._download()

    def fetch(self) -> Path:
        where = self._present(download=True)
        self._read(where)
        return where


def content_version(name: str, parts: Iterable[bytes]) -> str:
    """``"<name>-<16 hex digits>"``: a short identifier that changes whenever any of ``parts`` changes."""
    h = hashlib.sha256()
    for part in parts:
        # Length-prefixed so that moving bytes from one part to the next changes the digest.
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    return f"{name}-{h.hexdigest()[:16]}"
