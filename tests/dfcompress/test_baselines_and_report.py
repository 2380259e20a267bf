"""Baselines share the methods' channel selection; reports, sizes and FLOPs against hand counts."""

import keras
import numpy as np
import pytest

import dfcompress
from dfcompress.accounting import count_flops
from tests.dfcompress.dfcompress_test_models import (
    conv_net,
    plant_redundant_channels,
    relative_error,
)


@pytest.fixture(scope="module")
def model():
    return conv_net(0, widths=(12, 16, 16))


def test_same_channels_removed_by_prune_nm_and_udfc(model):
    pruned, _ = dfcompress.prune_channels(model, 0.3, "l1")
    merged, _ = dfcompress.neuron_merging(model, 0.3, "l1")
    udfc_model, _ = dfcompress.udfc(model, 0.3, weight_bits=None, criterion="l1")
    norms = np.abs(model.get_layer("conv0").kernel.numpy()).sum(axis=(0, 1, 2))
    expected = np.sort(np.argsort(-norms, kind="stable")[:8])
    for compressed in (pruned, merged, udfc_model):
        # conv0 is first: its own input channels are untouched, so kept filters match exactly
        kept = compressed.get_layer("conv0").kernel.numpy()
        np.testing.assert_array_equal(kept, model.get_layer("conv0").kernel.numpy()[..., expected])
        assert [compressed.get_layer(f"conv{i}").filters for i in range(3)] == [8, 11, 11]


def test_neuron_merging_recovers_planted_redundancy_better_than_pruning():
    wins = 0
    for seed in range(5):
        rng = np.random.default_rng(seed)
        net = plant_redundant_channels(conv_net(seed, widths=(12, 16, 16)), rng)
        x = rng.normal(size=(8, 10, 10, 3)).astype(np.float32)
        reference = np.asarray(net(x))
        merged, report = dfcompress.neuron_merging(net, 0.3)
        plain, _ = dfcompress.prune_channels(net, 0.3)
        wins += relative_error(merged, reference, x) < relative_error(plain, reference, x)
        assert report.method == "neuron_merging"
    assert wins >= 4


def test_quantize_weights_with_dict_and_none(model):
    quantized, report = dfcompress.quantize_weights(model, {"conv1": 3, "classifier": None})
    assert report.layer_bits == {"conv0": None, "conv1": 3, "conv2": None, "classifier": None}
    np.testing.assert_array_equal(
        quantized.get_layer("conv0").kernel.numpy(), model.get_layer("conv0").kernel.numpy()
    )
    assert len(np.unique(quantized.get_layer("conv1").kernel.numpy())) <= 8


def test_udfc_layer_bits_reproduce_the_assignment(model):
    _, report = dfcompress.udfc(model, prune_ratio=0.3, weight_bits=4)
    _, direct_report = dfcompress.quantize_weights(model, bits=report.layer_bits)
    assert direct_report.layer_bits == report.layer_bits


def test_model_size_mb_counts_kernels_at_their_bits(model):
    kernels = sum(
        int(np.prod(model.get_layer(n).kernel.shape))
        for n in ("conv0", "conv1", "conv2", "classifier")
    )
    others = model.count_params() - kernels
    assert dfcompress.model_size_mb(model) == pytest.approx(model.count_params() * 4 / 2**20)
    assert dfcompress.model_size_mb(model, 4) == pytest.approx(
        (kernels * 4 + others * 32) / 8 / 2**20
    )
    conv1 = int(np.prod(model.get_layer("conv1").kernel.shape))
    expected = ((kernels - conv1) * 32 + conv1 * 2 + others * 32) / 8 / 2**20
    assert dfcompress.model_size_mb(model, {"conv1": 2}) == pytest.approx(expected)


def test_flops_hand_count(model):
    # 3x3 convs, same padding: 10x10x3->12, pool, 5x5x12->16, pool, 2x2x16->16; Dense 16->5
    expected = 9 * 3 * 12 * 100 + 9 * 12 * 16 * 25 + 9 * 16 * 16 * 4 + 16 * 5
    assert count_flops(model) == expected


def test_report_table_and_totals(model):
    compressed, report = dfcompress.udfc(model, prune_ratio=0.3, weight_bits=6)
    text = str(report)
    assert "udfc(prune_ratio=0.3" in text
    assert "conv1" in text and "8/12" in text and "skipped:" in text and "model output" in text
    assert report.params_after == compressed.count_params() < report.params_before
    assert report.flops_after == count_flops(compressed) < report.flops_before
    assert report.size_mb_after == pytest.approx(dfcompress.model_size_mb(compressed, 6))
    assert report.seconds > 0
    data = report.to_dict()
    assert data["layer_bits"]["conv0"] == 6 and isinstance(data["skipped"][0], list)


def test_compressed_model_saves_and_loads(model, tmp_path):
    compressed, _ = dfcompress.udfc(model, prune_ratio=0.3, weight_bits=6)
    path = tmp_path / "udfc.keras"
    compressed.save(path)
    loaded = keras.models.load_model(path)
    x = np.ones((2, 10, 10, 3), np.float32)
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(compressed(x)), rtol=1e-6)


def test_neuron_merging_reference_convention_runs(model):
    merged, report = dfcompress.neuron_merging(model, 0.3, convention="reference")
    assert report.settings["convention"] == "reference"
    assert merged.get_layer("conv1").filters == 11


def test_zero_preserving_quantization_keeps_block_sparsity(model):
    """A 1x4 block pattern of zeros (as keras_subp.strip_subp leaves) survives UDFC's quantization
    with the symmetric quantizer: its scale goes into the BatchNormalization, not the kernel."""
    kernel = model.get_layer("conv1").kernel.numpy().copy()
    kernel[:, :, ::2, 0:4] = 0.0
    sparse = keras.models.clone_model(model)
    sparse.set_weights(model.get_weights())
    sparse.get_layer("conv1").kernel.assign(kernel)
    for compressed, _ in (
        dfcompress.udfc(sparse, prune_ratio=0.0, weight_bits=4, quantizer="symmetric_per_channel"),
        dfcompress.quantize_weights(sparse, 4, quantizer="symmetric"),
    ):
        quantized = compressed.get_layer("conv1").kernel.numpy()
        assert np.all(quantized[kernel == 0] == 0)
        assert np.count_nonzero(quantized) <= np.count_nonzero(kernel)
