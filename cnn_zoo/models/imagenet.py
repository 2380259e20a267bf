"""ImageNet-shaped models (224x224x3 inputs by default, 1000 classes).

ResNet-18/34 are built here in the torchvision topology SUBP uses (7x7 stem with padding 3, 3x3
max-pool with padding 1, residual BasicBlocks, 1x1 stride-2 downsample convs, no conv biases,
PyTorch's symmetric padding), because keras.applications has neither. ResNet-50 and MobileNetV1
are keras.applications models with `weights=None`.

Every builder takes `classifier_activation`, the activation of the final Dense layer: None gives
logits (what training with `from_logits=True`, conversion checks and benchmarks want, since
comparing softmax outputs of a randomly initialised network hides differences), "softmax" gives
class probabilities. The defaults keep each family's own convention: logits for ResNet-18/34,
softmax for the keras.applications models.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

from cnn_zoo.models.building_blocks import SeededInitializers, classifier_head, conv_bn


def _checked_activation(classifier_activation: str | None) -> str | None:
    """`classifier_activation` if Keras knows it (or None), else a `ValueError` naming it."""
    if classifier_activation is None:
        return None
    try:
        keras.activations.get(classifier_activation)
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"classifier_activation must be None (logits) or a Keras activation name such as "
            f'"softmax", got {classifier_activation!r}.'
        ) from error
    return classifier_activation


def _torchvision_residual_block(x, filters: int, strides: int, name: str, init: SeededInitializers):
    """torchvision's BasicBlock (a residual block: two 3x3 conv-BN, shortcut, ReLU)."""
    shortcut = x
    y = conv_bn(x, filters, 3, strides, f"{name}_conv1", init, explicit_padding=True)
    y = conv_bn(y, filters, 3, 1, f"{name}_conv2", init, relu=False, explicit_padding=True)
    if strides != 1 or x.shape[-1] != filters:
        shortcut = conv_bn(x, filters, 1, strides, f"{name}_downsample", init, relu=False)
    y = keras.layers.Add(name=f"{name}_add")([y, shortcut])
    return keras.layers.ReLU(name=f"{name}_out")(y)


def _torchvision_resnet(
    blocks: Sequence[int],
    name: str,
    input_shape,
    num_classes: int,
    seed: int | None,
    classifier_activation: str | None,
) -> keras.Model:
    activation = _checked_activation(classifier_activation)
    init = SeededInitializers(seed)
    inputs = keras.Input(input_shape, name="image")
    x = conv_bn(inputs, 64, 7, 2, "stem", init, explicit_padding=True)
    x = keras.layers.ZeroPadding2D(1, name="stem_pool_pad")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, name="stem_pool")(x)
    for stage, (count, width) in enumerate(zip(blocks, (64, 128, 256, 512), strict=True), start=1):
        for index in range(count):
            strides = 2 if stage > 1 and index == 0 else 1
            x = _torchvision_residual_block(x, width, strides, f"layer{stage}_block{index}", init)
    outputs = classifier_head(x, num_classes, init, name="fc", activation=activation)
    return keras.Model(inputs, outputs, name=name)


def resnet18(
    input_shape: tuple[int, int, int] = (224, 224, 3),
    num_classes: int = 1000,
    seed: int | None = None,
    classifier_activation: str | None = None,
) -> keras.Model:
    """ResNet-18, torchvision topology: 11,689,512 trainable parameters at 1000 classes.

    Outputs logits by default; `classifier_activation="softmax"` gives probabilities.
    """
    return _torchvision_resnet(
        (2, 2, 2, 2), "resnet18", input_shape, num_classes, seed, classifier_activation
    )


def resnet34(
    input_shape: tuple[int, int, int] = (224, 224, 3),
    num_classes: int = 1000,
    seed: int | None = None,
    classifier_activation: str | None = None,
) -> keras.Model:
    """ResNet-34, torchvision topology: 21,797,672 trainable parameters at 1000 classes.

    Outputs logits by default; `classifier_activation="softmax"` gives probabilities.
    """
    return _torchvision_resnet(
        (3, 4, 6, 3), "resnet34", input_shape, num_classes, seed, classifier_activation
    )


def _seed_globally(seed: int | None) -> None:
    # keras.applications builders take no initialisers, so a seed can only be applied globally.
    if seed is not None:
        keras.utils.set_random_seed(seed)


def resnet50(
    input_shape: tuple[int, int, int] = (224, 224, 3),
    num_classes: int = 1000,
    seed: int | None = None,
    classifier_activation: str | None = "softmax",
) -> keras.Model:
    """keras.applications ResNet-50 (weights=None): 25,636,712 parameters in all at 1000 classes.

    Its classifier ends in a softmax, as keras.applications builds it; pass
    `classifier_activation=None` for logits. `seed` calls `keras.utils.set_random_seed` (a global
    side effect) because the builder takes no initialisers.
    """
    activation = _checked_activation(classifier_activation)
    _seed_globally(seed)
    return keras.applications.ResNet50(
        weights=None,
        input_shape=input_shape,
        classes=num_classes,
        classifier_activation=activation,
    )


def mobilenet_v1(
    input_shape: tuple[int, int, int] = (224, 224, 3),
    num_classes: int = 1000,
    seed: int | None = None,
    classifier_activation: str | None = "softmax",
) -> keras.Model:
    """keras.applications MobileNet (V1, alpha 1.0, weights=None): 4,253,864 parameters in all.

    Its classifier ends in a softmax; pass `classifier_activation=None` for logits. `seed` is
    applied globally, as for `resnet50`.
    """
    activation = _checked_activation(classifier_activation)
    _seed_globally(seed)
    return keras.applications.MobileNet(
        weights=None,
        input_shape=input_shape,
        classes=num_classes,
        classifier_activation=activation,
    )
