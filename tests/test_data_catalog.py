"""The catalog's IDX datasets on small files written here: search order, verification, messages, downloads.

Each test declares Fashion-MNIST or MNIST as four tiny files (30 training and 10 test images) with their own
checksums and shapes, so the same code that verifies the real files runs on these.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from lineup.data import catalog, paths
from lineup.data.catalog import MNIST, FashionMNIST, Resource
from lineup.data.idx import write_idx
from lineup.errors import DataError, UnknownNameError

ARRAYS = {
    "train_images": np.random.default_rng(0).integers(0, 256, (30, 28, 28), dtype=np.uint8),
    "train_labels": (np.arange(30) % 10).astype(np.uint8),
    "test_images": np.random.default_rng(1).integers(0, 256, (10, 28, 28), dtype=np.uint8),
    "test_labels": np.arange(10)[::-1].astype(np.uint8),
}


def _declare(
    monkeypatch: pytest.MonkeyPatch, cls: type, arrays: dict[str, np.ndarray], *, sha256: bool
) -> dict[str, bytes]:
    """Declare ``cls``'s files as ``arrays`` (reference sha256 or not); return their .gz bytes by filename."""
    published, resources = {}, {}
    for role, array in arrays.items():
        filename = cls.resources[role].filename
        published[filename] = write_idx(array, compress=True)
        resources[role] = Resource(
            filename,
            md5=hashlib.md5(published[filename]).hexdigest(),
            sha256=hashlib.sha256(write_idx(array)).hexdigest() if sha256 else None,
            shape=array.shape,
        )
    monkeypatch.setattr(cls, "resources", resources)
    return published


def _place(directory: Path, files: dict[str, bytes], *, compressed: bool = True) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for filename, data in files.items():
        if compressed:
            (directory / filename).write_bytes(data)
        else:
            (directory / filename.removesuffix(".gz")).write_bytes(gzip.decompress(data))
    return directory


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test sees the machine's data directories, cache or mirrors."""
    monkeypatch.delenv(paths.DATA_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(paths, "SYSTEM_DATA_DIRS", (tmp_path / "system",))
    # Port 9 on 127.0.0.1: an accidental download fails at once instead of reaching the internet.
    monkeypatch.setattr(FashionMNIST, "mirrors", ("http://127.0.0.1:9/",))
    monkeypatch.setattr(MNIST, "mirrors", ("http://127.0.0.1:9/",))
    catalog.clear_cache()
    yield
    catalog.clear_cache()


@pytest.fixture
def fashion(monkeypatch: pytest.MonkeyPatch) -> dict[str, bytes]:
    return _declare(monkeypatch, FashionMNIST, ARRAYS, sha256=True)


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A web server on 127.0.0.1 serving a folder: ``(base URL, folder)``."""
    folder = tmp_path / "www"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", folder
    httpd.shutdown()
    httpd.server_close()


def test_search_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fashion: dict[str, bytes]) -> None:
    root, env = tmp_path / "root", tmp_path / "env"
    monkeypatch.setenv(paths.DATA_ENV, str(env))
    expected = [
        _place(root / "fashion-mnist", fashion),
        _place(env / "fashion-mnist", fashion),
        _place(tmp_path / "cache" / "lineup" / "fashion-mnist", fashion),
        _place(tmp_path / "system" / "fashion-mnist", fashion),
    ]
    for directory in expected:
        assert catalog.locate("fashion-mnist", root=root) == directory
        shutil.rmtree(directory)
    assert catalog.locate("fashion-mnist", root=root) is None


def test_root_may_be_the_dataset_directory_itself(tmp_path: Path, fashion: dict[str, bytes]) -> None:
    _place(tmp_path / "files", fashion)
    assert catalog.locate("fashion-mnist", root=tmp_path / "files") == tmp_path / "files"


def test_an_incomplete_directory_is_skipped(tmp_path: Path, fashion: dict[str, bytes]) -> None:
    root = _place(tmp_path / "root", dict(list(fashion.items())[:3]))
    cache = _place(tmp_path / "cache" / "lineup" / "fashion-mnist", fashion)
    assert catalog.locate("fashion-mnist", root=root) == cache


def test_load_returns_the_arrays_of_the_files(tmp_path: Path, fashion: dict[str, bytes]) -> None:
    _place(tmp_path / "system" / "fashion-mnist", fashion)
    raw = catalog.load_raw("fashion-mnist", download=False)
    np.testing.assert_array_equal(raw.train_x[:, 0], ARRAYS["train_images"])
    np.testing.assert_array_equal(raw.test_y, ARRAYS["test_labels"])
    assert raw.train_x.shape == (30, 1, 28, 28) and raw.train_y.dtype == np.int64
    assert raw.train_index.tolist() == list(range(30))
    assert raw.classes[0] == "T-shirt/top" and raw.classes[9] == "Ankle boot"
    assert raw.version.startswith("fashion-mnist-") and len(raw.version) == len("fashion-mnist-") + 16
    assert any("sha256 of the decompressed data matches" in note for note in raw.notes)


def test_a_test_split_drawn_anew_numbers_the_test_file_after_the_training_file(
    tmp_path: Path, fashion: dict[str, bytes],
) -> None:
    """IDX files number their examples from 0 each: pooled, the test file's examples are numbered from 30."""
    from lineup.data import load

    _place(tmp_path / "system" / "fashion-mnist", fashion)
    bundle = load("fashion-mnist", download=False, val_fraction=0.2, test_split={"fraction": 0.5, "seed": 0})
    images = np.concatenate([ARRAYS["train_images"], ARRAYS["test_images"]])
    labels = np.concatenate([ARRAYS["train_labels"], ARRAYS["test_labels"]])
    index = np.concatenate([bundle.train.index, bundle.val.index, bundle.test.index])
    assert sorted(index.tolist()) == list(range(40)) and len(bundle.test) == 20
    for split in (bundle.train, bundle.val, bundle.test):
        np.testing.assert_array_equal(split.x.numpy()[:, 0], images[split.index.numpy()])
        np.testing.assert_array_equal(split.y.numpy(), labels[split.index.numpy()])
    assert (bundle.test.index >= 30).any() and (bundle.test.index < 30).any()
    assert any("test-file examples are numbered from 30" in note for note in bundle.notes)


def test_version_depends_on_content_not_compression(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fashion: dict[str, bytes]
) -> None:
    published = catalog.load_raw("fashion-mnist", root=_place(tmp_path / "a", fashion)).version
    plain = catalog.load_raw("fashion-mnist", root=_place(tmp_path / "b", fashion, compressed=False)).version
    # Re-compressed the way a distribution package may do it: other .gz bytes, so the published md5 fails.
    recompressed = {
        name: gzip.compress(gzip.decompress(data), compresslevel=1) for name, data in fashion.items()
    }
    assert all(recompressed[name] != fashion[name] for name in fashion)
    again = catalog.load_raw("fashion-mnist", root=_place(tmp_path / "c", recompressed)).version
    assert published == plain == again

    changed = dict(ARRAYS, test_labels=ARRAYS["test_labels"][::-1].copy())
    other = _declare(monkeypatch, FashionMNIST, changed, sha256=True)
    assert catalog.load_raw("fashion-mnist", root=_place(tmp_path / "d", other)).version != published


def test_a_changed_file_is_reported_with_both_checksums(tmp_path: Path, fashion: dict[str, bytes]) -> None:
    images = ARRAYS["train_images"].copy()
    images[0, 0, 0] ^= 1  # one bit of one pixel
    root = _place(
        tmp_path / "root", dict(fashion, **{"train-images-idx3-ubyte.gz": write_idx(images, compress=True)})
    )
    expected = FashionMNIST.resources["train_images"].sha256
    actual = hashlib.sha256(write_idx(images)).hexdigest()
    for action in (catalog.check, catalog.load_raw):
        with pytest.raises(DataError) as info:
            action("fashion-mnist", root)
        message = str(info.value)
        assert str(root / "train-images-idx3-ubyte.gz") in message
        assert f"is {actual}, expected {expected}" in message


def test_a_truncated_download_is_corrupt_gzip(tmp_path: Path, fashion: dict[str, bytes]) -> None:
    data = fashion["t10k-labels-idx1-ubyte.gz"]
    root = _place(tmp_path / "root", dict(fashion, **{"t10k-labels-idx1-ubyte.gz": data[:-9]}))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte.gz: corrupt gzip data"):
        catalog.check("fashion-mnist", root)


def test_without_reference_sha256_the_header_shape_is_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = _declare(monkeypatch, MNIST, ARRAYS, sha256=False)
    declared = dict(
        MNIST.resources, train_images=Resource("train-images-idx3-ubyte.gz", "0" * 32, None, (31, 28, 28))
    )
    monkeypatch.setattr(MNIST, "resources", declared)
    with pytest.raises(
        DataError, match=r"declares uint8 of shape \(30, 28, 28\), expected uint8 of shape \(31, 28, 28\)"
    ):
        catalog.check("mnist", _place(tmp_path / "root", files))


def test_labels_out_of_range_are_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = _declare(monkeypatch, MNIST, dict(ARRAYS, test_labels=np.full(10, 10, np.uint8)), sha256=False)
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz: label 10 out of range for 10 classes"):
        catalog.check("mnist", _place(tmp_path / "root", files))


def test_check_says_how_each_file_was_verified(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = _declare(monkeypatch, MNIST, ARRAYS, sha256=False)
    lines = catalog.check("mnist", _place(tmp_path / "published", files))
    assert "train-images-idx3-ubyte.gz: 30 x 28 x 28 uint8, md5 matches the published file" in lines
    assert lines[-1].startswith("version mnist-")
    lines = catalog.check("mnist", _place(tmp_path / "plain", files, compressed=False))
    assert any(
        line.startswith("train-images-idx3-ubyte: 30 x 28 x 28 uint8, no reference checksum")
        for line in lines
    )


def test_missing_data_says_where_it_looked_and_how_to_get_it(
    tmp_path: Path, fashion: dict[str, bytes]
) -> None:
    root = _place(tmp_path / "root", {"train-labels-idx1-ubyte.gz": fashion["train-labels-idx1-ubyte.gz"]})
    for action in (catalog.check, functools.partial(catalog.load_raw, download=False)):
        with pytest.raises(DataError) as info:
            action("fashion-mnist", root)
        message = str(info.value)
        for filename in fashion:
            assert filename in message
        assert f"{root}  [explicit root] (incomplete: only train-labels-idx1-ubyte.gz)" in message
        assert f"{tmp_path / 'cache' / 'lineup' / 'fashion-mnist'}  [user cache]" in message
        assert f"{tmp_path / 'system' / 'fashion-mnist'}  [system data]" in message
        assert "$LINEUP_DATA is not set" in message
        assert "lineup data fetch fashion-mnist" in message
        assert "apt-get install dataset-fashion-mnist" in message


def test_download_tries_the_mirrors_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fashion: dict[str, bytes], mirror: tuple[str, Path]
) -> None:
    url, folder = mirror
    _place(folder / "good", fashion)
    _place(folder / "wrong", {name: fashion["t10k-labels-idx1-ubyte.gz"] for name in fashion})
    monkeypatch.setattr(FashionMNIST, "mirrors", (f"{url}/missing/", f"{url}/wrong/", f"{url}/good/"))
    raw = catalog.load_raw("fashion-mnist")
    cache = tmp_path / "cache" / "lineup" / "fashion-mnist"
    assert sorted(p.name for p in cache.iterdir()) == sorted(fashion)
    assert all((cache / name).read_bytes() == data for name, data in fashion.items())
    local = catalog.load_raw("fashion-mnist", root=_place(tmp_path / "local", fashion, compressed=False))
    assert raw.version == local.version


def test_download_goes_into_root_when_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fashion: dict[str, bytes], mirror: tuple[str, Path]
) -> None:
    url, folder = mirror
    _place(folder, fashion)
    monkeypatch.setattr(FashionMNIST, "mirrors", (f"{url}/",))
    assert catalog.fetch("fashion-mnist", root=tmp_path / "root") == tmp_path / "root" / "fashion-mnist"
    assert not (tmp_path / "cache").exists()


def test_fetch_of_present_data_downloads_nothing(tmp_path: Path, fashion: dict[str, bytes]) -> None:
    cache = _place(tmp_path / "cache" / "lineup" / "fashion-mnist", fashion)
    assert catalog.fetch("fashion-mnist") == cache  # the mirrors point at a closed port


def test_failed_download_explains_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fashion: dict[str, bytes], mirror: tuple[str, Path]
) -> None:
    url, folder = mirror
    _place(folder, {name: b"not the file" for name in fashion})
    monkeypatch.setattr(FashionMNIST, "mirrors", (f"{url}/",))
    with pytest.raises(DataError) as info:
        catalog.fetch("fashion-mnist")
    message = str(info.value)
    assert f"{url}/train-images-idx3-ubyte.gz: md5 is {hashlib.md5(b'not the file').hexdigest()}" in message
    assert f"Expected md5 {FashionMNIST.resources['train_images'].md5}" in message
    assert f"{tmp_path / 'system' / 'fashion-mnist'}  [system data]" in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert list((tmp_path / "cache" / "lineup" / "fashion-mnist").iterdir()) == []


def test_raw_datasets_are_cached_per_location_where_the_source_asks(
    tmp_path: Path, fashion: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    a = _place(tmp_path / "a", fashion)
    assert not FashionMNIST.cache  # IDX files read in a second: no second copy of the images kept
    first = catalog.load_raw("fashion-mnist", root=a)
    again = catalog.load_raw("fashion-mnist", root=a)
    assert again is not first and np.array_equal(again.train_x, first.train_x)
    monkeypatch.setattr(FashionMNIST, "cache", True)  # as the image folders, slow to decode, declare
    first = catalog.load_raw("fashion-mnist", root=a)
    assert catalog.load_raw("fashion-mnist", root=a) is first
    assert catalog.load_raw("fashion-mnist", root=_place(tmp_path / "b", fashion)) is not first
    with pytest.raises(ValueError, match="read-only"):
        first.train_x[0, 0, 0, 0] = 1  # shared by every load in the process


def test_unknown_dataset_suggests_the_closest_name() -> None:
    with pytest.raises(
        UnknownNameError, match=r"unknown dataset 'fashion-mnst'\. Did you mean 'fashion-mnist'"
    ):
        catalog.locate("fashion-mnst")
    assert {"digits", "fashion-mnist", "mnist", "mnist-5k"} <= set(catalog.list_datasets())


def test_a_missing_package_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(catalog.Mnist5k, "distribution", "lineup-test-absent-distribution")
    assert catalog.locate("mnist-5k") is None
    with pytest.raises(DataError, match="pip install lineup-test-absent-distribution"):
        catalog.load_raw("mnist-5k")
