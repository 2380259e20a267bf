"""The only place dfcompress touches private Keras attributes."""

from __future__ import annotations

import keras


def call_count(layer: keras.layers.Layer) -> int:
    """How many times `layer` has been called on symbolic inputs (more than one = shared weights)."""
    return len(getattr(layer, "_inbound_nodes", ()) or ())


def is_functional(model: keras.Model) -> bool:
    """True for a Functional model (including subclasses built functionally)."""
    return hasattr(model, "_nodes_by_depth")
