"""Layer helpers shared by the zoo's models: seeded initialisers and conv -> BN -> ReLU stacks."""

from __future__ import annotations

import keras

# PyTorch's BatchNorm defaults (momentum 0.1 == Keras 0.9, eps 1e-5), as in the SUBP/torchvision models.
BATCH_NORM_MOMENTUM = 0.9
BATCH_NORM_EPSILON = 1e-5


class SeededInitializers:
    """Hands out initialisers with distinct, deterministic seeds (seed, seed + 1, ...).

    With `seed=None` every initialiser is unseeded and Keras draws its own seeds.
    Convolutions use He-normal with fan_out, untruncated, as SUBP's and torchvision's models do.
    """

    def __init__(self, seed: int | None):
        self._next_seed = seed

    def _take_seed(self) -> int | None:
        if self._next_seed is None:
            return None
        seed, self._next_seed = self._next_seed, self._next_seed + 1
        return seed

    def conv(self) -> keras.initializers.Initializer:
        return keras.initializers.VarianceScaling(
            2.0, mode="fan_out", distribution="untruncated_normal", seed=self._take_seed()
        )

    def dense(self) -> keras.initializers.Initializer:
        return keras.initializers.GlorotUniform(seed=self._take_seed())


def batch_norm(name: str) -> keras.layers.BatchNormalization:
    """BatchNormalization with PyTorch's momentum and epsilon."""
    return keras.layers.BatchNormalization(
        momentum=BATCH_NORM_MOMENTUM, epsilon=BATCH_NORM_EPSILON, name=name
    )


def conv_bn(
    x,
    filters: int,
    kernel_size: int,
    strides: int,
    name: str,
    init: SeededInitializers,
    relu: bool = True,
    explicit_padding: bool = False,
):
    """Conv2D (no bias) -> BatchNormalization [-> ReLU].

    `explicit_padding=True` pads kernel_size // 2 on every side and convolves VALID, PyTorch's
    symmetric padding; Keras "same" with stride 2 would pad only bottom/right.
    """
    padding = "same"
    if explicit_padding and kernel_size > 1:
        x = keras.layers.ZeroPadding2D(kernel_size // 2, name=f"{name}_pad")(x)
        padding = "valid"
    x = keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        use_bias=False,
        kernel_initializer=init.conv(),
        name=f"{name}_conv",
    )(x)
    x = batch_norm(f"{name}_bn")(x)
    if relu:
        x = keras.layers.ReLU(name=f"{name}_relu")(x)
    return x


def classifier_head(
    x,
    num_classes: int,
    init: SeededInitializers,
    name: str = "classifier",
    activation: str | None = None,
):
    """Global average pooling -> Dense(num_classes); `activation` None outputs logits."""
    x = keras.layers.GlobalAveragePooling2D(name="global_pool")(x)
    return keras.layers.Dense(
        num_classes, activation=activation, kernel_initializer=init.dense(), name=name
    )(x)
