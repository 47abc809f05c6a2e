"""Checksummed downloads that never leave a partial file behind."""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from lineup._io import atomic_write
from lineup.errors import DataError

log = logging.getLogger(__name__)

_CHUNK = 1 << 20  # bytes read and hashed at a time


class _BadResponse(Exception):
    """A mirror answered, but not with the file: too few bytes or the wrong checksum."""


def file_digest(path: str | os.PathLike[str], algo: str = "sha256") -> str:
    """Hex digest of the file at ``path`` with hashlib algorithm ``algo`` (``"md5"``, ``"sha256"`` ...)."""
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def download(
    urls: Sequence[str],
    dest: str | os.PathLike[str],
    *,
    md5: str | None = None,
    sha256: str | None = None,
    timeout: float = 60,
    hint: str = "",
) -> Path:
    """Download one file from the first mirror that serves it with the expected checksum.

    Each attempt streams into a temporary file next to ``dest``, checks the digest, syncs the file and
    renames it into place, so ``dest`` is either absent, the previous file, or a complete verified copy --
    never a truncated one, even if the process is killed. A mirror that fails in any way (unreachable,
    HTTP error, short read, wrong checksum) is reported and the next one is tried.

    Args:
        urls: the same file on each mirror, in order of preference; ``http`` or ``https``.
        dest: where the file goes; its directory is created if needed.
        md5: expected hex md5 of the downloaded bytes.
        sha256: expected hex sha256 of the downloaded bytes; at least one of ``md5`` and ``sha256``.
        timeout: seconds without progress before a mirror is given up.
        hint: appended to the error, e.g. the other directories the caller would look in.

    Returns:
        ``dest``.

    Raises:
        DataError: every mirror failed; the message lists each URL and why, the expected checksum and how to
            place the file by hand.
        ValueError: no checksum given.
    """
    expected = {algo: value.lower() for algo, value in (("md5", md5), ("sha256", sha256)) if value}
    if not expected:
        raise ValueError("download needs an expected md5 or sha256: an unchecked download is never trusted")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    for url in urls:
        try:
            _download_one(url, dest, expected, timeout)
            return dest
        except _BadResponse as e:
            failures.append(f"  {url}: {e}")
        except urllib.error.HTTPError as e:
            failures.append(f"  {url}: HTTP {e.code} {e.reason}")
        except urllib.error.URLError as e:
            failures.append(f"  {url}: {e.reason}")
        except (OSError, http.client.HTTPException, ValueError) as e:
            failures.append(f"  {url}: {type(e).__name__}: {e}")
        log.warning("download failed: %s", failures[-1].strip())
    checksums = ", ".join(f"{algo} {value}" for algo, value in expected.items())
    tried = "\n".join(failures) if failures else "  (no mirror URLs given)"
    message = (
        f"could not download {dest.name}; tried:\n{tried}\n"
        f"Expected {checksums}. To install it by hand, download it from any of the URLs above, check its "
        f"checksum and save it as {dest}"
    )
    raise DataError(message + (f"\n{hint}" if hint else ""))


def _download_one(url: str, dest: Path, expected: dict[str, str], timeout: float) -> None:
    # urllib would also open file:// and ftp:// URLs; mirrors are web servers, so anything else is a mistake.
    if not url.lower().startswith(("http://", "https://")):
        raise ValueError("not an http(s) URL")
    log.info("downloading %s", url)
    hashes = {algo: hashlib.new(algo) for algo in expected}

    def write_verified(out: BinaryIO) -> None:
        # Raising here leaves dest untouched: atomic_write renames only a body that was read whole and matched.
        received = 0
        with urllib.request.urlopen(url, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            while chunk := response.read(_CHUNK):
                received += len(chunk)
                out.write(chunk)
                for h in hashes.values():
                    h.update(chunk)
        # A connection closed early can look like a normal end of the body; say so rather than
        # report only the checksum mismatch that follows from it.
        if length is not None and length.isdigit() and received < int(length):
            raise _BadResponse(f"connection closed after {received} of {int(length)} bytes")
        for algo, h in hashes.items():
            if h.hexdigest() != expected[algo]:
                raise _BadResponse(f"{algo} is {h.hexdigest()}, expected {expected[algo]}")

    atomic_write(dest, write_verified)
