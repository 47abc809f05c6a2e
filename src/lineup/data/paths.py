"""Where lineup looks for dataset files, and where it downloads them."""

from __future__ import annotations

import os
from pathlib import Path

# Read-only directories that system packages install datasets into, e.g. Debian's dataset-fashion-mnist
# puts its files in /usr/share/datasets/fashion-mnist.
SYSTEM_DATA_DIRS: tuple[Path, ...] = (Path("/usr/share/datasets"),)

DATA_ENV = "LINEUP_DATA"


def user_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/lineup``, or ``~/.cache/lineup`` when that variable is unset or empty."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "lineup"


def search_dirs(name: str, root: str | os.PathLike[str] | None = None) -> list[tuple[Path, str]]:
    """The directories that may hold dataset ``name``'s files, in search order, each with its origin.

    The order is: an explicit ``root`` (its ``<name>`` subdirectory, then ``root`` itself, so a root may
    be either a directory of datasets or the dataset's own directory), ``$LINEUP_DATA/<name>``, the user
    cache, then the system data directories.
    """
    dirs: list[tuple[Path, str]] = []
    if root is not None:
        root = Path(root).expanduser()
        dirs += [(root / name, "explicit root"), (root, "explicit root")]
    if os.environ.get(DATA_ENV):
        dirs.append((Path(os.environ[DATA_ENV]).expanduser() / name, f"${DATA_ENV}"))
    dirs.append((user_cache_dir() / name, "user cache"))
    dirs += [(base / name, "system data") for base in SYSTEM_DATA_DIRS]
    return dirs


def download_dir(name: str, root: str | os.PathLike[str] | None = None) -> Path:
    """Where dataset ``name`` is downloaded to: ``<root>/<name>`` with a root, else the user cache."""
    base = Path(root).expanduser() if root is not None else user_cache_dir()
    return base / name
