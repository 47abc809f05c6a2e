"""CIFAR-10 on a tiny archive in the real format written here: two training batches and a test batch.

The batches are pickles of the same dict as the published files (b"data", b"labels", b"batch_label",
b"filenames"); the archive's and each batch's md5 are declared in place of the real ones, so the same code
that verifies and reads the published archive runs on these.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import pickle
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from lineup.data import catalog, load, paths
from lineup.data._archive import Archive
from lineup.data.catalog import CIFAR10
from lineup.data.cifar import Member, read_batch
from lineup.errors import DataError

RNG = np.random.default_rng(0)
BATCHES = {  # path in the archive -> (images as the file stores them, labels)
    "cifar-10-batches-py/data_batch_1": (RNG.integers(0, 256, (6, 3072), dtype=np.uint8), [0, 1, 2, 3, 4, 5]),
    "cifar-10-batches-py/data_batch_2": (RNG.integers(0, 256, (4, 3072), dtype=np.uint8), [6, 7, 8, 9]),
    "cifar-10-batches-py/test_batch": (RNG.integers(0, 256, (5, 3072), dtype=np.uint8), [9, 0, 9, 1, 1]),
}


def batch_bytes(data: np.ndarray, labels: list[int], *, old_numpy: bool = False) -> bytes:
    entry = {
        b"batch_label": b"training batch 1 of 5",
        b"labels": labels,
        b"data": data,
        b"filenames": [f"img_{i}.png".encode() for i in range(len(labels))],
    }
    # Protocol 3 writes bytes as bytes (2 would need codecs.encode) and names globals as text, so the
    # module can be renamed to the numpy 1 name that the published files carry.
    raw = pickle.dumps(entry, protocol=3)
    return raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray") if old_numpy else raw


FILES = {path: batch_bytes(x, y, old_numpy=path.endswith("1")) for path, (x, y) in BATCHES.items()}


def make_archive(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


ARCHIVE = make_archive(FILES)


@pytest.fixture(autouse=True)
def declared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """CIFAR-10 declared as the tiny files; no test sees the machine's data directories or the internet."""
    monkeypatch.delenv(paths.DATA_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(paths, "SYSTEM_DATA_DIRS", (tmp_path / "system",))
    monkeypatch.setattr(CIFAR10, "mirrors", ("http://127.0.0.1:9/",))  # an accidental download fails at once
    monkeypatch.setattr(CIFAR10, "archive", Archive("cifar-10-python.tar.gz", hashlib.md5(ARCHIVE).hexdigest()))
    members = {p: Member(p, hashlib.md5(data).hexdigest(), len(BATCHES[p][1])) for p, data in FILES.items()}
    monkeypatch.setattr(CIFAR10, "train_members", tuple(v for k, v in members.items() if "data_batch" in k))
    monkeypatch.setattr(CIFAR10, "test_members", (members["cifar-10-batches-py/test_batch"],))
    catalog.clear_cache()
    yield
    catalog.clear_cache()


def place_archive(directory: Path, data: bytes = ARCHIVE) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "cifar-10-python.tar.gz").write_bytes(data)
    return directory


def place_unpacked(directory: Path, files: dict[str, bytes] = FILES) -> Path:
    for name, data in files.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_bytes(data)
    return directory


def test_reads_the_archive_in_the_published_layout(tmp_path: Path) -> None:
    raw = catalog.load_raw("cifar-10", root=place_archive(tmp_path / "root"))
    assert raw.train_x.shape == (10, 3, 32, 32) and raw.test_x.shape == (5, 3, 32, 32)
    assert raw.train_y.tolist() == list(range(10)) and raw.test_y.tolist() == [9, 0, 9, 1, 1]
    first = BATCHES["cifar-10-batches-py/data_batch_1"][0][0]
    # A row is the red, then the green, then the blue 32×32 plane, each row-major.
    assert raw.train_x[0, 1, 2, 3] == first[1024 + 2 * 32 + 3]
    assert raw.train_x[0, 2, 31, 0] == first[2048 + 31 * 32]
    np.testing.assert_array_equal(raw.train_x[6], BATCHES["cifar-10-batches-py/data_batch_2"][0][0].reshape(3, 32, 32))
    assert raw.train_index.tolist() == list(range(10))
    assert raw.classes[0] == "airplane" and raw.classes[9] == "truck"
    assert "archive md5 matches" in raw.notes[0]


def test_unpacked_files_give_the_same_data_and_version(tmp_path: Path) -> None:
    packed = catalog.load_raw("cifar-10", root=place_archive(tmp_path / "a"))
    unpacked = catalog.load_raw("cifar-10", root=place_unpacked(tmp_path / "b"))
    # The batch files straight in the directory (as when root is cifar-10-batches-py/ itself) work too.
    flat = catalog.load_raw(
        "cifar-10", root=place_unpacked(tmp_path / "c", {Path(k).name: v for k, v in FILES.items()})
    )
    for raw in (unpacked, flat):
        assert raw.version == packed.version
        np.testing.assert_array_equal(raw.train_x, packed.train_x)
    assert "each batch file's md5 matches" in unpacked.notes[0]


def test_archive_is_preferred_and_search_order_is_that_of_every_dataset(tmp_path: Path) -> None:
    root, cache = tmp_path / "root", tmp_path / "cache" / "lineup" / "cifar-10"
    place_unpacked(root / "cifar-10")
    place_archive(root / "cifar-10")
    place_archive(cache)
    assert catalog.locate("cifar-10", root=root) == root / "cifar-10" / "cifar-10-python.tar.gz"
    assert catalog.locate("cifar-10") == cache / "cifar-10-python.tar.gz"


def test_a_corrupt_archive_is_refused_with_both_checksums(tmp_path: Path) -> None:
    bad = ARCHIVE[:-1] + bytes([ARCHIVE[-1] ^ 1])
    root = place_archive(tmp_path / "root", bad)
    with pytest.raises(DataError) as e:
        catalog.load_raw("cifar-10", root=root)
    message = str(e.value)
    assert f"md5 is {hashlib.md5(bad).hexdigest()}, expected {CIFAR10.archive.md5}" in message
    assert "lineup data fetch cifar-10" in message


class Touch:
    """Pickles as "create this file": harmless, but proof of code run by unpickling."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        return (Path.touch, (self.path,))


def test_the_payload_runs_under_a_plain_unpickler(tmp_path: Path) -> None:
    pickle.loads(pickle.dumps(Touch(tmp_path / "control"), protocol=3))  # what the tests below guard against
    assert (tmp_path / "control").exists()


def test_a_changed_batch_is_never_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    files = dict(FILES, **{"cifar-10-batches-py/data_batch_2": pickle.dumps(Touch(marker), protocol=3)})
    with pytest.raises(DataError, match=r"data_batch_2 has md5 .*, expected .*so it is not unpickled"):
        catalog.load_raw("cifar-10", root=place_unpacked(tmp_path / "root", files))
    assert not marker.exists()


def test_the_unpickler_builds_only_what_a_batch_holds(tmp_path: Path) -> None:
    marker = tmp_path / "touched"
    with pytest.raises(DataError, match="is not something a CIFAR batch holds"):
        read_batch(pickle.dumps({b"data": Touch(marker)}, protocol=3), source="evil", count=1)
    assert not marker.exists()
    x, y = read_batch(FILES["cifar-10-batches-py/test_batch"], source="test_batch", count=5)
    assert x.shape == (5, 3, 32, 32) and y.dtype == np.int64


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ([1, 2], "expected a dict with b'data' and b'labels'"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]}, r"uint8 of shape \(3, 3072\), got uint8 \(2,"),
        ({b"data": np.zeros((3, 3072), np.int32), b"labels": [0, 1, 2]}, "got int32"),
        ({b"data": np.zeros((3, 3072), np.uint8), b"labels": [0, 1]}, "a list of 3 ints"),
    ],
)
def test_malformed_batches(entry: object, message: str) -> None:
    with pytest.raises(DataError, match=message):
        read_batch(pickle.dumps(entry, protocol=3), source="b", count=3)


def test_missing_data_says_where_it_looked_and_how_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(DataError) as e:
        catalog.load_raw("cifar-10", root=tmp_path / "root", download=False)
    message = str(e.value)
    assert "cifar-10-python.tar.gz" in message and "cifar-10-batches-py/" in message
    assert f"{tmp_path / 'root'}  [explicit root]" in message and "[system data]" in message
    assert "lineup data fetch cifar-10" in message and CIFAR10.archive.md5 in message


def test_downloads_from_a_mirror_into_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = place_archive(tmp_path / "www")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
    try:
        monkeypatch.setattr(CIFAR10, "mirrors", (f"http://127.0.0.1:{httpd.server_address[1]}/",))
        raw = catalog.load_raw("cifar-10")
    finally:
        httpd.shutdown()
        httpd.server_close()
    cached = tmp_path / "cache" / "lineup" / "cifar-10" / "cifar-10-python.tar.gz"
    assert cached.read_bytes() == ARCHIVE and raw.train_x.shape[0] == 10


def test_load_end_to_end_as_grey(tmp_path: Path) -> None:
    bundle = load("cifar-10", root=place_archive(tmp_path / "root"), classes=[9, 0], val_fraction=0.0,
                  options={"channels": 1})
    assert bundle.input_shape == (1, 32, 32) and bundle.classes == ["truck", "airplane"]
    assert bundle.test.y.tolist() == [0, 1, 0]  # test labels 9, 0, 9 (the 1s are dropped)
    rgb = torch.from_numpy(BATCHES["cifar-10-batches-py/test_batch"][0][0].reshape(3, 32, 32)).double()
    luma = (0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]).round()
    torch.testing.assert_close(bundle.test.x[0, 0].double(), luma)
