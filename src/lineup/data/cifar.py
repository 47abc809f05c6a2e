"""The "python version" of CIFAR (Krizhevsky, 2009): pickled batches of 32×32 colour images in one archive.

Each batch file is a Python 2 pickle of a dict with the keys ``b"data"`` (an ``(n, 3072)`` uint8 array, each
row the red, green and blue 32×32 planes in turn, row-major), ``b"labels"`` (n ints), ``b"batch_label"`` and
``b"filenames"``. Unpickling can run arbitrary code, so a batch is unpickled only after its md5 matches the
declared one, and then by an unpickler that can build nothing but the containers, numbers and numpy arrays
those files hold.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from lineup.data._archive import ArchiveSource
from lineup.data._source import RawDataset, content_version, in_file_order
from lineup.errors import DataError

try:  # numpy >= 2 moved the array reconstructor that every pickled ndarray names
    from numpy._core.multiarray import _reconstruct
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]

IMAGE_SHAPE = (3, 32, 32)

# The globals a pickled uint8 ndarray names (the module moved in numpy 2; the files name the old one).
_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class _BatchUnpickler(pickle.Unpickler):
    """An unpickler that builds builtin containers, numbers, bytes and numpy arrays, and nothing else."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"{module}.{name} is not something a CIFAR batch holds; refusing to load it"
            ) from None


def read_batch(data: bytes, *, source: str, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Parse one CIFAR batch file.

    Args:
        data: the file's bytes, already verified against their declared checksum.
        source: where the bytes come from, named in errors.
        count: the number of images the batch must hold.

    Returns:
        ``(x, y)``: ``(count, 3, 32, 32)`` uint8 images and ``(count,)`` int64 labels.

    Raises:
        DataError: the bytes are not a CIFAR batch of ``count`` images.
    """
    try:
        # encoding="bytes": the files were pickled by Python 2, whose str keys arrive as bytes.
        entry = _BatchUnpickler(io.BytesIO(data), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as e:
        raise DataError(f"{source}: not a CIFAR batch ({e})") from None
    if not isinstance(entry, dict) or b"data" not in entry or b"labels" not in entry:
        keys = sorted(entry) if isinstance(entry, dict) else type(entry).__name__
        raise DataError(f"{source}: expected a dict with b'data' and b'labels', got {keys}")
    x, labels = entry[b"data"], entry[b"labels"]
    size = int(np.prod(IMAGE_SHAPE))
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.shape != (count, size):
        got = f"{x.dtype} {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
        raise DataError(f"{source}: b'data' must be uint8 of shape ({count}, {size}), got {got}")
    if not isinstance(labels, list) or len(labels) != count or not all(isinstance(v, int) for v in labels):
        raise DataError(f"{source}: b'labels' must be a list of {count} ints")
    return x.reshape(count, *IMAGE_SHAPE), np.asarray(labels, dtype=np.int64)  # (n, 3072) -> (n, 3, 32, 32)


@dataclass(frozen=True)
class Member:
    """One batch file of a CIFAR archive.

    Attributes:
        path: its path inside the archive, e.g. ``cifar-10-batches-py/data_batch_1``.
        md5: md5 of the file, checked before it is unpickled.
        count: number of images it holds.
    """

    path: str
    md5: str
    count: int


class CifarSource(ArchiveSource):
    """A CIFAR dataset in the python-pickle format: training batches and test batches in one ``.tar.gz``.

    Found as the archive, or unpacked: a directory holding the archive's top-level folder (e.g.
    ``cifar-10-batches-py/``) or that folder's files. Every batch is verified by its own md5 either way.
    """

    cache = False  # read in a second or two (see Source.cache)

    train_members: ClassVar[tuple[Member, ...]]
    test_members: ClassVar[tuple[Member, ...]]

    def _is_unpacked(self, directory: Path) -> bool:
        return all(self._unpacked_file(directory, m) is not None for m in self._members())

    def _read_unpacked(self, directory: Path) -> RawDataset:
        def read(member: Member) -> bytes:
            path = self._unpacked_file(directory, member)
            assert path is not None
            return path.read_bytes()

        return self._parse(directory, read, how="each batch file's md5 matches")

    def _read_archive(self, path: Path) -> RawDataset:
        with tarfile.open(path, "r:gz") as tar:

            def read(member: Member) -> bytes:
                try:
                    f = tar.extractfile(member.path)
                except KeyError:
                    f = None
                if f is None:
                    raise DataError(f"{path}: the archive has no file {member.path}")
                return f.read()

            return self._parse(path, read, how="archive md5 matches, and each batch's md5")

    def _members(self) -> tuple[Member, ...]:
        return (*self.train_members, *self.test_members)

    @staticmethod
    def _unpacked_file(directory: Path, member: Member) -> Path | None:
        for candidate in (directory / member.path, directory / Path(member.path).name):
            if candidate.is_file():
                return candidate
        return None

    def _parse(self, where: Path, read: Any, *, how: str) -> RawDataset:
        parts, arrays = [], {}
        for split, members in (("train", self.train_members), ("test", self.test_members)):
            xs, ys = [], []
            for member in members:
                data = read(member)
                digest = hashlib.md5(data).hexdigest()
                if digest != member.md5:
                    raise DataError(
                        f"{where}: {member.path} has md5 {digest}, expected {member.md5}: corrupt or a different "
                        f"version, so it is not unpickled; delete it and run `lineup data fetch {self.name}`"
                    )
                x, y = read_batch(data, source=f"{where}: {member.path}", count=member.count)
                if y.size and (y.min() < 0 or y.max() >= len(self.classes)):
                    raise DataError(f"{where}: {member.path}: labels outside 0..{len(self.classes) - 1}")
                xs.append(x)
                ys.append(y)
                parts.append(data)
            arrays[split] = (np.concatenate(xs), np.concatenate(ys))
        train_y, test_y = arrays["train"][1], arrays["test"][1]
        return in_file_order(
            self.name,
            arrays["train"],
            arrays["test"],
            classes=self.classes,
            mean=self.mean,
            std=self.std,
            # The batch files' bytes: the same whether they were read from the archive or unpacked.
            version=content_version(self.name, parts),
            notes=(
                f"{self.name}: read from {where} ({how})",
                f"{len(train_y):,} training images in {len(self.train_members)} batches, {len(test_y):,} test "
                f"images; index = position in the batches, in order",
            ),
        )
