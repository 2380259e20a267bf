"""Model zoo: parameter counts against known values, output shapes, BN placement, seeding,
logits or softmax heads."""

import keras
import numpy as np
import pytest

from cnn_zoo import models


def trainable_count(model) -> int:
    return sum(int(np.prod(weight.shape)) for weight in model.trainable_weights)


def test_resnet18_matches_torchvision_parameter_count():
    model = models.resnet18(seed=0)
    assert trainable_count(model) == 11_689_512  # torchvision resnet18, BN statistics not counted
    assert model.output_shape == (None, 1000)
    assert model.get_layer("layer2_block0_downsample_conv").kernel_size == (1, 1)
    assert model.get_layer("layer2_block0_downsample_conv").strides == (2, 2)


def test_resnet34_matches_torchvision_parameter_count():
    model = models.resnet34(seed=0)
    assert trainable_count(model) == 21_797_672
    assert model.get_layer("global_pool").output.shape == (None, 512)


def test_keras_applications_models_have_known_sizes():
    assert models.resnet50(seed=0).count_params() == 25_636_712
    mobilenet = models.mobilenet_v1(seed=0)
    assert mobilenet.count_params() == 4_253_864
    assert mobilenet.output_shape == (None, 1000)


@pytest.mark.parametrize(
    "builder", [models.vgg_small, models.resnet_small, models.mobilenet_v1_small]
)
def test_small_models_shapes_and_bn_after_every_conv(builder):
    model = builder(seed=1)
    assert model.input_shape == (None, 28, 28, 1) and model.output_shape == (None, 10)
    outputs = model(np.zeros((2, 28, 28, 1), np.float32))
    assert outputs.shape == (2, 10)
    convs = [layer for layer in model.layers if "Conv2D" in type(layer).__name__]
    assert convs
    for conv in convs:
        consumers = [
            layer
            for layer in model.layers
            if any(tensor is conv.output for tensor in keras.tree.flatten(layer.input))
        ]
        assert [type(c).__name__ for c in consumers] == ["BatchNormalization"], conv.name
        if type(conv).__name__ == "Conv2D":
            assert conv.filters % 32 == 0, conv.name


def test_seed_makes_models_reproducible():
    first, second = models.resnet_small(seed=7), models.resnet_small(seed=7)
    other = models.resnet_small(seed=8)
    for a, b in zip(first.get_weights(), second.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    kernel = first.get_layer("stage2_block1_1_conv").kernel.numpy()
    assert not np.array_equal(kernel, other.get_layer("stage2_block1_1_conv").kernel.numpy())


def test_widths_must_be_multiples_of_32():
    with pytest.raises(ValueError, match="multiples of 32"):
        models.vgg_small(widths=(32, 48))


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


# Small inputs and class counts keep the ImageNet builders quick; the heads are what is tested.
@pytest.mark.parametrize(
    "builder, default_is_softmax",
    [
        (models.resnet18, False),
        (models.resnet34, False),
        (models.resnet50, True),
        (models.mobilenet_v1, True),
    ],
)
def test_imagenet_models_offer_logits_and_softmax_heads(builder, default_is_softmax):
    images = np.random.default_rng(0).standard_normal((2, 64, 64, 3)).astype(np.float32)
    options = {"input_shape": (64, 64, 3), "num_classes": 7, "seed": 3}
    logits_model = builder(classifier_activation=None, **options)
    softmax_model = builder(classifier_activation="softmax", **options)
    default_model = builder(**options)
    for model in (softmax_model, default_model):  # same seed, same weights
        for a, b in zip(logits_model.get_weights(), model.get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)
    logits = keras.ops.convert_to_numpy(logits_model(images, training=False))
    probabilities = keras.ops.convert_to_numpy(softmax_model(images, training=False))
    default = keras.ops.convert_to_numpy(default_model(images, training=False))
    assert logits.shape == probabilities.shape == (2, 7)
    # Logits are not a distribution; softmax of them is the softmax head's output.
    assert not np.allclose(logits.sum(axis=-1), 1.0, atol=1e-3)
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(softmax(logits.astype(np.float64)), probabilities, atol=1e-5)
    np.testing.assert_allclose(default, probabilities if default_is_softmax else logits, atol=1e-6)


@pytest.mark.parametrize("builder", [models.resnet18, models.resnet50])
def test_imagenet_models_reject_unknown_classifier_activation(builder):
    with pytest.raises(ValueError, match="classifier_activation must be None"):
        builder(input_shape=(64, 64, 3), num_classes=7, classifier_activation="softmaxx")
