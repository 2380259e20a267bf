"""Graph analysis: which layers can be pruned, which are skipped and why."""

import keras
import numpy as np
import pytest

from cnn_zoo.models import mobilenet_v1_small, resnet_small, vgg_small
from dfcompress.graph import analyse
from tests.dfcompress.dfcompress_test_models import conv_net, residual_net


def test_vgg_stack_every_conv_is_prunable_into_the_next_layer():
    graph = analyse(vgg_small(seed=0))
    prunable = {site.producer: [s.layer for s in site.consumers] for site in graph.prunable_sites()}
    assert prunable == {
        "stage1_block1_conv": ["stage2_block1_conv"],
        "stage2_block1_conv": ["stage3_block1_conv"],
        "stage3_block1_conv": ["classifier"],  # through global average pooling
    }
    assert graph.first_layers == {"stage1_block1_conv"}
    assert dict(graph.skipped)["classifier"] == "model output"


def test_residual_blocks_prune_conv1_only_and_say_why_not_the_rest():
    graph = analyse(resnet_small(seed=0))
    assert [s.producer for s in graph.prunable_sites()] == [
        "stage1_block1_1_conv",
        "stage2_block1_1_conv",
        "stage3_block1_1_conv",
    ]
    skipped = dict(graph.skipped)
    assert "Add" in skipped["stage1_block1_2_conv"]
    assert "Add" in skipped["stage2_block1_downsample_conv"]
    assert "Add" in skipped["stem_conv"]


def test_pointwise_convs_feeding_depthwise_are_skipped():
    graph = analyse(mobilenet_v1_small(seed=0))
    assert graph.prunable_sites()[-1].producer == "block4_pointwise_conv"  # -> GAP -> Dense
    skipped = dict(graph.skipped)
    assert "DepthwiseConv2D" in skipped["block1_pointwise_conv"]
    assert "depthwise" in skipped["block1_depthwise"]


@pytest.mark.parametrize("sequential", [False, True])
def test_flatten_head_maps_channels_to_dense_rows(sequential):
    model = conv_net(0, sequential=sequential, head="flatten")
    graph = analyse(model)
    (slot,) = graph.sites["conv2"].consumers
    assert (slot.layer, slot.kind, slot.positions) == ("classifier", "flatten", 4)
    kernel = np.arange(4 * 16 * 5, dtype=float).reshape(64, 5)
    rows = slot.channel_major(kernel, 16)
    # Flatten of (2, 2, 16) puts channel c of position p at row p * 16 + c
    np.testing.assert_array_equal(rows[3].reshape(4, 5), kernel[3::16])
    np.testing.assert_array_equal(slot.from_channel_major(rows, kernel.shape), kernel)


def test_keras_applications_resnet50_bottlenecks():
    graph = analyse(keras.applications.ResNet50(weights=None))
    prunable = {s.producer for s in graph.prunable_sites()}
    assert "conv2_block1_1_conv" in prunable and "conv2_block1_2_conv" in prunable
    assert "conv5_block3_2_conv" in prunable
    assert "conv2_block1_3_conv" not in prunable and "conv2_block1_0_conv" not in prunable
    # the stem feeds both the first block's conv1 and its shortcut conv: both absorb
    assert {s.layer for s in graph.sites["conv1_conv"].consumers} == {
        "conv2_block1_0_conv",
        "conv2_block1_1_conv",
    }
    assert len(prunable) == 33


def test_residual_net_pairs():
    graph = analyse(residual_net(0))
    assert [s.producer for s in graph.prunable_sites()] == ["b0_conv1", "b1_conv1"]
