"""Bad input is refused with an error that names the argument; the input model is never changed."""

import keras
import numpy as np
import pytest

import dfcompress
from tests.dfcompress.dfcompress_test_models import conv_net


@pytest.fixture(scope="module")
def model():
    return conv_net(0)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda m: dfcompress.udfc(m, prune_ratio=1.0), ValueError, "prune_ratio"),
        (lambda m: dfcompress.udfc(m, prune_ratio="a"), TypeError, "prune_ratio"),
        (lambda m: dfcompress.udfc(m, weight_bits=0), ValueError, "weight_bits"),
        (lambda m: dfcompress.udfc(m, weight_bits=4.0), TypeError, "weight_bits"),
        (lambda m: dfcompress.udfc(m, criterion="l3"), ValueError, "criterion"),
        (lambda m: dfcompress.udfc(m, alpha1=-1), ValueError, "alpha1"),
        (lambda m: dfcompress.udfc(m, objective="relu"), ValueError, "objective must be one of"),
        (lambda m: dfcompress.udfc(m, spatial_correlation=1.5), ValueError, "spatial_correlation"),
        (lambda m: dfcompress.udfc(m, spatial_correlation="x"), TypeError, "spatial_correlation"),
        (lambda m: dfcompress.udfc(m, alpha2=float("nan")), ValueError, "alpha2"),
        (lambda m: dfcompress.udfc(m, quantizer="int4"), ValueError, "quantizer"),
        (lambda m: dfcompress.udfc(m, weight_bits=3, quantizer="twn"), ValueError, "bits"),
        (lambda m: dfcompress.udfc(m, prune_ratio=0, weight_bits=None), ValueError, "nothing"),
        (lambda m: dfcompress.dfmpc(m, low_bits=6, high_bits=6), ValueError, "low_bits"),
        (lambda m: dfcompress.dfmpc(m, lambda1=-0.5), ValueError, "lambda1"),
        (lambda m: dfcompress.dfmpc(m, pattern="zigzag"), ValueError, "pattern"),
        (lambda m: dfcompress.dfmpc(m, pattern=["conv0"]), ValueError, "first layer"),
        (lambda m: dfcompress.quantize_weights(m, bits={"nope": 4}), ValueError, "nope"),
        (lambda m: dfcompress.quantize_weights(m, bits=None), ValueError, "nothing"),
        (
            lambda m: dfcompress.quantize_weights(m, bits={"conv0": 3}, quantizer="twn"),
            ValueError,
            "conv0",
        ),
        (lambda m: dfcompress.neuron_merging(m, lamda=2.0), ValueError, "lamda"),
        (lambda m: dfcompress.prune_channels(m, 0.3, criterion="l0"), ValueError, "criterion"),
        (lambda m: dfcompress.model_size_mb(m, bits="6"), TypeError, "bits"),
    ],
)
def test_bad_arguments(model, call, error, match):
    with pytest.raises(error, match=match):
        call(model)


def test_not_a_model():
    with pytest.raises(TypeError, match="model must be a keras.Model"):
        dfcompress.udfc(keras.layers.Dense(3))


def test_nothing_prunable_is_a_clear_error():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)  # no BatchNormalization
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(x)))
    with pytest.raises(ValueError, match="nothing to prune.*conv: not followed by exactly one"):
        dfcompress.prune_channels(model, 0.5)
    with pytest.raises(ValueError, match="no low/high-precision layer pair"):
        dfcompress.dfmpc(model)


def test_keras_subp_wrapped_model_is_refused():
    import keras_subp
    from cnn_zoo.models import vgg_small

    wrapped = keras_subp.prune_subp(vgg_small(seed=0), n=16, sparsity=0.5)
    for method in (dfcompress.udfc, dfcompress.dfmpc, dfcompress.prune_channels):
        with pytest.raises(ValueError, match=r"strip it first: keras_subp\.strip_subp\(model\)"):
            method(wrapped)


def test_input_model_is_left_unchanged(model):
    before = [w.copy() for w in model.get_weights()]
    dfcompress.udfc(model, prune_ratio=0.3, weight_bits=4)
    dfcompress.dfmpc(model)
    for old, new in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)
