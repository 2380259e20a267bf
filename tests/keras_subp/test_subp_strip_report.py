"""strip_subp, sparsity_report / count_flops and SUBPSummaries on a briefly trained model."""

import glob

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.util import event_pb2

import keras_subp
from keras_subp import schedules

from .subp_test_models import compile_for_classification, random_classification_data, small_bn_cnn

SPARSITY = 0.5
N = 4


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("subp_logs")
    model = keras_subp.prune_subp(
        small_bn_cnn(), n=N, sparsity=SPARSITY, schedule=schedules.Linear(0, 2), seed=8
    )
    compile_for_classification(model)
    images, labels = random_classification_data(count=32)
    update = keras_subp.UpdateSUBP()
    model.fit(
        images,
        labels,
        epochs=3,
        batch_size=16,
        verbose=0,
        callbacks=[update, keras_subp.SUBPSummaries(str(log_dir))],
    )
    return model, images, log_dir


def test_strip_bakes_exact_zeros_in_the_uniform_1xn_pattern(trained):
    model, images, _ = trained
    stripped = keras_subp.strip_subp(model)
    assert not [layer for layer in stripped.layers if isinstance(layer, keras.layers.Wrapper)]
    for wrapper in keras_subp.subp_wrappers(model):
        conv = stripped.get_layer(wrapper.layer.name)
        assert type(conv) is keras.layers.Conv2D
        kernel = conv.kernel.numpy()
        mask = wrapper.mask.numpy()
        np.testing.assert_array_equal(kernel, wrapper.layer.kernel.numpy() * mask)
        input_channels = kernel.shape[2]
        for group in range(kernel.shape[3] // N):
            block_is_zero = np.all(
                kernel[:, :, :, group * N : (group + 1) * N] == 0, axis=(0, 1, 3)
            )
            assert block_is_zero.sum() == int(SPARSITY * input_channels)
            np.testing.assert_array_equal(block_is_zero, wrapper.block_mask()[group] == 0)
        assert not np.signbit(kernel[kernel == 0]).any()  # +0.0, not -0.0
    np.testing.assert_allclose(
        stripped.predict(images, verbose=0), model.predict(images, verbose=0), rtol=1e-5, atol=1e-5
    )
    single = keras_subp.strip_subp(keras_subp.subp_wrappers(model)[0])
    np.testing.assert_array_equal(
        single.kernel.numpy(), stripped.get_layer(single.name).kernel.numpy()
    )


def test_sparsity_report_and_flops_against_hand_counts(trained):
    model, _, _ = trained
    rows = {row.name: row for row in keras_subp.sparsity_report(model)}
    assert set(rows) == {"subp_conv1", "subp_conv2"}
    conv1, conv2 = rows["subp_conv1"], rows["subp_conv2"]
    assert conv1.kernel_shape == (3, 3, 8, 16) and conv1.n == N
    assert (conv1.kept_blocks_min, conv1.kept_blocks_max, conv1.balance_ratio) == (4, 4, 1.0)
    assert (conv2.kept_blocks_min, conv2.kept_blocks_max) == (8, 8)
    # conv1: 16 output channels / N=4 = 4 groups, each keeping 8 - int(0.5 * 8) = 4 blocks.
    assert conv1.kept_blocks_per_group == (4, 4, 4, 4)
    assert conv2.kept_blocks_per_group == (8, 8, 8, 8)
    assert conv1.block_sparsity == 0.5 and conv1.nominal_sparsity == 0.5
    # (Kh*Kw*Cin + 1) * Cout * Hout * Wout on the 12x12 grid.
    assert conv1.dense_flops == (9 * 8 + 1) * 16 * 144 == 168192
    assert conv1.sparse_flops == 168192 * 0.5
    assert conv1.actual_flops == (9 * 4 * (4 * 4) + 16) * 144
    flops = keras_subp.count_flops(model)
    stem, conv2_dense, logits = (9 * 1 + 1) * 8 * 144, (9 * 16 + 1) * 16 * 144, 16 * 3 + 3
    assert flops.dense == stem + 168192 + conv2_dense + logits
    assert flops.subp == stem + 0.5 * (168192 + conv2_dense) + logits
    assert [layer.name for layer in flops.layers] == [
        "stem",
        "subp_conv1",
        "subp_conv2",
        "logits",
    ]
    stripped_rows = {
        r.name: r for r in keras_subp.sparsity_report(keras_subp.strip_subp(model), n=N)
    }
    assert (
        stripped_rows["conv1"].block_sparsity == 0.5 and stripped_rows["stem"].block_sparsity == 0
    )
    assert "subp_conv1" in keras_subp.format_sparsity_report(list(rows.values()))


def read_scalars(log_dir):
    scalars = {}
    for path in glob.glob(f"{log_dir}/events.out.tfevents.*"):
        for record in tf.data.TFRecordDataset(path):
            event = event_pb2.Event.FromString(record.numpy())
            for value in event.summary.value:
                number = float(tf.make_ndarray(value.tensor))
                scalars.setdefault(value.tag, {})[event.step] = number
    return scalars


def test_summaries_log_sparsity_regrowth_churn_and_flops(trained):
    model, _, log_dir = trained
    scalars = read_scalars(log_dir)
    # Linear(0, 2): r = 0, 0.5, 1; conv1 has Cin 8, P = 4: pruned 0, 2, 4 blocks per group.
    np.testing.assert_allclose(
        [scalars["subp/subp_conv1/block_sparsity"][e] for e in range(3)], [0.0, 0.25, 0.5]
    )
    # R_e * G with G = 4 groups: 4*4, 2*4, 0.
    assert [scalars["subp/subp_conv1/blocks_regrown"][e] for e in range(3)] == [16, 8, 0]
    assert scalars["subp/subp_conv1/mask_churn"][0] == 0  # epoch 0 keeps everything
    assert scalars["subp/subp_conv1/mask_churn"][1] >= 2 * 4  # at least the newly pruned ones
    flops = keras_subp.count_flops(model)
    assert scalars["subp/flops_ratio"][2] == pytest.approx(flops.actual / flops.dense, rel=1e-6)
    assert scalars["subp/flops_ratio"][0] == pytest.approx(1.0)
