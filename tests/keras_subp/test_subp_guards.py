"""Guards at keras_subp's public boundary: schedules that end after training, names and shared
layers that masks cannot be keyed by, inputs whose FLOPs are unknown, malformed arguments,
BPAR's alpha, and SUBP's parameter accounting (against hand counts)."""

import glob
import warnings

import keras
import numpy as np
import pytest
from keras import ops

import keras_subp
from keras_subp.baseline_1xn import global_l1_block_mask
from keras_subp.block_geometry import kernel_to_blocks
from tests.keras_subp.subp_test_models import (
    compile_for_classification,
    random_classification_data,
    small_bn_cnn,
)


def _fit(model, epochs, callbacks=()):
    images, labels = random_classification_data()
    compile_for_classification(model)
    model.fit(images, labels, epochs=epochs, batch_size=32, verbose=0, callbacks=list(callbacks))


def test_fit_ending_before_the_schedule_warns_and_strip_says_so():
    schedule = keras_subp.schedules.Cubic(start_epoch=0, end_epoch=3)
    model = keras_subp.prune_subp(small_bn_cnn(), n=4, sparsity=0.5, schedule=schedule, seed=1)
    with pytest.warns(UserWarning, match=r"ends before the sparsity schedule.*end_epoch 3"):
        _fit(model, epochs=2, callbacks=[keras_subp.UpdateSUBP()])
    with pytest.warns(UserWarning, match=r"not reached their target sparsity.*r = 0\.037"):
        keras_subp.strip_subp(model)  # schedule epoch 1: r = (1/3)^3
    # A second fit that reaches the end is silent, and so is strip afterwards.
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        model.fit(
            *random_classification_data(), epochs=2, verbose=0, callbacks=[keras_subp.UpdateSUBP()]
        )
        keras_subp.strip_subp(model)


def test_strip_of_a_never_updated_model_warns():
    model = keras_subp.prune_subp(small_bn_cnn(), n=4, sparsity=0.5, seed=1)
    with pytest.warns(UserWarning, match="mask never updated"):
        keras_subp.strip_subp(model)


def _nested_model_with_duplicate_names():
    def block(name):
        inputs = keras.Input((8, 8, 8))
        outputs = keras.layers.Conv2D(8, 3, padding="same", name="conv")(inputs)
        return keras.Model(inputs, outputs, name=name)

    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", name="stem")(inputs)
    x = block("first")(x)
    x = block("second")(x)
    return keras.Model(inputs, x)


@pytest.mark.parametrize("prune", [keras_subp.prune_subp, keras_subp.prune_1xn])
def test_duplicate_layer_names_are_rejected(prune):
    with pytest.raises(ValueError, match=r"unique.*duplicated: \['conv'\]"):
        prune(_nested_model_with_duplicate_names(), n=4, sparsity=0.5)


def test_shared_conv_stays_dense_and_flops_count_every_call():
    inputs = keras.Input((6, 6, 4))
    stem = keras.layers.Conv2D(8, 1, name="stem")(inputs)
    shared = keras.layers.Conv2D(8, 3, padding="same", name="shared")
    other = keras.layers.Conv2D(8, 3, padding="same", name="other")(stem)
    outputs = keras.layers.Add()([shared(stem), shared(other)])
    model = keras.Model(inputs, outputs)
    with pytest.warns(UserWarning, match=r"shared: weight-shared layer \(called 2 times"):
        wrapped = keras_subp.prune_subp(model, n=4, sparsity=0.5, seed=0)
    assert [w.layer.name for w in keras_subp.subp_wrappers(wrapped)] == ["other"]
    rows = {row.name: row for row in keras_subp.count_flops(model).layers}
    # (K*K*Cin + 1) * Cout per output position, 36 positions per call, two calls.
    assert rows["shared"].dense == (9 * 8 + 1) * 8 * 36 * 2
    assert rows["other"].dense == (9 * 8 + 1) * 8 * 36


def test_summaries_skip_flops_when_spatial_sizes_are_unknown(tmp_path):
    inputs = keras.Input((None, None, 1))
    x = keras.layers.Conv2D(8, 3, padding="same", name="stem")(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", name="conv")(x)
    outputs = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(x))
    model = keras_subp.prune_subp(
        keras.Model(inputs, outputs),
        n=4,
        sparsity=0.5,
        schedule=keras_subp.schedules.Constant(0),
        seed=0,
    )
    summaries = keras_subp.SUBPSummaries(str(tmp_path))
    with pytest.warns(UserWarning, match="flops_ratio not logged"):
        _fit(model, epochs=1, callbacks=[keras_subp.UpdateSUBP(), summaries])
    assert glob.glob(str(tmp_path / "events.out.tfevents.*"))


def test_malformed_arguments_raise_clear_errors():
    kernel = np.random.default_rng(0).normal(size=(3, 3, 16, 16)).astype(np.float32)
    with pytest.raises(ValueError, match=r"block grid \(Cout / n, Cin\) = \(4, 16\)"):
        keras_subp.block_scores(kernel, 4, "l1", mask=np.ones((2, 16), np.float32))
    with pytest.raises(ValueError, match="Conv2D kernel of shape"):
        kernel_to_blocks(kernel[0], 4)
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="sparsity"):
            global_l1_block_mask(kernel, 4, bad)
    scores = np.random.default_rng(1).random((4, 16)).astype(np.float32)
    for bad in (0.5, True):
        with pytest.raises(ValueError, match="whole number of blocks"):
            keras_subp.uniform_block_mask(scores, bad)
    assert ops.convert_to_numpy(keras_subp.uniform_block_mask(scores, np.int64(3))).sum() == 52
    with pytest.raises(ValueError, match="rate must be a positive finite"):
        keras_subp.schedules.Exponential(0, 5, rate=True)
    with pytest.raises(ValueError, match="pruned_decay must be non-negative and finite"):
        keras_subp.prune_subp(small_bn_cnn(), n=4, pruned_decay=float("inf"))
    with pytest.raises(ValueError, match="alpha must be non-negative"):
        keras_subp.prune_subp(small_bn_cnn(), n=4, alpha=-1.0)
    model = small_bn_cnn()
    with pytest.raises(ValueError, match="Expected a Keras model"):
        keras_subp.count_flops(model.get_layer("conv1"))
    with pytest.raises(ValueError, match="Block size n"):
        keras_subp.sparsity_report(model, n=0)
    with pytest.warns(UserWarning, match="no layer .* has 1x5 blocks"):
        assert keras_subp.sparsity_report(model, n=5) == []


def test_alpha_reaches_bpar_and_survives_saving(tmp_path):
    model = keras_subp.prune_subp(
        small_bn_cnn(),
        n=4,
        sparsity=0.5,
        criterion="bpar",
        alpha=0.25,
        schedule=keras_subp.schedules.Constant(0),
        seed=3,
    )
    (wrapper, *_) = keras_subp.subp_wrappers(model)
    keras_subp.update_masks(model)
    expected = keras_subp.uniform_block_mask(
        keras_subp.block_scores(wrapper.layer.kernel, 4, "bpar", alpha=0.25), 4
    )
    np.testing.assert_array_equal(wrapper.block_mask(), ops.convert_to_numpy(expected))
    path = tmp_path / "alpha.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    assert keras_subp.subp_wrappers(reloaded)[0].alpha == 0.25


def test_parameter_accounting_against_hand_counts():
    model = keras_subp.prune_subp(
        small_bn_cnn(), n=4, sparsity=0.5, schedule=keras_subp.schedules.Constant(0), seed=0
    )
    keras_subp.update_masks(model)
    counted = keras_subp.count_parameters(model)
    # stem 3*3*1*8; stem_bn gamma+beta 16; conv1 3*3*8*16 (P = 4 of 8 blocks per group);
    # conv1_bn 32; conv2 3*3*16*16 + 16 bias (P = 8 of 16); logits 16*3 + 3.
    stem, conv1, conv2, others = 72, 1152, 2304, 16 + 32 + 16 + 51
    assert counted.dense == stem + conv1 + conv2 + others
    assert counted.subp == pytest.approx(stem + others + 0.5 * conv1 + 0.5 * conv2)
    assert counted.actual == stem + others + conv1 // 2 + conv2 // 2
    assert counted.sparse_ratio == pytest.approx(1 - counted.subp / counted.dense)
    stripped = keras_subp.strip_subp(model)
    assert keras_subp.count_parameters(stripped, n=4).actual == counted.actual
    assert keras_subp.count_parameters(stripped).actual == counted.dense
