"""Keras models with 1xN-masked conv kernels, converted once per test session (conversion is slow)."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from functools import cache
from pathlib import Path

import numpy as np

from tests.tflite_delegate.delegate_test_support import block_mask

_SESSION_DIRECTORY = Path(tempfile.mkdtemp(prefix="tflite_delegate_tests_"))
atexit.register(shutil.rmtree, _SESSION_DIRECTORY, ignore_errors=True)


def apply_block_masks(model, block_n: int, sparsity: float, seed: int, skip=("stem",)) -> dict:
    """Zero random 1xN blocks (uniform per group, single taps) in every Conv2D kernel except
    those whose name contains an entry of `skip`; randomise BatchNorm statistics so folding the
    BN into the conv is not the identity. Returns {layer name: OHWI keep mask}."""
    import keras

    rng = np.random.default_rng(seed)
    masks = {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, variance = layer.get_weights()
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, gamma.shape).astype(np.float32),
                    rng.uniform(-0.2, 0.2, beta.shape).astype(np.float32),
                    rng.uniform(-0.2, 0.2, mean.shape).astype(np.float32),
                    rng.uniform(0.5, 1.5, variance.shape).astype(np.float32),
                ]
            )
        if type(layer) is not keras.layers.Conv2D or any(name in layer.name for name in skip):
            continue
        weights = layer.get_weights()
        kernel_h, kernel_w, in_channels, out_channels = weights[0].shape
        mask = block_mask(
            out_channels, (kernel_h, kernel_w), in_channels, block_n, sparsity, True, False, rng
        )
        weights[0] = weights[0] * mask.transpose(1, 2, 3, 0)
        layer.set_weights(weights)
        masks[layer.name] = mask
    return masks


def session_tflite(model) -> bytes:
    """`model` converted to float32 .tflite bytes (the file stays in the session directory under
    the model's name)."""
    import tflite_delegate

    path = _SESSION_DIRECTORY / f"{model.name}.tflite"
    tflite_delegate.convert(model, path)
    return path.read_bytes()


def masked_tflite(model, seed: int) -> bytes:
    """`model` with 1x16 blocks at 50 % in every conv (stems included), converted to float32
    .tflite bytes (session_tflite)."""
    apply_block_masks(model, block_n=16, sparsity=0.5, seed=seed, skip=())
    return session_tflite(model)


@cache
def converted_zoo_model(name: str, weights: str = "float32") -> tuple[Path, object, dict]:
    """(tflite path, Keras model, masks) for `cnn_zoo.models.<name>` with 1x16 blocks at 75 %."""
    import cnn_zoo.models
    import tflite_delegate

    model = getattr(cnn_zoo.models, name)(seed=5)
    masks = apply_block_masks(model, block_n=16, sparsity=0.75, seed=6)
    path = _SESSION_DIRECTORY / f"{name}_{weights}.tflite"
    tflite_delegate.convert(model, path, weights=weights)
    return path, model, masks


@cache
def converted_small_model(weights: str = "float32") -> tuple[Path, object, dict]:
    """A 3-conv Keras model (one dense stem, two 1x8 sparse convs, a depthwise), converted once."""
    import keras

    import tflite_delegate

    keras.utils.set_random_seed(3)
    inputs = keras.Input((12, 10, 3), batch_size=1, name="image")
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="stem")(inputs)
    x = keras.layers.Conv2D(24, 3, strides=2, activation="relu6", name="sparse_a")(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", name="depthwise")(x)
    x = keras.layers.Conv2D(8, 1, use_bias=False, name="sparse_b")(x)
    model = keras.Model(inputs, x, name="small")
    masks = apply_block_masks(model, block_n=8, sparsity=0.6, seed=4)
    path = _SESSION_DIRECTORY / f"small_{weights}.tflite"
    tflite_delegate.convert(model, path, weights=weights)
    return path, model, masks
