"""SUBPWrapper: straight-through gradients, pruned-weight decay, the callback guard, validation."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_subp
from keras_subp import schedules
from keras_subp.selection import num_pruned_blocks, num_regrown_blocks

from .subp_test_models import compile_for_classification, random_classification_data, small_bn_cnn


def numpy_valid_conv(images, kernel):
    kh, kw = kernel.shape[:2]
    out_h, out_w = images.shape[1] - kh + 1, images.shape[2] - kw + 1
    out = np.zeros((images.shape[0], out_h, out_w, kernel.shape[3]))
    for a in range(kh):
        for b in range(kw):
            out += np.einsum("nhwi,io->nhwo", images[:, a : a + out_h, b : b + out_w], kernel[a, b])
    return out


def numpy_kernel_gradient(images, upstream, kernel_shape):
    """d/dK of sum(conv(images, K) * upstream) for a valid, stride-1 convolution."""
    kh, kw = kernel_shape[:2]
    out_h, out_w = upstream.shape[1:3]
    gradient = np.zeros(kernel_shape)
    for a in range(kh):
        for b in range(kw):
            gradient[a, b] = np.einsum(
                "nhwi,nhwo->io", images[:, a : a + out_h, b : b + out_w], upstream
            )
    return gradient


def wrapped_conv_with_mask(pruned_decay, block_mask):
    keras.utils.set_random_seed(0)
    conv = keras.layers.Conv2D(4, 3, use_bias=False, name="conv")
    wrapper = keras_subp.prune_subp(conv, n=2, sparsity=0.5, pruned_decay=pruned_decay, seed=1)
    wrapper.build((None, 5, 5, 3))
    wrapper.update_mask()  # marks the mask as initialised; then impose a known mask
    wrapper.mask.assign(keras_subp.expand_block_mask(block_mask, (3, 3, 3, 4)))
    return wrapper


BLOCK_MASK = np.array([[1, 0, 1], [0, 0, 1]], dtype=np.float32)


def test_forward_uses_masked_kernel_and_gradient_is_straight_through():
    wrapper = wrapped_conv_with_mask(0.0, BLOCK_MASK)
    rng = np.random.default_rng(0)
    images = rng.normal(size=(2, 5, 5, 3)).astype(np.float32)
    upstream = rng.normal(size=(2, 3, 3, 4)).astype(np.float32)
    kernel = wrapper.layer.kernel.numpy().astype(np.float64)
    mask = wrapper.mask.numpy().astype(np.float64)
    with tf.GradientTape() as tape:
        outputs = wrapper(images, training=True)
        loss = tf.reduce_sum(outputs * upstream)
    gradient = tape.gradient(loss, wrapper.layer.kernel.value)
    np.testing.assert_allclose(
        outputs.numpy(), numpy_valid_conv(images, kernel * mask), rtol=1e-4, atol=1e-4
    )
    expected = numpy_kernel_gradient(images, upstream, kernel.shape)
    np.testing.assert_allclose(gradient.numpy(), expected, rtol=1e-4, atol=1e-4)
    assert np.all(np.abs(gradient.numpy()[mask == 0]) > 0)  # pruned weights still learn
    assert wrapper.losses == []  # no decay loss when pruned_decay == 0


def test_pruned_decay_loss_and_gradient():
    decay = 0.3
    wrapper = wrapped_conv_with_mask(decay, BLOCK_MASK)
    images = np.random.default_rng(1).normal(size=(1, 5, 5, 3)).astype(np.float32)
    kernel = wrapper.layer.kernel.numpy().astype(np.float64)
    mask = wrapper.mask.numpy().astype(np.float64)
    with tf.GradientTape() as tape:
        wrapper(images, training=True)
        decay_loss = tf.add_n(wrapper.losses)
    gradient = tape.gradient(decay_loss, wrapper.layer.kernel.value).numpy()
    assert float(decay_loss) == pytest.approx(
        decay / 2 * np.sum(((1 - mask) * kernel) ** 2), rel=1e-5
    )
    np.testing.assert_allclose(gradient, decay * (1 - mask) * kernel, rtol=1e-5, atol=1e-7)
    wrapper(images, training=False)
    assert wrapper.losses == []  # inference adds no decay loss


def test_fit_applies_the_pruned_decay_to_pruned_weights_only():
    keras.utils.set_random_seed(2)
    inputs = keras.Input((6, 6, 4))
    wrapped = keras_subp.prune_subp(
        keras.layers.Conv2D(4, 3, use_bias=False, name="conv"),
        n=2,
        sparsity=0.5,
        schedule=schedules.Constant(0),
        pruned_decay=0.5,
        seed=0,
    )
    # Zeroing the output leaves the decay as the only source of gradient.
    outputs = keras.layers.Lambda(lambda t: t * 0.0)(wrapped(inputs))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    before = wrapped.layer.kernel.numpy().copy()
    model.fit(
        np.ones((1, 6, 6, 4), np.float32),
        np.zeros((1, 4, 4, 4), np.float32),
        epochs=1,
        verbose=0,
        callbacks=[keras_subp.UpdateSUBP()],
    )
    mask = wrapped.mask.numpy()
    after = wrapped.layer.kernel.numpy()
    assert (mask == 0).any()
    np.testing.assert_allclose(after, before * np.where(mask == 0, 1 - 0.1 * 0.5, 1.0), rtol=1e-6)


def test_training_without_the_callback_raises_at_the_first_batch():
    model = compile_for_classification(keras_subp.prune_subp(small_bn_cnn(), n=4, seed=0))
    images, labels = random_classification_data(count=8)
    with pytest.raises(RuntimeError, match=r"UpdateSUBP\(\)"):
        model.fit(images, labels, epochs=1, verbose=0)
    model.predict(images, verbose=0)  # inference needs no callback
    model.evaluate(images, labels, verbose=0)


def test_masks_stay_uniform_and_follow_the_regrowth_counts():
    sparsity = 0.3
    schedule = schedules.Linear(0, 3)
    with pytest.warns(UserWarning, match="odd"):
        model = keras_subp.prune_subp(
            small_bn_cnn(odd_layer=True),
            n=4,
            sparsity=sparsity,
            schedule=schedule,
            criterion="l1",
            seed=4,
        )
    compile_for_classification(model)
    images, labels = random_classification_data(count=32)
    callback = keras_subp.UpdateSUBP()
    for epoch in range(5):
        model.fit(images, labels, epochs=1, batch_size=16, verbose=0, callbacks=[callback])
        for wrapper in keras_subp.subp_wrappers(model):
            input_channels = wrapper.input_channels
            expected_zeros = num_pruned_blocks(sparsity, input_channels) - num_regrown_blocks(
                sparsity, schedule(epoch), input_channels
            )
            zeros_per_group = (wrapper.block_mask() == 0).sum(axis=1)
            assert np.all(zeros_per_group == expected_zeros), (wrapper.name, epoch)
            assert int(wrapper.schedule_epoch.numpy()) == epoch
    # After the schedule's end: every group keeps exactly Cin - int(p * Cin) blocks.
    for wrapper in keras_subp.subp_wrappers(model):
        kept = wrapper.block_mask().sum(axis=1)
        assert np.all(kept == wrapper.input_channels - int(sparsity * wrapper.input_channels))
    # conv1 (Cin 8) and conv2 (Cin 10; the 10-channel "odd" conv stays dense): int(2.4), int(3.0).
    assert [u.pruned_blocks_per_group for u in callback.last_updates] == [2, 3]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"n": 0}, "positive integer"),
        ({"n": 2.0}, "positive integer"),
        ({"n": True}, "positive integer"),
        ({"sparsity": 1.0}, r"sparsity must be in \[0, 1\)"),
        ({"sparsity": -0.1}, r"sparsity must be in \[0, 1\)"),
        ({"sparsity": "0.5"}, "sparsity must be a number"),
        ({"criterion": "l3"}, "Unknown criterion 'l3'"),
        ({"temperature": 0.0}, "temperature must be positive"),
        ({"pruned_decay": -1.0}, "pruned_decay must be non-negative"),
        ({"seed": -5}, "seed must be an integer"),
        ({"schedule": "cubic"}, "schedule must be"),
    ],
)
def test_invalid_arguments_raise_clear_errors(arguments, message):
    options = {"n": 4, **arguments}
    with pytest.raises(ValueError, match=message):
        keras_subp.SUBPWrapper(keras.layers.Conv2D(8, 3), **options)


@pytest.mark.parametrize(
    ("layer", "message"),
    [
        (
            keras.layers.Conv2D(6, 3, name="six"),
            "6 output channels, not divisible by the block size n=4",
        ),
        (keras.layers.Conv2D(8, 3, groups=2, name="grouped"), "grouped convolution"),
        (keras.layers.DepthwiseConv2D(3, name="depthwise"), "only keras.layers.Conv2D"),
        (keras.layers.Dense(8, name="dense"), "only keras.layers.Conv2D"),
    ],
)
def test_explicitly_requested_ineligible_layers_raise(layer, message):
    with pytest.raises(ValueError, match=message):
        keras_subp.prune_subp(layer, n=4)
    with pytest.raises(ValueError, match=message):
        keras_subp.SUBPWrapper(layer, n=4)
