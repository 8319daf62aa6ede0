"""Image datasets the user has on local disk: an ImageFolder tree or CIFAR-10 pickle batches."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from growsearch.data._base import (
    Dataset,
    register_dataset,
    standardise,
    stratified_split,
    to_dataset,
)
from growsearch.exceptions import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
CIFAR_DIR = "cifar-10-batches-py"


@register_dataset("imagefolder")
def load_imagefolder(root: str | None) -> Dataset:
    """Load images from a local folder; nothing is downloaded.

    Three layouts are recognised, tried in this order:

    1. CIFAR-10's python version: ``root/cifar-10-batches-py/{data_batch_1..5, test_batch}``
       (or those files directly in ``root``). These are Python pickles, the format CIFAR-10
       is distributed in; unpickling can run code, so they are read only from the user's own
       local path, never fetched.
    2. Split folders in torchvision's ImageFolder layout: ``root/train/<class>/*.png`` and
       ``root/test/<class>/*.png``, with an optional ``root/val/<class>/...``.
    3. One ImageFolder tree ``root/<class>/*.png``, split 70/15/15 into train/val/test.

    Without a validation set on disk, a fixed, stratified 10% of the training images is held
    out. Images are converted to RGB (``input_shape`` is ``(3, H, W)``) and must all have the
    same size; pixels are scaled to [0, 1] and standardised per channel with training
    statistics. Class indices follow the sorted class-folder names, as in torchvision.

    Args:
        root: The local folder.

    Returns:
        The dataset, named ``"imagefolder"``.

    Raises:
        DataError: ``root`` is missing or not a folder, or its content cannot be read.
    """
    if root is None:
        raise DataError("imagefolder: a root folder is required (root=...)")
    path = Path(root).expanduser()
    if not path.exists():
        raise DataError(f"imagefolder: root '{root}' does not exist")
    if not path.is_dir():
        raise DataError(f"imagefolder: root '{root}' is not a folder")

    for cifar in (path / CIFAR_DIR, path):
        if (cifar / "test_batch").is_file():
            return _load_cifar(cifar)
    if (path / "train").is_dir() and (path / "test").is_dir():
        return _load_split_folders(path)
    return _load_single_folder(path)


def _load_cifar(folder: Path) -> Dataset:
    """Read CIFAR-10 python batches; val is a fixed 10% of the training batches."""
    batches = sorted(folder.glob("data_batch_*"), key=lambda p: p.name)
    if not batches:
        raise DataError(f"imagefolder: '{folder}' has a test_batch but no data_batch_* files")
    x, y = zip(*(_read_cifar_batch(p) for p in batches))
    x_train, y_train = np.concatenate(x), np.concatenate(y)
    x_test, y_test = _read_cifar_batch(folder / "test_batch")

    num_classes = int(max(y_train.max(), y_test.max())) + 1
    meta = folder / "batches.meta"
    if meta.is_file():
        num_classes = max(num_classes, len(_unpickle(meta).get(b"label_names", ())))

    val, train = stratified_split(y_train, (max(1, len(y_train) // 10), -1))
    xs = standardise(x_train[train], x_train[val], x_test)
    return to_dataset("imagefolder", xs, (y_train[train], y_train[val], y_test), num_classes)


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR batch as float32 images in [0, 1], (N, 3, 32, 32), and int64 labels."""
    batch = _unpickle(path)
    if b"data" not in batch or b"labels" not in batch:
        raise DataError(f"imagefolder: '{path}' is not a CIFAR-10 batch (no data/labels)")
    data = np.asarray(batch[b"data"], dtype=np.uint8)
    labels = np.asarray(batch[b"labels"], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
        raise DataError(f"imagefolder: '{path}' has data of shape {data.shape}, expected (N, 3072)")
    return data.reshape(-1, 3, 32, 32).astype(np.float32) / 255.0, labels


def _unpickle(path: Path) -> dict:
    """Unpickle a CIFAR file (bytes keys, as CIFAR-10 is distributed)."""
    try:
        with path.open("rb") as f:
            obj = pickle.load(f, encoding="bytes")
    except (OSError, pickle.UnpicklingError, EOFError, ValueError) as e:
        raise DataError(f"imagefolder: cannot read '{path}': {e}") from e
    if not isinstance(obj, dict):
        raise DataError(f"imagefolder: '{path}' does not hold a dict")
    return obj


def _load_split_folders(root: Path) -> Dataset:
    """``root/{train,val?,test}/<class>/*``; val is carved from train when absent."""
    classes = _class_names(root / "train")
    x_train, y_train = _read_folder(root / "train", classes)
    x_test, y_test = _read_folder(root / "test", classes)
    if (root / "val").is_dir():
        x_val, y_val = _read_folder(root / "val", classes)
    else:
        val, train = stratified_split(y_train, (max(1, len(y_train) // 10), -1))
        x_train, y_train, x_val, y_val = x_train[train], y_train[train], x_train[val], y_train[val]
    _check_same_size(root, x_train, x_val, x_test)
    xs = standardise(x_train, x_val, x_test)
    return to_dataset("imagefolder", xs, (y_train, y_val, y_test), len(classes))


def _load_single_folder(root: Path) -> Dataset:
    """``root/<class>/*``, split 70/15/15 with a fixed, stratified split."""
    classes = _class_names(root)
    x, y = _read_folder(root, classes)
    n_held = round(0.15 * len(y))
    if n_held < 1:
        raise DataError(f"imagefolder: '{root}' has {len(y)} images, too few to split")
    test, val, train = stratified_split(y, (n_held, n_held, -1))
    xs = standardise(x[train], x[val], x[test])
    return to_dataset("imagefolder", xs, (y[train], y[val], y[test]), len(classes))


def _class_names(folder: Path) -> list[str]:
    """Sorted sub-folder names; each is one class."""
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(
            f"imagefolder: '{folder}' has no class sub-folders; expected <root>/<class>/<image>"
        )
    return classes


def _read_folder(folder: Path, classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """All images under ``folder/<class>/`` as float32 (N, 3, H, W) in [0, 1], plus labels."""
    unknown = sorted(set(_class_names(folder)) - set(classes))
    if unknown:
        raise DataError(f"imagefolder: '{folder}' has classes not in the training set: {unknown}")
    images, labels = [], []
    for label, name in enumerate(classes):
        class_dir = folder / name
        files = sorted(p for p in class_dir.glob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
        images += [_read_image(p) for p in files]
        labels += [label] * len(files)
        if images and images[-1].shape != images[0].shape:
            raise DataError(
                f"imagefolder: images under '{folder}' differ in size "
                f"({images[0].shape[:2]} and {images[-1].shape[:2]} in '{class_dir}'); "
                "resize them to one size first"
            )
    if not images:
        raise DataError(f"imagefolder: no images ({', '.join(IMAGE_EXTENSIONS)}) under '{folder}'")
    x = np.stack(images).transpose(0, 3, 1, 2)  # (N, H, W, 3) -> (N, 3, H, W)
    return x.astype(np.float32) / 255.0, np.asarray(labels, dtype=np.int64)


def _read_image(path: Path) -> np.ndarray:
    """One image as uint8 (H, W, 3)."""
    from PIL import Image, UnidentifiedImageError  # pillow ships with matplotlib

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, UnidentifiedImageError) as e:
        raise DataError(f"imagefolder: cannot read image '{path}': {e}") from e


def _check_same_size(root: Path, *splits: np.ndarray) -> None:
    """The splits are standardised with one set of statistics and fed to one model."""
    shapes = {tuple(x.shape[1:]) for x in splits}
    if len(shapes) > 1:
        raise DataError(
            f"imagefolder: images under '{root}' differ in size between train/val/test "
            f"({sorted(shapes)}); resize them to one size first"
        )
