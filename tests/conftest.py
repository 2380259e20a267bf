"""Shared pytest fixtures: the committed Fashion-MNIST sample and quiet TensorFlow logging."""

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pytest  # noqa: E402

FIXTURES = Path(__file__).resolve().parent / "fixtures"
FASHION_MNIST_SAMPLE_DIR = FIXTURES / "fashion-mnist-sample"


@pytest.fixture(scope="session")
def fashion_mnist_sample():
    """The committed 5,000/1,000 Fashion-MNIST sample as a `cnn_zoo.datasets.ImageDataset`."""
    from cnn_zoo.datasets import load_idx_directory

    return load_idx_directory(FASHION_MNIST_SAMPLE_DIR, name="fashion-mnist sample")
