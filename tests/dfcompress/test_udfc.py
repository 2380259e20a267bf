"""UDFC: exact reconstruction of a redundant channel, physical removal, compensation beats pruning."""

import keras
import numpy as np
import pytest

import dfcompress
from tests.dfcompress.dfcompress_test_models import (
    conv_net,
    match_bn_statistics_to,
    multiple_channel_model,
    plant_redundant_channels,
    relative_error,
    residual_net,
)

L = keras.layers


@pytest.mark.parametrize("objective", ["activation", "bn"])
@pytest.mark.parametrize("sequential", [False, True])
@pytest.mark.parametrize("head", ["conv", "flatten"])
def test_redundant_channel_is_rebuilt_exactly_and_removed(sequential, head, objective):
    model = multiple_channel_model(sequential, head)
    x = np.random.default_rng(2).normal(size=(8, 9, 9, 3)).astype(np.float32)
    reference = np.asarray(model(x))
    compressed, report = dfcompress.udfc(
        model, prune_ratio=1 / 8, weight_bits=None, objective=objective
    )
    assert compressed.get_layer("conv1").kernel.shape == (3, 3, 3, 7)
    assert compressed.get_layer("bn1").gamma.shape == (7,)
    np.testing.assert_array_equal(
        compressed.get_layer("conv1").kernel.numpy(),
        model.get_layer("conv1").kernel.numpy()[..., :7],
    )
    assert relative_error(compressed, reference, x) < 1e-5
    plain, _ = dfcompress.prune_channels(model, prune_ratio=1 / 8)
    assert relative_error(plain, reference, x) > 1e-3  # the channel mattered
    assert [layer.name for layer in compressed.layers] == [layer.name for layer in model.layers]
    assert report.layers[0].channels_after == 7 and report.layers[0].channels_before == 8
    assert report.settings["objective"] == objective


def test_channel_counts_weights_and_layer_bits():
    model = conv_net(0, widths=(12, 16, 16))
    compressed, report = dfcompress.udfc(model, prune_ratio=0.3, weight_bits=5)
    assert [compressed.get_layer(f"conv{i}").filters for i in range(3)] == [8, 11, 11]
    assert report.layer_bits == {"conv0": 5, "conv1": 5, "conv2": 5, "classifier": 5}
    for name in report.layer_bits:
        kernel = compressed.get_layer(name).kernel.numpy().astype(np.float64)
        m = np.max(np.abs(kernel))
        units = (kernel / m + 1) * 31 / 2  # DoReFa 5-bit levels m (2 i / 31 - 1)
        np.testing.assert_allclose(units, np.round(units), atol=1e-4)
    scales = report.layers[0].compensation
    assert 0.8 < scales["scale_min"] <= scales["scale_max"] < 1.2


def test_quantization_only_scale_lowers_error():
    model = conv_net(3, widths=(16, 16, 16))
    x = np.random.default_rng(3).normal(size=(16, 10, 10, 3)).astype(np.float32)
    reference = np.asarray(model(x))
    compensated, _ = dfcompress.udfc(model, prune_ratio=0.0, weight_bits=3, alpha2=0.0)
    direct, _ = dfcompress.quantize_weights(model, bits=3)
    assert relative_error(compensated, reference, x) < relative_error(direct, reference, x)


@pytest.mark.parametrize("objective", ["activation", "bn"])
def test_compensation_beats_plain_pruning_on_random_bn_networks(objective):
    """Random BN networks whose pruned channels are noisy positive combinations of two kept ones
    (the method's premise), with BN statistics that describe the data (`match_bn_statistics_to`:
    the same function, re-parameterised). On networks with i.i.d. random filters the least-squares
    combination does not help (no channel is predictable from the others), so none is claimed."""
    wins = []
    for seed in range(10):
        rng = np.random.default_rng(seed)
        model = conv_net(seed, sequential=seed % 2 == 0, widths=(12, 16, 16))
        if seed % 3 == 0:
            model = residual_net(seed)
        plant_redundant_channels(model, rng)
        x = rng.normal(size=(16, 10, 10, 3)).astype(np.float32)
        reference = np.asarray(model(x))
        match_bn_statistics_to(model, x)
        np.testing.assert_allclose(np.asarray(model(x)), reference, rtol=1e-3, atol=1e-4)
        udfc_model, _ = dfcompress.udfc(
            model, prune_ratio=0.3, weight_bits=None, objective=objective
        )
        plain, _ = dfcompress.prune_channels(model, prune_ratio=0.3)
        wins.append(relative_error(udfc_model, reference, x) < relative_error(plain, reference, x))
    assert sum(wins) >= 9, wins


def test_prune_and_quantize_runs_on_residual_blocks():
    model = residual_net(0)
    compressed, report = dfcompress.udfc(model, prune_ratio=0.5, weight_bits=4)
    assert compressed.get_layer("b0_conv1").filters == 8
    assert compressed.get_layer("b0_conv2").kernel.shape[2] == 8
    assert compressed.get_layer("b0_conv2").filters == 16  # feeds the Add: kept whole
    assert np.isfinite(np.asarray(compressed(np.ones((1, 10, 10, 3))))).all()
    assert report.size_mb_after < report.size_mb_before / 6


def test_dense_bn_relu_dense_hidden_units_are_pruned():
    keras.utils.set_random_seed(5)
    inputs = keras.Input((20,))
    x = L.ReLU()(L.BatchNormalization(name="bn")(L.Dense(16, name="hidden")(inputs)))
    model = keras.Model(inputs, L.Dense(3, name="out")(x))
    compressed, report = dfcompress.udfc(model, prune_ratio=0.5, weight_bits=None)
    assert compressed.get_layer("hidden").units == 8
    assert compressed.get_layer("out").kernel.shape == (8, 3)
    assert compressed(np.ones((2, 20), np.float32)).shape == (2, 3)
