"""The only place where keras_subp reads private Keras attributes.

Keras 3 has no public API for a few facts about a model's graph that pruning needs. Each
function below reads one private attribute and says which public API is missing, so that a
Keras upgrade that changes them breaks one small file, and the rest of the package (and
`cnn_zoo`, the scripts and the tests) uses these functions instead.
"""

from __future__ import annotations

import keras


def is_functional_model(model) -> bool:
    """True for a Functional `keras.Model` (built from inputs and outputs), including subclasses.

    Missing public API: Keras exports no `Functional` class and no predicate telling a Functional
    model from a subclassed one; only the Functional graph has `_nodes_by_depth`.
    """
    return isinstance(model, keras.Model) and hasattr(model, "_nodes_by_depth")


def call_count(layer) -> int:
    """How many times `layer` is called in the models it belongs to (0 before any call).

    Missing public API: Keras 3 layers expose no list of their call sites (Keras 2's public
    `inbound_nodes` is gone); each call adds one node to `_inbound_nodes`.
    """
    return len(getattr(layer, "_inbound_nodes", ()))


def call_output_tensors(layer) -> list:
    """The first output tensor (a `keras.KerasTensor`) of every call of `layer`, in call order.

    Missing public API: `layer.output` raises for a layer called more than once, and
    `layer.get_output_at(index)` no longer exists in Keras 3; the outputs of each call are only
    in the private `_inbound_nodes`.
    """
    return [node.outputs[0] for node in getattr(layer, "_inbound_nodes", ()) if node.outputs]


def outbound_nodes(layer) -> list:
    """The graph nodes that consume `layer`'s output: each has `.operation` (the consuming
    layer) and `.input_tensors` (all tensors that call received).

    Missing public API: Keras 3 has no public list of a layer's consumers (Keras 2's public
    `outbound_nodes` is gone); they are in `_outbound_nodes`.
    """
    return list(getattr(layer, "_outbound_nodes", ()))
