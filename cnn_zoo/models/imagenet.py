"""ImageNet-shaped models (224x224x3 inputs, 1000 classes, logits out unless noted).

ResNet-18/34 are built here in the torchvision topology SUBP uses (7x7 stem with padding 3, 3x3
max-pool with padding 1, BasicBlocks, 1x1 stride-2 downsample convs, no conv biases, PyTorch's
symmetric padding), because keras.applications has neither. ResNet-50 and MobileNetV1 are
keras.applications models with `weights=None`.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

from cnn_zoo.models.building_blocks import SeededInitializers, classifier_head, conv_bn


def _torchvision_basic_block(x, filters: int, strides: int, name: str, init: SeededInitializers):
    shortcut = x
    y = conv_bn(x, filters, 3, strides, f"{name}_conv1", init, explicit_padding=True)
    y = conv_bn(y, filters, 3, 1, f"{name}_conv2", init, relu=False, explicit_padding=True)
    if strides != 1 or x.shape[-1] != filters:
        shortcut = conv_bn(x, filters, 1, strides, f"{name}_downsample", init, relu=False)
    y = keras.layers.Add(name=f"{name}_add")([y, shortcut])
    return keras.layers.ReLU(name=f"{name}_out")(y)


def _resnet_basic(
    blocks: Sequence[int], name: str, input_shape, num_classes: int, seed: int | None
) -> keras.Model:
    init = SeededInitializers(seed)
    inputs = keras.Input(input_shape, name="image")
    x = conv_bn(inputs, 64, 7, 2, "stem", init, explicit_padding=True)
    x = keras.layers.ZeroPadding2D(1, name="stem_pool_pad")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, name="stem_pool")(x)
    for stage, (count, width) in enumerate(zip(blocks, (64, 128, 256, 512), strict=True), start=1):
        for index in range(count):
            strides = 2 if stage > 1 and index == 0 else 1
            x = _torchvision_basic_block(x, width, strides, f"layer{stage}_block{index}", init)
    return keras.Model(inputs, classifier_head(x, num_classes, init, name="fc"), name=name)


def resnet18(
    input_shape: tuple[int, int, int] = (224, 224, 3),
    num_classes: int = 1000,
    seed: int | None = None,
) -> keras.Model:
    """ResNet-18, torchvision topology: 11,689,512 trainable parameters at 1000 classes."""
    return _resnet_basic((2, 2, 2, 2), "resnet18", input_shape, num_classes, seed)


def resnet34(
    input_shape: tuple[int, int, int] = (224, 224, 3),
    num_classes: int = 1000,
    seed: int | None = None,
) -> keras.Model:
    """ResNet-34, torchvision topology: 21,797,672 trainable parameters at 1000 classes."""
    return _resnet_basic((3, 4, 6, 3), "resnet34", input_shape, num_classes, seed)


def _seed_globally(seed: int | None) -> None:
    # keras.applications builders take no initialisers, so a seed can only be applied globally.
    if seed is not None:
        keras.utils.set_random_seed(seed)


def resnet50(
    input_shape: tuple[int, int, int] = (224, 224, 3),
    num_classes: int = 1000,
    seed: int | None = None,
) -> keras.Model:
    """keras.applications ResNet-50 (weights=None): 25,636,712 parameters in all at 1000 classes.

    Its classifier ends in a softmax, as keras.applications builds it. `seed` calls
    `keras.utils.set_random_seed` (a global side effect) because the builder takes no initialisers.
    """
    _seed_globally(seed)
    return keras.applications.ResNet50(weights=None, input_shape=input_shape, classes=num_classes)


def mobilenet_v1(
    input_shape: tuple[int, int, int] = (224, 224, 3),
    num_classes: int = 1000,
    seed: int | None = None,
) -> keras.Model:
    """keras.applications MobileNet (V1, alpha 1.0, weights=None): 4,253,864 parameters in all.

    Its classifier ends in a softmax. `seed` is applied globally, as for `resnet50`.
    """
    _seed_globally(seed)
    return keras.applications.MobileNet(weights=None, input_shape=input_shape, classes=num_classes)
