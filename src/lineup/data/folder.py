"""Images stored one per file: class folders (``<root>/<class>/*.png``), a CSV manifest, CINIC-10's archive.

``decode_image`` and ``class_folder_files`` are the pure pieces; ``FolderArchiveSource`` reads a published
dataset of class folders (CINIC-10) from its archive or unpacked, and ``ImageFolderSource`` reads any folder
of images the user points ``root`` at, labelled by its subfolders or by a manifest.
"""

from __future__ import annotations

import csv
import io
import tarfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

import numpy as np
from PIL import Image, UnidentifiedImageError

from lineup._schema import opt, parse_section
from lineup.data._archive import ArchiveSource
from lineup.data._csv_source import FIXED_TEST_SEED
from lineup.data._source import RawDataset, Source, content_version, in_file_order
from lineup.data.splits import stratified_split
from lineup.data.transform import channel_stats
from lineup.errors import DataError, SpecError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")

# Pillow modes that hold one grey value per pixel; everything else is read as RGB (an alpha channel dropped).
_GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")


def decode_image(
    data: bytes, *, source: str, mode: str | None = None, size: Sequence[int] | None = None
) -> np.ndarray:
    """Decode one image file into a ``(C, H, W)`` uint8 array.

    Args:
        data: the file's bytes (PNG, JPEG or any format Pillow reads).
        source: where the bytes come from, named in errors.
        mode: ``"L"`` (grey, C = 1) or ``"RGB"`` (C = 3); ``None`` keeps grey images grey and reads the rest
            as RGB.
        size: ``(height, width)`` to resize to (Pillow's bilinear filter, which is antialiased when shrinking);
            ``None`` keeps the image's own size.

    Raises:
        DataError: the bytes are not an image Pillow can read.
    """
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            target = mode or ("L" if image.mode in _GREY_MODES else "RGB")
            converted = image.convert(target)
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise DataError(f"{source}: not a readable image ({e})") from None
    if size is not None and converted.size != (size[1], size[0]):
        converted = converted.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    array = np.asarray(converted, dtype=np.uint8)
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)  # (H, W, C) -> (C, H, W)


def stack_images(images: Sequence[np.ndarray], sources: Sequence[str]) -> tuple[np.ndarray, bool]:
    """``(N, C, H, W)`` from ``(C, H, W)`` images; grey ones are repeated into RGB when any image is in colour.

    Returns:
        The stacked images, and whether some grey images were made RGB.

    Raises:
        DataError: two images differ in size (the message names both and the option that resizes them).
    """
    if not images:
        raise DataError("no images to read")
    first = images[0].shape[1:]
    for image, source in zip(images, sources, strict=True):
        if image.shape[1:] != first:
            raise DataError(
                f"images differ in size: {sources[0]} is {first[0]}×{first[1]}, {source} is "
                f"{image.shape[1]}×{image.shape[2]}; set image_size = [height, width] in [data.options]"
            )
    channels = max(image.shape[0] for image in images)
    mixed = any(image.shape[0] != channels for image in images)
    out = np.empty((len(images), channels, *first), dtype=np.uint8)
    for i, image in enumerate(images):
        out[i] = image  # a (1, H, W) grey image broadcasts into (3, H, W)
    return out, mixed


def class_folder_files(directory: Path, classes: Sequence[str]) -> list[tuple[Path, int]]:
    """``(path, label)`` of every image in ``directory/<class>/``, by label and then by file name.

    Raises:
        DataError: a class has no folder.
    """
    files = []
    for label, name in enumerate(classes):
        folder = directory / name
        if not folder.is_dir():
            raise DataError(f"{directory}: no folder {name!r} for class {label}")
        images = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        files += [(p, label) for p in images]
    return files


class FolderArchiveSource(ArchiveSource):
    """A published dataset of class folders in one archive: ``<split folder>/<class>/<image>`` (CINIC-10).

    Found as the archive, read member by member without unpacking it, or unpacked, with its split folders
    in the directory. Each of the lineup splits ``train`` and ``test`` is read from one or more of the
    dataset's folders, in the declared order; within a folder the images go by class and then by file name,
    and ``index`` counts across the folders in that order. Unpacked files have no published checksums: the
    number of images in each folder and their size are checked instead.
    """

    folders: ClassVar[dict[str, tuple[str, ...]]]  # lineup split ("train", "test") -> the dataset's folders
    counts: ClassVar[dict[str, int]]  # images in each folder
    image_shape: ClassVar[tuple[int, int, int]]  # (C, H, W) of every image

    def _is_unpacked(self, directory: Path) -> bool:
        return all((directory / folder).is_dir() for folders in self.folders.values() for folder in folders)

    def _read_unpacked(self, directory: Path) -> RawDataset:
        def files() -> Iterable[tuple[str, int, str, bytes]]:
            for folders in self.folders.values():
                for folder in folders:
                    for path, label in class_folder_files(directory / folder, self.classes):
                        yield folder, label, path.name, path.read_bytes()

        return self._assemble(directory, files(), how="unpacked; image counts and sizes checked")

    def _read_archive(self, path: Path) -> RawDataset:
        wanted = {folder for folders in self.folders.values() for folder in folders}
        labels = {name: label for label, name in enumerate(self.classes)}

        def members() -> Iterable[tuple[str, int, str, bytes]]:
            # Streamed ("r|gz"): one pass over the archive, members read in the order they are stored.
            with tarfile.open(path, "r|gz") as tar:
                for member in tar:
                    inside = PurePosixPath(member.name)
                    if not member.isfile() or len(inside.parts) < 3 or inside.suffix.lower() not in IMAGE_SUFFIXES:
                        continue
                    folder, name, filename = inside.parts[-3:]  # a leading directory, if any, is ignored
                    if folder in wanted and name in labels:
                        f = tar.extractfile(member)
                        assert f is not None  # a regular file
                        yield folder, labels[name], filename, f.read()

        return self._assemble(path, members(), how="archive md5 matches")

    def _assemble(self, where: Path, files: Iterable[tuple[str, int, str, bytes]], *, how: str) -> RawDataset:
        by_folder: dict[str, list[tuple[int, str, np.ndarray]]] = {f: [] for fs in self.folders.values() for f in fs}
        mode = "L" if self.image_shape[0] == 1 else "RGB"
        for folder, label, filename, data in files:
            source = f"{where}: {folder}/{self.classes[label]}/{filename}"
            image = decode_image(data, source=source, mode=mode)
            if image.shape != self.image_shape:
                raise DataError(f"{source}: image of shape {image.shape}, expected {self.image_shape}")
            by_folder[folder].append((label, filename, image))
        wrong = {f: len(items) for f, items in by_folder.items() if len(items) != self.counts[f]}
        if wrong:
            found = ", ".join(f"{f}/ {n:,} (expected {self.counts[f]:,})" for f, n in wrong.items())
            raise DataError(f"{where}: wrong number of images: {found}; the data is incomplete or another version")
        arrays = {}
        for split, folders in self.folders.items():
            items = [item for f in folders for item in sorted(by_folder[f], key=lambda t: t[:2])]
            arrays[split] = (np.stack([t[2] for t in items]), np.array([t[0] for t in items], dtype=np.int64))
        (train_x, train_y), (test_x, test_y) = arrays["train"], arrays["test"]
        parts = [a.tobytes() for a in (train_x, train_y.astype("<i8"), test_x, test_y.astype("<i8"))]
        described = "; ".join(f"{split} = {' + '.join(f'{f}/' for f in fs)}" for split, fs in self.folders.items())
        return in_file_order(
            self.name,
            arrays["train"],
            arrays["test"],
            classes=self.classes,
            mean=self.mean,
            std=self.std,
            # The decoded pixels and labels: the same whether read from the archive or unpacked.
            version=content_version(self.name, parts),
            notes=(
                f"{self.name}: read from {where} ({how})",
                f"splits: {described} ({len(train_y):,} and {len(test_y):,} images); index counts through the "
                "folders in that order, by class and file name",
            ),
        )


@dataclass(frozen=True)
class FolderOptions:
    """``[data.options]`` of the ``image-folder`` dataset (besides ``resize`` and ``channels``)."""

    manifest: str | None = opt(
        None, "CSV file, relative to root, with a row per image; absent: labels are the folders root/<class>/"
    )
    image_column: str = opt("image", "manifest column naming each image")
    image_path: str = opt("{}", "an image's path relative to root, {} standing for its image_column value")
    label_column: str = opt("label", "manifest column holding each image's label")
    mapping: dict[str, Any] = opt({}, "label -> class name; rows whose label is not a key are dropped")
    class_names: list[str] | None = opt(None, "classes to keep, in label order (default: all, see the docs)")
    image_size: list[int] | None = opt(None, "[height, width] the images are decoded at; needed if sizes differ")
    test_fraction: float = opt(0.2, "share held out as the test split when there is no test/ folder", gt=0.0, max=0.5)


class ImageFolderSource(Source):
    """Any folder of images, given as ``root``, labelled by its subfolders or by a CSV manifest.

    Without a manifest, ``root/<class>/*.png|jpg|jpeg`` (or ``root/train/<class>/...`` and
    ``root/test/<class>/...``, which then are the splits). With one, each row names an image (its path is
    ``image_path`` with ``{}`` replaced by the row's ``image_column`` value) and its label
    (``label_column``); ``mapping`` turns labels into class names, e.g. a product catalogue's
    ``articleType`` "Tshirts" into Fashion-MNIST's "T-shirt/top". Rows are dropped, and counted in the notes,
    when their label is not in the mapping, their class is not in ``class_names`` or their image file is
    missing.

    The classes are ``class_names`` in that order, else the mapping's class names in the order they first
    appear, else the sorted folder names or labels. Without test folders a fixed stratified share
    (``test_fraction``, seed 0) is the test split. Grey images stay grey unless some are in colour; the
    normalisation constants are measured on the training split. ``index`` is the row of the manifest
    (counting from 0 after the header) or the position in the sorted file list.

    Args:
        root: the folder; required.
        options: the ``[data.options]`` table (see ``FolderOptions``).
    """

    name = "image-folder"
    classes: tuple[str, ...] = ()  # set per folder, when it is read
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()

    def __init__(self, root: str | Path | None = None, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(root)
        self.options = parse_section(FolderOptions, dict(options or {}), key="data.options")
        bad = [k for k, v in self.options.mapping.items() if not isinstance(v, str)]
        if bad:
            raise SpecError(f"mapping values must be class names (strings); {bad[0]!r} is not", key="data.options")
        size = self.options.image_size
        if size is not None and (len(size) != 2 or min(size) < 1):
            raise SpecError(f"image_size must be [height, width], got {size}", key="data.options.image_size")
        try:
            self.options.image_path.format("name")
        except (KeyError, IndexError, ValueError):
            raise SpecError(
                f"image_path must contain one {{}} for the image_column value, got {self.options.image_path!r}",
                key="data.options.image_path",
            ) from None

    def locate(self) -> Path | None:
        return self.root if self.root is not None and self.root.is_dir() else None

    def check(self) -> list[str]:
        raw = self.load()
        counts = np.bincount(np.concatenate([raw.train_y, raw.test_y]), minlength=len(raw.classes))
        per_class = ", ".join(f"{c}: {n:,}" for c, n in zip(raw.classes, counts, strict=True))
        return [*raw.notes, f"images per class: {per_class}", f"version {raw.version}"]

    def fetch(self) -> Path:
        self.check()  # nothing to download: the folder is the user's
        assert self.root is not None
        return self.root

    def load(self, *, download: bool = True) -> RawDataset:
        if self.root is None:
            raise SpecError('dataset "image-folder" reads the folder given as root: set root = "path/to/images"')
        if not self.root.is_dir():
            raise DataError(f"image-folder: {self.root} is not a directory")
        o = self.options
        notes = [f"image-folder: {self.root}"]
        if o.manifest is not None:
            files, labels, index, classes = self._from_manifest(notes)
            parts = {"all": (files, labels, index)}
        elif (self.root / "train").is_dir() and (self.root / "test").is_dir():
            classes = self._classes(sorted(p.name for p in (self.root / "train").iterdir() if p.is_dir()))
            parts = {}
            for split in ("train", "test"):
                listed = class_folder_files(self.root / split, classes)
                parts[split] = ([p for p, _ in listed], [y for _, y in listed], list(range(len(listed))))
            notes.append("splits: the train/ and test/ folders")
        else:
            classes = self._classes(sorted(p.name for p in self.root.iterdir() if p.is_dir()))
            listed = class_folder_files(self.root, classes)
            parts = {"all": ([p for p, _ in listed], [y for _, y in listed], list(range(len(listed))))}
        decoded = {split: self._decode(files) for split, (files, _, _) in parts.items()}
        if any(mixed for _, mixed in decoded.values()):
            notes.append("some images are grey and some in colour: the grey ones were repeated into RGB")
        arrays = {
            split: (decoded[split][0], np.asarray(y, dtype=np.int64), np.asarray(i, dtype=np.int64))
            for split, (_, y, i) in parts.items()
        }
        if "all" in arrays:
            x, y, i = arrays.pop("all")
            train, test = stratified_split(y, val_fraction=o.test_fraction, seed=FIXED_TEST_SEED)
            arrays = {"train": (x[train], y[train], i[train]), "test": (x[test], y[test], i[test])}
            notes.append(
                f"no test/ folder: a fixed stratified {o.test_fraction:.0%} of the {len(y):,} images (seed "
                f"{FIXED_TEST_SEED}) is the test split ({len(test):,} images), the rest the training split"
            )
        (train_x, train_y, train_i), (test_x, test_y, test_i) = arrays["train"], arrays["test"]
        if train_x.shape[1:] != test_x.shape[1:]:
            raise DataError(f"image-folder: training images are {train_x.shape[1:]}, test images {test_x.shape[1:]}")
        mean, std = channel_stats(train_x)
        notes.append(f"normalisation measured on the training split: mean {mean}, std {std}")
        arrays_le = (train_x, train_y, test_x, test_y, train_i, test_i)
        # Little-endian bytes, so that the version does not depend on the machine; the class names give the
        # labels their meaning.
        contents = [a.astype(a.dtype.newbyteorder("<")).tobytes() for a in arrays_le]
        version = content_version("image-folder", [*contents, "\n".join(classes).encode()])
        return RawDataset(
            "image-folder",
            *arrays_le,
            classes=tuple(classes),
            mean=mean,
            std=std,
            version=version,
            notes=tuple(notes),
        )

    def _classes(self, found: list[str]) -> list[str]:
        wanted = self.options.class_names
        if wanted is None:
            return found
        missing = [c for c in wanted if c not in found]
        if missing:
            raise DataError(f"image-folder: {self.root} has no class folder for {missing}; it has {found}")
        return list(wanted)

    def _from_manifest(self, notes: list[str]) -> tuple[list[Path], list[int], list[int], list[str]]:
        o = self.options
        assert o.manifest is not None and self.root is not None
        path = self.root / o.manifest
        try:
            text = path.read_text(encoding="utf-8-sig")  # -sig: spreadsheet exports often start with a BOM
        except OSError as e:
            raise DataError(f"image-folder: cannot read the manifest {path}: {e.strerror}") from None
        reader = csv.DictReader(io.StringIO(text))
        columns = reader.fieldnames or []
        for option, column in (("image_column", o.image_column), ("label_column", o.label_column)):
            if column not in columns:
                raise SpecError(
                    f"the manifest {path} has no column {column!r}; its columns: {', '.join(columns)}",
                    key=f"data.options.{option}",
                )
        rows = [(i, row[o.image_column].strip(), row[o.label_column].strip()) for i, row in enumerate(reader)]
        mapped = [(i, image, o.mapping.get(label) if o.mapping else label) for i, image, label in rows]
        unmapped = sum(c is None for _, _, c in mapped)
        if o.class_names is not None:
            classes = list(o.class_names)
        else:
            seen = dict.fromkeys(o.mapping.values()) if o.mapping else dict.fromkeys(sorted({c for _, _, c in mapped}))
            classes = list(seen)
        label_of = {c: k for k, c in enumerate(classes)}
        excluded = sum(c is not None and c not in label_of for _, _, c in mapped)
        kept = [(i, self.root / o.image_path.format(image), label_of[c]) for i, image, c in mapped if c in label_of]
        present = [(i, p, y) for i, p, y in kept if p.is_file()]
        missing = len(kept) - len(present)
        found = {y for _, _, y in present}
        empty = [c for k, c in enumerate(classes) if k not in found]
        if empty:
            raise DataError(f"image-folder: no images of class {empty} in {path}; remove them from class_names")
        notes.append(
            f"manifest {o.manifest}: {len(rows):,} rows; dropped {unmapped:,} with a label not in the mapping, "
            f"{excluded:,} with a class not in class_names, {missing:,} whose image file is missing; "
            f"{len(present):,} images kept"
        )
        return [p for _, p, _ in present], [y for _, _, y in present], [i for i, _, _ in present], classes

    def _decode(self, files: Sequence[Path]) -> tuple[np.ndarray, bool]:
        size = self.options.image_size
        images = [decode_image(p.read_bytes(), source=str(p), size=size) for p in files]
        return stack_images(images, [str(p) for p in files])
