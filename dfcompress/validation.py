"""Argument checks at the public boundary; every error names the argument."""

from __future__ import annotations

import math

import keras
import numpy as np

from dfcompress import _keras_compat

STRIP_FIRST = "strip it first: keras_subp.strip_subp(model)"


def _is_keras_subp_layer(layer) -> bool:
    # Checked by module name so that dfcompress never imports keras_subp.
    for cls in type(layer).__mro__:
        if cls.__module__.split(".")[0] == "keras_subp":
            return True
    return False


def check_model(model, argument: str = "model") -> None:
    """A built Sequential or Functional keras.Model without keras_subp wrappers or nested models."""
    if not isinstance(model, keras.Model):
        raise TypeError(f"{argument} must be a keras.Model, got {type(model).__name__}")
    if not isinstance(model, keras.Sequential) and not _keras_compat.is_functional(model):
        raise ValueError(
            f"{argument} must be a Sequential or Functional model; subclassed models "
            f"({type(model).__name__}) have no inspectable layer graph"
        )
    if not model.built or not model.inputs:
        raise ValueError(
            f"{argument} is not built: give it a keras.Input or call it once on data before compressing"
        )
    for layer in model.layers:
        if _is_keras_subp_layer(layer):
            raise ValueError(
                f"{argument} contains the keras_subp wrapper {layer.name!r} "
                f"({type(layer).__name__}); {STRIP_FIRST}"
            )
        if isinstance(layer, keras.Model):
            raise ValueError(
                f"{argument} contains the nested model {layer.name!r}; nested models are not "
                "supported: build the model from its layers directly"
            )
        if isinstance(layer, keras.layers.Wrapper):
            raise ValueError(
                f"{argument} contains the wrapper layer {layer.name!r} ({type(layer).__name__}); "
                "unwrap it first"
            )


def check_bits_argument(bits, argument: str, minimum: int = 1, maximum: int = 16) -> int:
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)):
        raise TypeError(f"{argument} must be an int, got {type(bits).__name__} {bits!r}")
    if not minimum <= bits <= maximum:
        raise ValueError(f"{argument} must be in {minimum}..{maximum}, got {bits}")
    return int(bits)


def check_ratio(value, argument: str, closed: bool = False) -> float:
    """A number in [0, 1) ([0, 1] with `closed`)."""
    interval = "[0, 1]" if closed else "[0, 1)"
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"{argument} must be a number in {interval}, got {type(value).__name__}")
    value = float(value)
    if not (0.0 <= value <= 1.0 if closed else 0.0 <= value < 1.0):
        raise ValueError(f"{argument} must be in {interval}, got {value}")
    return value


def check_non_negative(value, argument: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"{argument} must be a number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{argument} must be a finite number >= 0, got {value}")
    return value


def check_choice(value, argument: str, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{argument} must be one of {choices}, got {value!r}")
    return value
