"""Datasets published as one checksummed archive, read from the archive itself or from its unpacked files."""

from __future__ import annotations

import os
from abc import abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from lineup.data import paths
from lineup.data._source import DownloadableSource, RawDataset
from lineup.data.download import download, file_digest
from lineup.errors import DataError


@dataclass(frozen=True)
class Archive:
    """The published archive of a dataset.

    Attributes:
        filename: its name as published, e.g. ``cifar-10-python.tar.gz``.
        md5: md5 of the published file; verifies a download and any local copy before it is read.
    """

    filename: str
    md5: str


class ArchiveSource(DownloadableSource):
    """A dataset published as one archive, which may also be found unpacked.

    In each directory of ``paths.search_dirs`` the archive itself is looked for first (it is verified by its
    md5 every time it is read), then its unpacked contents (which each subclass verifies as well as it can).
    The archive is never unpacked to disk: its members are read from it directly, so a member's name cannot
    write outside the data directory.
    """

    # Base URLs, tried in order; the archive's URL is the base followed by its filename.
    mirrors: ClassVar[tuple[str, ...]]
    archive: ClassVar[Archive]
    # Other ways to get the data, shown when it is missing.
    install_hints: ClassVar[tuple[str, ...]] = ()
    # What the unpacked contents look like, for the message shown when nothing is found.
    unpacked_hint: ClassVar[str] = ""

    @abstractmethod
    def _is_unpacked(self, directory: Path) -> bool:
        """Whether ``directory`` holds the archive's contents, unpacked."""

    @abstractmethod
    def _read_archive(self, path: Path) -> RawDataset:
        """The dataset from the archive at ``path``, whose md5 has been verified."""

    @abstractmethod
    def _read_unpacked(self, directory: Path) -> RawDataset:
        """The dataset from the unpacked contents in ``directory``."""

    def locate(self) -> Path | None:
        for directory, _ in paths.search_dirs(self.name, self.root):
            if (directory / self.archive.filename).is_file():
                return directory / self.archive.filename
            if self._is_unpacked(directory):
                return directory
        return None

    def check(self) -> list[str]:
        raw = self.load(download=False)
        return [*raw.notes, f"version {raw.version}"]

    def load(self, *, download: bool = True) -> RawDataset:
        return self._read(self._present(download=download))

    def _read(self, where: Path) -> RawDataset:
        if where.is_dir():
            return self._read_unpacked(where)
        digest = file_digest(where, "md5")
        if digest != self.archive.md5:
            raise DataError(
                f"{where}: md5 is {digest}, expected {self.archive.md5}: the file is corrupt, truncated or a "
                f"different version; delete it and run `lineup data fetch {self.name}`"
            )
        return self._read_archive(where)

    def _download(self) -> Path:
        dest = paths.download_dir(self.name, self.root) / self.archive.filename
        urls = [mirror + self.archive.filename for mirror in self.mirrors]
        return download(urls, dest, md5=self.archive.md5, hint=self._by_hand())

    def _by_hand(self) -> str:
        dirs = "\n".join(f"  {d}  [{origin}]" for d, origin in paths.search_dirs(self.name, self.root))
        hints = "".join(f"\nOr: {hint}" for hint in self.install_hints)
        return f"lineup looks for {self.archive.filename} (or {self.unpacked_hint}) in:\n{dirs}{hints}"

    def _missing(self) -> DataError:
        lines = [
            f"{self.name}: data not found. Looked for {self.archive.filename} (or {self.unpacked_hint}) in:",
            *(f"  {d}  [{origin}]" for d, origin in paths.search_dirs(self.name, self.root)),
        ]
        if not os.environ.get(paths.DATA_ENV):
            lines.append(f"  (${paths.DATA_ENV} is not set)")
        lines += [
            "To get it:",
            f"  lineup data fetch {self.name}  (downloads from {', '.join(self.mirrors)} into "
            f"{paths.download_dir(self.name, self.root)})",
            *(f"  {hint}" for hint in self.install_hints),
            f"  or copy {self.archive.filename} (md5 {self.archive.md5}) into one of the directories above",
        ]
        return DataError("\n".join(lines))
