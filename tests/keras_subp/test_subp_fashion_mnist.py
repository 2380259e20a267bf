"""Real data: SUBP on the committed Fashion-MNIST sample gives exact uniform 1x4 sparsity."""

import keras
import numpy as np

import keras_subp
from cnn_zoo.datasets import to_model_inputs
from keras_subp import schedules

SPARSITY = 0.5
N = 4


def bn_cnn(seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)

    def conv_bn_relu(x, filters, name):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=name)(x)
        # momentum 0.9: with few steps the default 0.99 leaves the moving statistics unusable.
        x = keras.layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
        return keras.layers.ReLU(name=f"{name}_relu")(x)

    inputs = keras.Input((28, 28, 1))
    x = conv_bn_relu(inputs, 16, "stem")
    x = keras.layers.MaxPooling2D(name="pool1")(x)
    x = conv_bn_relu(x, 32, "conv1")
    x = keras.layers.MaxPooling2D(name="pool2")(x)
    x = conv_bn_relu(x, 32, "conv2")
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, keras.layers.Dense(10, name="logits")(x))


def test_subp_on_fashion_mnist_sample(fashion_mnist_sample):
    data = fashion_mnist_sample
    train_images, test_images = to_model_inputs(data.x_train), to_model_inputs(data.x_test)
    model = keras_subp.prune_subp(
        bn_cnn(seed=0), n=N, sparsity=SPARSITY, schedule=schedules.Cubic(0, 2), seed=0
    )
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(
        train_images,
        data.y_train,
        batch_size=64,
        epochs=4,
        verbose=0,
        callbacks=[keras_subp.UpdateSUBP()],
    )
    stripped = keras_subp.strip_subp(model)
    stripped.compile(
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"]
    )
    _, accuracy = stripped.evaluate(test_images, data.y_test, verbose=0)
    print(f"stripped SUBP model test accuracy: {accuracy:.4f}")
    assert accuracy > 0.6, accuracy  # chance is 0.1

    wrapped = [wrapper.layer.name for wrapper in keras_subp.subp_wrappers(model)]
    assert wrapped == ["conv1", "conv2"]
    for name in wrapped:
        kernel = stripped.get_layer(name).kernel.numpy()
        input_channels, output_channels = kernel.shape[2], kernel.shape[3]
        zero_blocks = np.all(
            kernel.reshape(3, 3, input_channels, output_channels // N, N) == 0, axis=(0, 1, 4)
        )  # (Cin, G)
        assert np.all(zero_blocks.sum(axis=0) == int(SPARSITY * input_channels)), name
        nonzero_weights = np.count_nonzero(kernel)
        assert (
            nonzero_weights
            == kernel.size - kernel.size * int(SPARSITY * input_channels) // input_channels
        )
    rows = keras_subp.sparsity_report(stripped, n=N)
    assert {row.name: row.block_sparsity for row in rows if row.name in wrapped} == {
        "conv1": 0.5,
        "conv2": 0.5,
    }
