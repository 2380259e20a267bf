"""Model zoo: parameter counts against known values, output shapes, BN placement, seeding."""

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
        consumers = [node.operation for node in conv._outbound_nodes]
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
