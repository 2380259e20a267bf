"""The 1xN baseline of Lin et al.: global L1 masks, filter rearrangement, hard masking."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_subp
from keras_subp.baseline_1xn import channel_chain

from .subp_test_models import random_classification_data, small_bn_cnn


def numpy_global_l1_mask(kernel, n, sparsity):
    groups, input_channels = kernel.shape[3] // n, kernel.shape[2]
    scores = np.array(
        [
            [np.abs(kernel[:, :, c, g * n : (g + 1) * n]).sum() for c in range(input_channels)]
            for g in range(groups)
        ]
    )
    order = np.argsort(scores.ravel(), kind="stable")
    mask = np.ones(scores.size)
    mask[order[: int(scores.size * sparsity)]] = 0
    return mask.reshape(scores.shape)


def test_global_l1_mask_matches_numpy():
    kernel = np.random.default_rng(0).normal(size=(3, 3, 10, 8)).astype(np.float32)
    mask = keras_subp.global_l1_block_mask(kernel, 4, 0.35)
    np.testing.assert_array_equal(mask, numpy_global_l1_mask(kernel, 4, 0.35))
    assert (mask == 0).sum() == int(20 * 0.35)


def test_rearrangement_preserves_the_function_and_sorts_filters():
    model = small_bn_cnn(seed=4)
    images, _ = random_classification_data(count=8)
    # A BN with non-trivial statistics makes a wrong permutation visible.
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            rng = np.random.default_rng(1)
            layer.set_weights(
                [rng.random(w.shape).astype(np.float32) + 0.5 for w in layer.get_weights()]
            )
    rearranged = keras_subp.prune_1xn(model, n=4, sparsity=0.0, rearrange=True)
    assert rearranged.rearranged_layers == ("conv1", "conv2")
    np.testing.assert_allclose(
        rearranged.predict(images, verbose=0),
        model.predict(images, verbose=0),
        rtol=1e-5,
        atol=1e-5,
    )
    kernel = rearranged.get_layer("one_by_n_conv1").layer.kernel.numpy()
    norms = np.abs(kernel).sum(axis=(0, 1, 2))
    assert np.all(np.diff(norms) >= 0)
    original = np.abs(model.get_layer("conv1").kernel.numpy()).sum(axis=(0, 1, 2))
    np.testing.assert_allclose(norms, np.sort(original), rtol=1e-6)


def test_residual_outputs_are_not_rearranged():
    inputs = keras.Input((8, 8, 8))
    x = keras.layers.Conv2D(8, 3, padding="same", name="stem")(inputs)
    branch = keras.layers.Conv2D(8, 3, padding="same", name="branch")(x)
    added = keras.layers.Add()([x, branch])
    outputs = keras.layers.Conv2D(8, 1, name="head")(added)
    model = keras.Model(inputs, outputs)
    assert channel_chain(model.get_layer("branch"), model) is None  # feeds the add
    assert channel_chain(model.get_layer("head"), model) is None  # model output
    pruned = keras_subp.prune_1xn(model, n=4, sparsity=0.5)
    assert pruned.rearranged_layers == ()


def test_masks_are_global_fixed_and_hard():
    model = small_bn_cnn(seed=5)
    pruned = keras_subp.prune_1xn(model, n=4, sparsity=0.5, rearrange=False)
    wrapper = pruned.get_layer("one_by_n_conv1")
    kernel = model.get_layer("conv1").kernel.numpy()
    expected = numpy_global_l1_mask(kernel, 4, 0.5)
    np.testing.assert_array_equal(
        wrapper.mask.numpy(), keras_subp.expand_block_mask(expected, kernel.shape).numpy()
    )
    images, labels = random_classification_data(count=8)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(pruned(images, training=True) ** 2)
    gradient = tape.gradient(loss, wrapper.layer.kernel.value).numpy()
    assert np.all(gradient[wrapper.mask.numpy() == 0] == 0)  # hard masking
    pruned.compile(
        optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    pruned.fit(images, labels, epochs=1, verbose=0)  # no callback needed
    report = {row.name: row for row in keras_subp.sparsity_report(pruned)}
    assert report["one_by_n_conv1"].block_sparsity == 0.5
    assert report["one_by_n_conv1"].balance_ratio >= 1.0
    stripped = keras_subp.strip_subp(pruned)
    assert np.all(stripped.get_layer("conv1").kernel.numpy()[wrapper.mask.numpy() == 0] == 0)


def test_save_and_reload(tmp_path):
    pruned = keras_subp.prune_1xn(small_bn_cnn(seed=6), n=4, sparsity=0.5)
    path = tmp_path / "one_by_n.keras"
    pruned.save(path)
    reloaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(
        reloaded.get_layer("one_by_n_conv2").mask.numpy(),
        pruned.get_layer("one_by_n_conv2").mask.numpy(),
    )


def test_invalid_arguments():
    with pytest.raises(ValueError, match=r"sparsity must be in \[0, 1\)"):
        keras_subp.prune_1xn(small_bn_cnn(), n=4, sparsity=1.0)
    with pytest.raises(ValueError, match="positive integer"):
        keras_subp.prune_1xn(small_bn_cnn(), n=0, sparsity=0.5)
