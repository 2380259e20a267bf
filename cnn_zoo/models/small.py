"""BN CNNs for 28x28 inputs (Fashion-MNIST, MNIST).

Every channel count is a multiple of 32, so 1xN blocks with N up to 32 fit every convolution but the
stem. The models output logits (no softmax): compile with `from_logits=True`.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

from cnn_zoo.models.building_blocks import SeededInitializers, batch_norm, classifier_head, conv_bn


def _check_widths(widths: Sequence[int]) -> None:
    if not widths or any(int(w) <= 0 or int(w) % 32 for w in widths):
        raise ValueError(f"widths must be positive multiples of 32, got {tuple(widths)}")


def vgg_small(
    input_shape: tuple[int, int, int] = (28, 28, 1),
    num_classes: int = 10,
    widths: Sequence[int] = (32, 64, 128),
    convs_per_stage: int = 1,
    seed: int | None = None,
) -> keras.Model:
    """VGG-style CNN: stages of `convs_per_stage` 3x3 conv-BN-ReLU, 2x2 max-pooling between stages.

    Defaults: 32 -> pool -> 64 -> pool -> 128, global average pooling, Dense; 94,634 parameters
    (94,186 trainable).
    """
    _check_widths(widths)
    init = SeededInitializers(seed)
    inputs = keras.Input(input_shape, name="image")
    x = inputs
    for stage, width in enumerate(widths, start=1):
        if stage > 1:
            x = keras.layers.MaxPooling2D(2, name=f"stage{stage}_pool")(x)
        for index in range(1, convs_per_stage + 1):
            x = conv_bn(x, width, 3, 1, f"stage{stage}_block{index}", init)
    return keras.Model(inputs, classifier_head(x, num_classes, init), name="vgg_small")


def _residual_block(x, filters: int, strides: int, name: str, init: SeededInitializers):
    """A BasicBlock: two 3x3 conv-BN with an identity (or 1x1 conv-BN) shortcut, then ReLU."""
    shortcut = x
    y = conv_bn(x, filters, 3, strides, f"{name}_1", init)
    y = conv_bn(y, filters, 3, 1, f"{name}_2", init, relu=False)
    if strides != 1 or x.shape[-1] != filters:
        shortcut = conv_bn(x, filters, 1, strides, f"{name}_downsample", init, relu=False)
    y = keras.layers.Add(name=f"{name}_add")([y, shortcut])
    return keras.layers.ReLU(name=f"{name}_out")(y)


def resnet_small(
    input_shape: tuple[int, int, int] = (28, 28, 1),
    num_classes: int = 10,
    widths: Sequence[int] = (32, 64, 128),
    residual_blocks_per_stage: int = 1,
    seed: int | None = None,
) -> keras.Model:
    """ResNet-style CNN: 3x3 stem, one stage of `residual_blocks_per_stage` residual blocks
    (BasicBlocks; "block" alone means a 1xN weight block elsewhere in the project) per width,
    stride 2 from the second stage, 1x1 downsample convs where the shape changes, global average
    pooling, Dense."""
    _check_widths(widths)
    init = SeededInitializers(seed)
    inputs = keras.Input(input_shape, name="image")
    x = conv_bn(inputs, widths[0], 3, 1, "stem", init)
    for stage, width in enumerate(widths, start=1):
        for index in range(1, residual_blocks_per_stage + 1):
            strides = 2 if stage > 1 and index == 1 else 1
            x = _residual_block(x, width, strides, f"stage{stage}_block{index}", init)
    return keras.Model(inputs, classifier_head(x, num_classes, init), name="resnet_small")


def mobilenet_v1_small(
    input_shape: tuple[int, int, int] = (28, 28, 1),
    num_classes: int = 10,
    widths: Sequence[int] = (32, 64, 128, 128, 256),
    strides: Sequence[int] = (1, 1, 2, 1, 2),
    seed: int | None = None,
) -> keras.Model:
    """MobileNetV1-style CNN: a 3x3 stem to widths[0], then depthwise-separable blocks
    (depthwise 3x3-BN-ReLU, pointwise 1x1-BN-ReLU) to each later width with the given strides."""
    _check_widths(widths)
    if len(strides) != len(widths):
        raise ValueError(f"need one stride per width: {len(strides)} strides, {len(widths)} widths")
    init = SeededInitializers(seed)
    inputs = keras.Input(input_shape, name="image")
    x = conv_bn(inputs, widths[0], 3, strides[0], "stem", init)
    for index, (width, stride) in enumerate(zip(widths[1:], strides[1:], strict=True), start=1):
        x = keras.layers.DepthwiseConv2D(
            3,
            strides=stride,
            padding="same",
            use_bias=False,
            depthwise_initializer=init.conv(),
            name=f"block{index}_depthwise",
        )(x)
        x = batch_norm(f"block{index}_depthwise_bn")(x)
        x = keras.layers.ReLU(name=f"block{index}_depthwise_relu")(x)
        x = conv_bn(x, width, 1, 1, f"block{index}_pointwise", init)
    return keras.Model(inputs, classifier_head(x, num_classes, init), name="mobilenet_v1_small")
