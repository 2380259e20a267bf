"""`strip_subp`: replace SUBP (and 1xN baseline) wrappers by plain layers with W*M baked in."""

from __future__ import annotations

import warnings

import keras

from keras_subp.block_mask_wrapper import BlockMaskWrapper
from keras_subp.model_walk import (
    clone_with_weights,
    copy_layer,
    iter_leaf_layers,
    require_graph_model,
)
from keras_subp.wrapper import SUBPWrapper


def strip_subp(model):
    """Return a copy of `model` whose SUBP/1xN wrappers are plain Conv2D layers.

    Each wrapped kernel (of any `BlockMaskWrapper`) becomes W*M: pruned blocks hold exact zeros
    (+0.0), so the model is ready for TFLite conversion; after SUBP every output group keeps the
    same number of non-zero blocks. Layer names are the original Conv2D names; the result is not compiled.
    Given a single wrapper, returns the stripped Conv2D (built, with W*M weights).

    Warns (`UserWarning`, one for all layers) when a SUBP layer's mask has not reached its
    target sparsity yet: never updated, or its schedule not at its end (r < 1).
    """
    _warn_about_unfinished_schedules(
        [model] if isinstance(model, BlockMaskWrapper) else _leaf_wrappers(model)
    )
    if not isinstance(model, keras.Model):
        if isinstance(model, BlockMaskWrapper):
            layer = copy_layer(model.layer)
            if model.built:
                layer.build(_input_shape_of(model))
                layer.set_weights(model.stripped_weights())
            return layer
        raise ValueError(
            f"Expected a Keras model or a keras_subp block-mask wrapper, got {type(model).__name__}."
        )
    require_graph_model(model)

    def clone_layer(layer):
        if isinstance(layer, BlockMaskWrapper):
            return copy_layer(layer.layer)
        return copy_layer(layer)

    return clone_with_weights(model, clone_layer)


def _leaf_wrappers(model) -> list[BlockMaskWrapper]:
    if not isinstance(model, keras.Model):
        return []
    return [layer for layer in iter_leaf_layers(model) if isinstance(layer, BlockMaskWrapper)]


def _warn_about_unfinished_schedules(wrappers) -> None:
    unfinished = []
    for wrapper in wrappers:
        if not isinstance(wrapper, SUBPWrapper) or not wrapper.built:
            continue  # the 1xN baseline's masks are final from the start
        epoch = int(wrapper.schedule_epoch.numpy())
        if epoch < 0:
            unfinished.append(f"{wrapper.name} (mask never updated)")
        elif wrapper.schedule(epoch) < 1.0:
            unfinished.append(
                f"{wrapper.name} (schedule epoch {epoch} of {wrapper.schedule.end_epoch}, "
                f"r = {wrapper.schedule(epoch):.3f})"
            )
    if unfinished:
        warnings.warn(
            "strip_subp: these layers have not reached their target sparsity, so the stripped "
            f"model is less sparse than asked: {'; '.join(unfinished)}.",
            UserWarning,
            stacklevel=3,
        )


def _input_shape_of(wrapper: BlockMaskWrapper) -> tuple:
    """An input shape that builds a copy of the wrapped Conv2D (batch and spatial sizes None)."""
    if wrapper.layer.data_format == "channels_last":
        return (None, None, None, wrapper.input_channels)
    return (None, wrapper.input_channels, None, None)
