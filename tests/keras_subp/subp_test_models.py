"""Tiny models shared by the keras_subp tests."""

import keras
import numpy as np


def small_bn_cnn(input_shape=(12, 12, 1), num_classes=3, seed=0, odd_layer=False) -> keras.Model:
    """stem conv (dense) -> BN/ReLU -> conv1 16 -> BN/ReLU -> [odd 10-channel conv] -> conv2 16."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(input_shape, name="image")
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False, name="stem")(inputs)
    x = keras.layers.BatchNormalization(momentum=0.9, name="stem_bn")(x)
    x = keras.layers.ReLU(name="stem_relu")(x)
    x = keras.layers.Conv2D(16, 3, padding="same", use_bias=False, name="conv1")(x)
    x = keras.layers.BatchNormalization(momentum=0.9, name="conv1_bn")(x)
    x = keras.layers.ReLU(name="conv1_relu")(x)
    if odd_layer:
        x = keras.layers.Conv2D(10, 1, name="odd")(x)
    x = keras.layers.Conv2D(16, 3, padding="same", name="conv2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="small_bn_cnn")


def random_classification_data(count=64, input_shape=(12, 12, 1), num_classes=3, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.random((count, *input_shape), dtype=np.float32)
    labels = rng.integers(0, num_classes, size=count)
    return images, labels


def compile_for_classification(model, learning_rate=0.05) -> keras.Model:
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model
