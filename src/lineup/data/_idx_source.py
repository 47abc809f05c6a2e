"""Datasets published as four IDX files (train/test images and labels), found locally or downloaded."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from lineup.data import paths
from lineup.data._source import DownloadableSource, RawDataset, content_version
from lineup.data.download import download
from lineup.data.idx import decompress, read_idx
from lineup.errors import DataError

ROLES = ("train_images", "train_labels", "test_images", "test_labels")


@dataclass(frozen=True)
class Resource:
    """One published file of a dataset.

    Attributes:
        filename: the name as published, gzip-compressed (``*.gz``); locally the same name without ``.gz``
            is accepted too.
        md5: md5 of the published ``.gz``; verifies a download.
        sha256: sha256 of the decompressed IDX bytes, or ``None`` where no reference is known; verifies any
            local copy, including one that was re-compressed (which changes the ``.gz`` md5).
        shape: the shape the IDX header must declare, e.g. ``(60000, 28, 28)``.
    """

    filename: str
    md5: str
    sha256: str | None
    shape: tuple[int, ...]


class IdxSource(DownloadableSource):
    """A dataset of four IDX files, one per entry of ``ROLES``, all in one directory.

    A directory counts as holding the dataset when all four files are there. Reading a file verifies the
    sha256 of its decompressed bytes when one is declared, and always the shape in its header and the
    range of its labels.
    """

    cache = False  # read in a second or two (see Source.cache)

    # Base URLs, tried in order; a file's URL is the base followed by its filename.
    mirrors: ClassVar[tuple[str, ...]]
    resources: ClassVar[dict[str, Resource]]  # role -> file, for every role in ROLES
    # Other ways to install the files, e.g. a system package, shown when they are missing.
    install_hints: ClassVar[tuple[str, ...]] = ()

    def locate(self) -> Path | None:
        for directory, _ in paths.search_dirs(self.name, self.root):
            if len(self._files_in(directory)) == len(ROLES):
                return directory
        return None

    def check(self) -> list[str]:
        where = self.locate()
        if where is None:
            raise self._missing()
        _, lines, version = self._read(where)
        return [f"{self.name}: files in {where}", *lines, f"version {version}"]

    def load(self, *, download: bool = True) -> RawDataset:
        where = self._present(download=download)
        arrays, lines, version = self._read(where)
        return RawDataset(
            self.name,
            train_x=arrays["train_images"][:, None],  # (N, H, W) -> (N, 1, H, W)
            train_y=arrays["train_labels"].astype(np.int64),
            test_x=arrays["test_images"][:, None],
            test_y=arrays["test_labels"].astype(np.int64),
            train_index=np.arange(len(arrays["train_labels"]), dtype=np.int64),
            test_index=np.arange(len(arrays["test_labels"]), dtype=np.int64),
            classes=self.classes,
            mean=self.mean,
            std=self.std,
            version=version,
            notes=(f"{self.name}: read from {where}", *lines),
        )

    def _files_in(self, directory: Path) -> dict[str, Path]:
        """The files of each role present in ``directory``, compressed or not."""
        found = {}
        for role, res in self.resources.items():
            for candidate in (directory / res.filename, directory / res.filename.removesuffix(".gz")):
                if candidate.is_file():
                    found[role] = candidate
                    break
        return found

    def _read(self, where: Path) -> tuple[dict[str, np.ndarray], list[str], str]:
        """The four arrays in ``where``, one line per file saying what was verified, and the data version."""
        files = self._files_in(where)
        arrays, lines, digests = {}, [], []
        for role in ROLES:
            res, path = self.resources[role], files[role]
            raw = path.read_bytes()
            data = decompress(raw, source=str(path))
            digest = hashlib.sha256(data).hexdigest()
            if res.sha256 is not None and digest != res.sha256:
                raise DataError(
                    f"{path}: sha256 of the decompressed data is {digest}, expected {res.sha256}: the file "
                    f"is corrupt or a different version; delete it and run `lineup data fetch {self.name}`"
                )
            array = read_idx(data, source=str(path))
            if array.shape != res.shape or array.dtype != np.uint8:
                raise DataError(
                    f"{path}: the IDX header declares {array.dtype.name} of shape {array.shape}, expected "
                    f"uint8 of shape {res.shape}"
                )
            if role.endswith("labels") and array.size and int(array.max()) >= len(self.classes):
                raise DataError(
                    f"{path}: label {int(array.max())} out of range for {len(self.classes)} classes"
                )
            if res.sha256 is not None:
                how = "sha256 of the decompressed data matches"
            elif raw is not data and hashlib.md5(raw).hexdigest() == res.md5:
                how = "md5 matches the published file"
            else:
                how = f"no reference checksum, header checked only; sha256 of the decompressed data {digest}"
            lines.append(f"{path.name}: {' x '.join(map(str, array.shape))} uint8, {how}")
            arrays[role] = array
            digests.append(digest.encode())
        return arrays, lines, content_version(self.name, digests)

    def _download(self) -> Path:
        """Download the files that are missing from the download directory; return that directory."""
        dest = paths.download_dir(self.name, self.root)
        present = self._files_in(dest)
        for role, res in self.resources.items():
            if role not in present:
                urls = [mirror + res.filename for mirror in self.mirrors]
                download(urls, dest / res.filename, md5=res.md5, hint=self._by_hand())
        return dest

    def _by_hand(self) -> str:
        dirs = "\n".join(f"  {d}  [{origin}]" for d, origin in paths.search_dirs(self.name, self.root))
        hints = "".join(f"\nOr: {hint}" for hint in self.install_hints)
        return f"lineup looks for the {self.name} files (compressed or not) in:\n{dirs}{hints}"

    def _missing(self) -> DataError:
        names = ", ".join(res.filename for res in self.resources.values())
        lines = [f"{self.name}: data files not found. Looked for {names} (or the same names without .gz) in:"]
        for directory, origin in paths.search_dirs(self.name, self.root):
            found = self._files_in(directory)
            partial = f" (incomplete: only {', '.join(p.name for p in found.values())})" if found else ""
            lines.append(f"  {directory}  [{origin}]{partial}")
        if not os.environ.get(paths.DATA_ENV):
            lines.append(f"  (${paths.DATA_ENV} is not set)")
        lines.append("To get them:")
        mirrors = ", ".join(self.mirrors)
        lines.append(
            f"  lineup data fetch {self.name}  (downloads from {mirrors} into "
            f"{paths.download_dir(self.name, self.root)})"
        )
        lines += [f"  {hint}" for hint in self.install_hints]
        lines.append("  or copy the files into one of the directories above")
        return DataError("\n".join(lines))
