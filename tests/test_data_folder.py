"""Image folders on small trees of real PNG files written here: CINIC-10's layout and the generic image-folder.

CINIC-10 is declared with the counts of the tiny tree (and the md5 of its tiny archive), so the code that reads
and checks the published 270,000 images runs on 60.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lineup.data import catalog, load, paths
from lineup.data._archive import Archive
from lineup.data.catalog import CIFAR10_CLASSES, CINIC10
from lineup.data.folder import decode_image
from lineup.errors import DataError, SpecError


def png(array: np.ndarray, fmt: str = "PNG") -> bytes:
    """Encoded image of an ``(H, W)`` grey or ``(H, W, 3)`` RGB uint8 array."""
    out = io.BytesIO()
    Image.fromarray(array).save(out, format=fmt)
    return out.getvalue()


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def cinic_files() -> dict[str, np.ndarray]:
    """Relative path -> RGB image: 2 per class in train/, 1 in valid/ and test/; every fourth image is grey."""
    rng = np.random.default_rng(0)
    files = {}
    for folder, per_class in (("train", 2), ("valid", 1), ("test", 1)):
        for label, name in enumerate(CIFAR10_CLASSES):
            for i in range(per_class):
                # Names that sort differently from the order they are written in.
                files[f"{folder}/{name}/n{9 - i}_{label}.png"] = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    for k, path in enumerate(sorted(files)):
        if k % 4 == 0:
            files[path] = np.repeat(files[path][:, :, :1], 3, axis=2)  # stored as a grey PNG below
    return files


CINIC = cinic_files()


def encoded(path: str) -> bytes:
    image = CINIC[path]
    grey = bool((image == image[:, :, :1]).all())
    return png(image[:, :, 0] if grey else image)


def cinic_archive() -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for path in reversed(sorted(CINIC)):  # stored out of order; reading must not depend on it
            data = encoded(path)
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        readme = tarfile.TarInfo("README.md")
        readme.size = 5
        tar.addfile(readme, io.BytesIO(b"hello"))
    return out.getvalue()


ARCHIVE = cinic_archive()


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(paths.DATA_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(paths, "SYSTEM_DATA_DIRS", (tmp_path / "system",))
    monkeypatch.setattr(CINIC10, "mirrors", ("http://127.0.0.1:9/",))
    monkeypatch.setattr(CINIC10, "archive", Archive("CINIC-10.tar.gz", hashlib.md5(ARCHIVE).hexdigest()))
    monkeypatch.setattr(CINIC10, "counts", {"train": 20, "valid": 10, "test": 10})
    catalog.clear_cache()
    yield
    catalog.clear_cache()


def unpack_cinic(directory: Path) -> Path:
    for path in CINIC:
        write(directory / path, encoded(path))
    return directory


# ------------------------------------------------------------------------------------------------------------
# CINIC-10


def test_cinic_folds_valid_into_train_and_orders_by_class_then_name(tmp_path: Path) -> None:
    raw = catalog.load_raw("cinic-10", root=unpack_cinic(tmp_path / "root"))
    assert raw.train_x.shape == (30, 3, 32, 32) and raw.test_x.shape == (10, 3, 32, 32)
    # train/: 2 per class, by class; then valid/: 1 per class.
    assert raw.train_y.tolist() == [c for c in range(10) for _ in range(2)] + list(range(10))
    np.testing.assert_array_equal(raw.train_x[0], CINIC["train/airplane/n8_0.png"].transpose(2, 0, 1))
    np.testing.assert_array_equal(raw.train_x[1], CINIC["train/airplane/n9_0.png"].transpose(2, 0, 1))
    np.testing.assert_array_equal(raw.train_x[20], CINIC["valid/airplane/n9_0.png"].transpose(2, 0, 1))
    assert "train = train/ + valid/" in raw.notes[1]


def test_cinic_archive_gives_the_same_data_and_version_as_the_folders(tmp_path: Path) -> None:
    unpacked = catalog.load_raw("cinic-10", root=unpack_cinic(tmp_path / "a"))
    write(tmp_path / "b" / "CINIC-10.tar.gz", ARCHIVE)
    packed = catalog.load_raw("cinic-10", root=tmp_path / "b")
    assert packed.version == unpacked.version
    np.testing.assert_array_equal(packed.train_x, unpacked.train_x)
    np.testing.assert_array_equal(packed.test_y, unpacked.test_y)
    assert "archive md5 matches" in packed.notes[0]


def test_cinic_grey_images_are_read_as_rgb(tmp_path: Path) -> None:
    grey = next(p for p in sorted(CINIC) if p.startswith("test/"))
    assert Image.open(io.BytesIO(encoded(grey))).mode == "L"
    raw = catalog.load_raw("cinic-10", root=unpack_cinic(tmp_path / "root"))
    assert raw.test_x.shape[1] == 3
    np.testing.assert_array_equal(raw.test_x[0], CINIC[grey].transpose(2, 0, 1))


def test_cinic_with_a_missing_image_is_incomplete(tmp_path: Path) -> None:
    root = unpack_cinic(tmp_path / "root")
    (root / "test" / "truck" / "n9_9.png").unlink()
    with pytest.raises(DataError, match=r"wrong number of images: test/ 9 \(expected 10\)"):
        catalog.load_raw("cinic-10", root=root)


def test_cinic_image_of_the_wrong_size_is_named(tmp_path: Path) -> None:
    root = unpack_cinic(tmp_path / "root")
    write(root / "valid" / "cat" / "n9_3.png", png(np.zeros((30, 32, 3), np.uint8)))
    with pytest.raises(DataError, match=r"valid/cat/n9_3.png: image of shape \(3, 30, 32\), expected \(3, 32, 32\)"):
        catalog.load_raw("cinic-10", root=root)


def test_cinic_corrupt_archive(tmp_path: Path) -> None:
    write(tmp_path / "root" / "CINIC-10.tar.gz", ARCHIVE[:-10])
    with pytest.raises(DataError, match=f"expected {CINIC10.archive.md5}"):
        catalog.load_raw("cinic-10", root=tmp_path / "root")


# ------------------------------------------------------------------------------------------------------------
# The generic image folder


def class_tree(root: Path, sizes: dict[str, int], *, shape: tuple[int, ...] = (12, 10)) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    images = {}
    for name, n in sizes.items():
        for i in range(n):
            image = rng.integers(0, 256, shape, dtype=np.uint8)
            write(root / name / f"{i:02d}.png", png(image))
            images[f"{name}/{i:02d}.png"] = image
    return images


def test_class_folders_with_a_fixed_test_split(tmp_path: Path) -> None:
    images = class_tree(tmp_path / "shapes", {"circle": 10, "square": 5})
    (tmp_path / "shapes" / "square" / "notes.txt").write_text("not an image")
    raw = catalog.load_raw("image-folder", root=tmp_path / "shapes")
    assert raw.classes == ("circle", "square")
    assert (len(raw.train_y), len(raw.test_y)) == (12, 3)  # 20% of 15, stratified: 2 circles and 1 square
    assert np.bincount(raw.test_y).tolist() == [2, 1]
    assert raw.train_x.shape[1:] == (1, 12, 10)  # grey images stay grey
    for x, y, i in zip(raw.train_x, raw.train_y, raw.train_index, strict=True):
        name = f"{raw.classes[y]}/{i if y == 0 else i - 10:02d}.png"  # index = position in the sorted list
        np.testing.assert_array_equal(x[0], images[name])
    all_x = np.concatenate([raw.train_x, raw.test_x])
    assert raw.mean[0] == pytest.approx(raw.train_x.mean() / 255, abs=1e-4) and raw.mean[0] != all_x.mean() / 255
    assert any("fixed stratified 20%" in note for note in raw.notes)


def test_train_and_test_folders_are_the_splits(tmp_path: Path) -> None:
    class_tree(tmp_path / "d" / "train", {"a": 3, "b": 2})
    class_tree(tmp_path / "d" / "test", {"a": 1, "b": 1})
    raw = catalog.load_raw("image-folder", root=tmp_path / "d", options={"class_names": ["b", "a"]})
    assert raw.classes == ("b", "a")
    assert raw.train_y.tolist() == [0, 0, 1, 1, 1] and raw.test_y.tolist() == [0, 1]


def test_mixed_sizes_need_image_size(tmp_path: Path) -> None:
    class_tree(tmp_path / "d", {"a": 2})
    class_tree(tmp_path / "d", {"b": 2}, shape=(8, 8, 3))
    with pytest.raises(DataError, match=r"a/00.png is 12×10, .*b/00.png is 8×8; set image_size"):
        catalog.load_raw("image-folder", root=tmp_path / "d")
    raw = catalog.load_raw("image-folder", root=tmp_path / "d", options={"image_size": [6, 5]})
    assert raw.train_x.shape[1:] == (3, 6, 5)  # grey images joined the colour ones as RGB
    assert any("repeated into RGB" in note for note in raw.notes)


MANIFEST = """id,gender,articleType,productDisplayName
15970,Men,Shirts,"Turtle Check Men Navy Blue Shirt"
39386,Men,Jeans,Peter England Men Party Blue Jeans
59263,Women,Watches,"Titan Women Silver Watch, analog"
21379,Men,Tshirts,Manchester United Men Solid Black Track Pants
53759,Men,Tshirts,Puma Men Grey T-shirt
1855,Men,Tshirts,Inkfruit Mens Chain Reaction T-shirt
30805,Men,Shirts,Fabindia Men Striped Green Shirt
26960,Women,Shirts,Jealous 21 Women Purple Shirt
"""


@pytest.fixture
def catalogue(tmp_path: Path) -> Path:
    """A product catalogue: images/<id>.jpg and styles.csv, in which two listed images are missing."""
    root = tmp_path / "products"
    write(root / "styles.csv", MANIFEST.encode())
    rng = np.random.default_rng(2)
    for pid in (15970, 39386, 59263, 53759, 1855, 26960):  # not 21379 and 30805
        write(root / "images" / f"{pid}.jpg", png(rng.integers(0, 256, (16, 12, 3), dtype=np.uint8), "JPEG"))
    return root


FASHION_OPTIONS = {
    "manifest": "styles.csv",
    "image_column": "id",
    "image_path": "images/{}.jpg",
    "label_column": "articleType",
    "mapping": {"Tshirts": "T-shirt/top", "Shirts": "Shirt", "Jeans": "Trouser"},
    "test_fraction": 0.25,
}


def test_manifest_maps_labels_and_counts_what_it_drops(catalogue: Path) -> None:
    raw = catalog.load_raw("image-folder", root=catalogue, options=FASHION_OPTIONS)
    assert raw.classes == ("T-shirt/top", "Shirt", "Trouser")  # in the mapping's order
    # Kept: rows 1 (Jeans), 4 and 5 (Tshirts), 0 and 7 (Shirts); row 2 is a watch, rows 3 and 6 have no image.
    by_row = dict(zip(np.concatenate([raw.train_index, raw.test_index]).tolist(),
                      np.concatenate([raw.train_y, raw.test_y]).tolist(), strict=True))
    assert by_row == {0: 1, 1: 2, 4: 0, 5: 0, 7: 1}
    note = next(n for n in raw.notes if n.startswith("manifest"))
    assert "8 rows; dropped 1 with a label not in the mapping, 0 with a class not in class_names, 2 whose " \
           "image file is missing; 5 images kept" in note
    assert raw.train_x.shape[1:] == (3, 16, 12)


def test_manifest_class_names_select_and_order(catalogue: Path) -> None:
    options = dict(FASHION_OPTIONS, class_names=["Shirt", "T-shirt/top"])
    raw = catalog.load_raw("image-folder", root=catalogue, options=options)
    assert raw.classes == ("Shirt", "T-shirt/top")
    assert sorted(np.concatenate([raw.train_y, raw.test_y]).tolist()) == [0, 0, 1, 1]
    assert any("1 with a class not in class_names" in n for n in raw.notes)


def test_load_resizes_any_folder_for_any_model(catalogue: Path) -> None:
    options = dict(FASHION_OPTIONS, resize=28, channels=1, test_fraction=0.5)  # both classes in both splits
    bundle = load("image-folder", root=str(catalogue), options=options, classes=[1, 0], val_fraction=0.0)
    assert bundle.input_shape == (1, 28, 28) and bundle.classes == ["Shirt", "T-shirt/top"]
    assert bundle.train.x.dtype == torch.uint8 and len(bundle.normalization.mean) == 1
    other = load("image-folder", root=str(catalogue), options=dict(options, resize=20), classes=[1, 0],
                 val_fraction=0.0)
    assert other.input_shape == (1, 20, 20) and other.version != bundle.version


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({**FASHION_OPTIONS, "label_column": "type"}, SpecError, "no column 'type'; its columns: id, gender"),
        ({"manifset": "styles.csv"}, SpecError, "unknown key 'manifset'. Did you mean 'manifest'"),
        ({"manifest": "nope.csv"}, DataError, "cannot read the manifest"),
        ({"image_path": "images/{id}.jpg"}, SpecError, "image_path must contain one {}"),
        ({"mapping": {"Shirts": 6}}, SpecError, "mapping values must be class names"),
        ({**FASHION_OPTIONS, "class_names": ["Shirt", "Dress"]}, DataError, r"no images of class \['Dress'\]"),
    ],
)
def test_bad_folder_options(catalogue: Path, options: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        catalog.load_raw("image-folder", root=catalogue, options=options)


def test_image_folder_needs_a_root_and_other_datasets_take_no_options() -> None:
    with pytest.raises(SpecError, match="set root"):
        catalog.load_raw("image-folder")
    with pytest.raises(SpecError, match="takes no options besides resize and channels, got manifest"):
        load("digits", options={"manifest": "x.csv"})


def test_decode_image_reports_unreadable_files() -> None:
    with pytest.raises(DataError, match="x.png: not a readable image"):
        decode_image(b"not a png", source="x.png")
    rgba = png(np.full((4, 4, 3), 200, np.uint8))
    assert decode_image(rgba, source="y", mode="L").shape == (1, 4, 4)
    assert decode_image(rgba, source="y", size=(2, 3)).shape == (3, 2, 3)
