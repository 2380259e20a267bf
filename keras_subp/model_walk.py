"""Walking and cloning Sequential/Functional models layer by layer, keeping weights."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import keras

from keras_subp.block_mask_wrapper import BlockMaskWrapper
from keras_subp.keras_compat import is_functional_model


def require_graph_model(model) -> None:
    """Raise `ValueError` unless `model` is a Sequential or Functional Keras model."""
    if isinstance(model, keras.Sequential):
        return
    if is_functional_model(model):
        return  # a Functional model (including subclasses built functionally)
    raise ValueError(
        f"Expected a keras.Sequential or Functional model (or a single layer), got "
        f"{type(model).__name__}. Subclassed models cannot be cloned: wrap their Conv2D layers "
        "yourself, e.g. self.conv = keras_subp.prune_subp(keras.layers.Conv2D(...), n=16)."
    )


def iter_leaf_layers(model) -> Iterator[keras.layers.Layer]:
    """Yield the model's layers in order (topological for Functional), entering nested models."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from iter_leaf_layers(layer)
        else:
            yield layer


def clone_with_weights(
    model, clone_layer: Callable[[keras.layers.Layer], keras.layers.Layer]
) -> keras.Model:
    """Clone `model` (recursively) with `clone_layer` and copy every original weight across.

    `clone_layer(layer)` returns the replacement layer; when it returns a wrapper whose
    `.layer` is a fresh copy of the original, the original weights go to that inner layer; when
    it replaces a `BlockMaskWrapper` by a plain layer, that layer gets the wrapper's stripped
    weights (W*M). Layers the function returns unchanged in type get the original's weights
    directly.
    """
    pairs: list[tuple[keras.layers.Layer, keras.layers.Layer]] = []

    def recording_clone(layer):
        new_layer = clone_layer(layer)
        pairs.append((layer, new_layer))
        return new_layer

    cloned = keras.models.clone_model(model, clone_function=recording_clone, recursive=True)
    for original, new_layer in pairs:
        weights = original.get_weights()
        if not weights:
            continue
        target = new_layer
        if isinstance(new_layer, keras.layers.Wrapper) and not isinstance(
            original, keras.layers.Wrapper
        ):
            target = new_layer.layer
        elif isinstance(original, BlockMaskWrapper) and not isinstance(
            new_layer, keras.layers.Wrapper
        ):
            weights = original.stripped_weights()
        target.set_weights(weights)
    return cloned


def copy_layer(layer: keras.layers.Layer) -> keras.layers.Layer:
    """A fresh, unbuilt layer with the same configuration."""
    return layer.__class__.from_config(layer.get_config())
