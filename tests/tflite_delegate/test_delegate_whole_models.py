"""Whole zoo models with random 1x16 masks: same outputs with and without the delegate, and the
unsupported convs (dense stem, depthwise) stay with the builtin kernels / XNNPACK."""

from __future__ import annotations

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

from tests.tflite_delegate.delegate_keras_models import converted_zoo_model
from tests.tflite_delegate.delegate_test_support import (
    assert_outputs_close,
    delegate_interpreter,
    model_inputs,
    reference_interpreter,
    run,
)
from tflite_delegate.tflite_model import read_conv_layers

CASES = [
    ("resnet_small", "float32"),
    ("mobilenet_v1_small", "float32"),
    ("resnet_small", "float16"),
]


def _check_decisions(report, path, masks):

    decisions = {decision.node_index: decision for decision in report}
    layers = read_conv_layers(model_path=path)
    assert {layer.name for layer in layers} == {*masks, "stem_conv"}
    for layer in layers:
        decision = decisions[layer.node_index]
        if layer.name == "stem_conv":  # dense: below the default min_sparsity
            assert not decision.claimed and decision.reason_code == "below_min_sparsity"
            assert "min_sparsity" in decision.reason
            continue
        assert decision.claimed, (layer.name, decision.reason)
        assert decision.block_n == 16 and decision.uniform
        # The masks drop single taps (tap vectors), 75 % of them in every group.
        assert decision.tap_vector_sparsity == pytest.approx(0.75)
        if layer.filter_shape[1:3] == (1, 1):  # a 1x1 window: blocks are tap vectors
            assert decision.block_sparsity == pytest.approx(0.75)
            assert decision.balance_ratio == 1.0
    # Depthwise convs are never claimed (nor reported as claimed).
    claimed = {d.node_index for d in report if d.claimed}
    assert claimed == {layer.node_index for layer in layers if layer.name != "stem_conv"}


@pytest.mark.parametrize(("name", "weights"), CASES)
def test_zoo_model_same_outputs_with_and_without_delegate(name, weights):
    import tflite_delegate

    path, keras_model, masks = converted_zoo_model(name, weights)
    content = path.read_bytes()
    reference = reference_interpreter(content)
    stock = Interpreter(model_path=str(path), num_threads=2)  # XNNPACK for everything
    ours = tflite_delegate.Interpreter(model_path=str(path), num_threads=2)
    _check_decisions(tflite_delegate.delegation_report(ours), path, masks)
    alone, delegate = delegate_interpreter(content, num_threads=2)
    for batch in (1, 3):
        inputs = model_inputs(reference, batch, seed=batch)
        expected = run(reference, inputs)
        scale = [max(float(np.abs(e).max()), 1.0) for e in expected]
        assert_outputs_close(run(alone, inputs), expected, f"{name} delegate alone", scale)
        assert_outputs_close(run(ours, inputs), run(stock, inputs), f"{name} with XNNPACK", scale)
    if weights == "float32":  # and the TFLite model still computes what Keras computes
        images = model_inputs(reference, 1, seed=1)[0]
        keras_logits = np.asarray(keras_model(images, training=False))
        np.testing.assert_allclose(run(ours, [images])[0], keras_logits, rtol=0, atol=1e-4)
