"""Fixtures for the foundation tests."""

import pytest

from cnn_zoo import datasets


@pytest.fixture
def isolated_locations(tmp_path, monkeypatch):
    """Point every well-known location into tmp_path so the machine's real copies do not interfere."""
    monkeypatch.setattr(datasets, "DEBIAN_FASHION_MNIST_DIR", tmp_path / "debian")
    monkeypatch.setattr(datasets, "KERAS_DATASETS_DIR", tmp_path / "keras")
    monkeypatch.setattr(datasets, "TFDS_DATA_DIR", tmp_path / "tfds")
    monkeypatch.setattr(datasets, "CACHE_DIR", tmp_path / "cache")
    monkeypatch.setattr(datasets, "REPOSITORY_ROOT", tmp_path / "repo")
    monkeypatch.setattr(datasets, "NPM_GLOBAL_ROOTS", (tmp_path / "npm-global",))
    monkeypatch.chdir(tmp_path)
    return tmp_path
