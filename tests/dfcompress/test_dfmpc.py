"""DF-MPC: pairs per architecture, c = 1 on a single channel, compensation beats direct MP2/6."""

import keras
import numpy as np

import dfcompress
from cnn_zoo.models import resnet_small
from dfcompress.dfmpc import low_precision_pairs
from dfcompress.graph import analyse
from tests.dfcompress.dfcompress_test_models import (
    conv_net,
    random_bn_statistics,
    relative_error,
    residual_net,
    vary_filter_scales,
)

L = keras.layers


def test_single_channel_low_layer_gets_c_equal_to_one():
    keras.utils.set_random_seed(4)
    inputs = keras.Input((8, 8, 3))
    x = inputs
    for name, width in (("conv0", 4), ("conv1", 1), ("conv2", 4)):
        x = L.Conv2D(width, 3, padding="same", name=name)(x)
        x = L.ReLU()(L.BatchNormalization(name=f"{name}_bn")(x))
    model = keras.Model(inputs, L.Dense(3)(L.GlobalAveragePooling2D()(x)))
    random_bn_statistics(model, np.random.default_rng(4))
    compressed, report = dfcompress.dfmpc(model, lambda1=0.5, lambda2=0.0)
    record = next(layer for layer in report.layers if layer.name == "conv1")
    assert record.bits == 2 and record.role == "low->conv2"
    assert abs(record.compensation["c_mean"] - 1.0) < 1e-12
    np.testing.assert_allclose(
        compressed.get_layer("conv1_bn").gamma.numpy(),
        model.get_layer("conv1_bn").gamma.numpy(),
        rtol=1e-7,
    )


def test_pairs_basic_blocks_and_plain_stacks():
    pairs, _ = low_precision_pairs(analyse(resnet_small(seed=0)))
    assert pairs == [
        ("stage1_block1_1_conv", "stage1_block1_2_conv"),
        ("stage2_block1_1_conv", "stage2_block1_2_conv"),
        ("stage3_block1_1_conv", "stage3_block1_2_conv"),
    ]
    plain = conv_net(0, widths=(8, 8, 8, 8, 8), input_shape=(32, 32, 3))
    pairs, _ = low_precision_pairs(analyse(plain))
    assert pairs == [("conv1", "conv2"), ("conv3", "conv4")]  # conv0 is the first layer


def test_report_assignment_reproduces_the_kernels_without_compensation():
    model = residual_net(1)
    compressed, report = dfcompress.dfmpc(model)
    assert report.layer_bits == {
        "stem": 6,
        "b0_conv1": 2,
        "b0_conv2": 6,
        "b1_conv1": 2,
        "b1_conv2": 6,
        "classifier": 6,
    }
    assert report.layer_quantizers["b0_conv1"] == "twn"
    direct, _ = dfcompress.quantize_weights(model, report.layer_bits, report.layer_quantizers)
    for name in report.layer_bits:
        np.testing.assert_array_equal(
            direct.get_layer(name).kernel.numpy(), compressed.get_layer(name).kernel.numpy()
        )
    # the compensation lives in the low layers' BatchNormalization only
    assert not np.allclose(
        direct.get_layer("b0_bn1").gamma.numpy(), compressed.get_layer("b0_bn1").gamma.numpy()
    )


def test_dfmpc_beats_direct_mixed_precision_on_random_bn_networks():
    """Against quantize_weights(model, bits=report.layer_bits), DoReFa at every bit width, on random
    BN networks whose filter norms vary from channel to channel as in trained networks (the function
    is unchanged, see vary_filter_scales). Against TWN with the same ternary scale but without c
    (quantizer=report.layer_quantizers) the per-channel coefficient wins only about half the time on
    such networks, so that is not claimed."""
    wins = []
    for seed in range(10):
        rng = np.random.default_rng(seed)
        if seed % 2:
            model = residual_net(seed)
        else:
            model = conv_net(seed, widths=(16, 16, 16, 16), input_shape=(16, 16, 3))
        vary_filter_scales(model, rng)
        x = rng.normal(size=(16, *model.input_shape[1:])).astype(np.float32)
        reference = np.asarray(model(x))
        compensated, report = dfcompress.dfmpc(model)
        direct, _ = dfcompress.quantize_weights(model, bits=report.layer_bits)
        wins.append(
            relative_error(compensated, reference, x) < relative_error(direct, reference, x)
        )
    assert sum(wins) >= 9, wins
