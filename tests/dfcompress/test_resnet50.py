"""keras.applications ResNet-50 (random weights): UDFC 30 % / 6-bit and DF-MPC 2/6 in seconds."""

import keras
import numpy as np
import pytest

import dfcompress
from dfcompress.dfmpc import low_precision_pairs
from dfcompress.graph import analyse

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def resnet50():
    keras.utils.set_random_seed(0)
    return keras.applications.ResNet50(weights=None)


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(0).normal(size=(1, 224, 224, 3)).astype(np.float32)


def test_udfc_shrinks_resnet50_in_seconds(resnet50, image):
    compressed, report = dfcompress.udfc(resnet50, prune_ratio=0.3, weight_bits=6)
    print(f"\nUDFC 30 %/6-bit on ResNet-50: {report.seconds:.1f} s")
    print("\n".join(str(report).splitlines()[-2:]))
    # generous: the shared 2-core machine ran this at load average 16 in 93 s
    assert report.seconds < 300
    assert compressed.get_layer("conv2_block1_1_conv").filters == 44
    assert compressed.get_layer("conv5_block3_2_conv").filters == 358
    assert compressed.get_layer("conv5_block3_3_conv").filters == 2048  # feeds the residual add
    assert report.params_after < 0.7 * report.params_before
    assert report.size_mb_after < report.size_mb_before * 6 / 32
    assert compressed(image).shape == (1, 1000)


def test_dfmpc_resnet50_pairs_bottlenecks_in_seconds(resnet50, image):
    pairs, _ = low_precision_pairs(analyse(resnet50))
    assert len(pairs) == 16  # every bottleneck: 3x3 conv low, the following 1x1 conv high
    assert pairs[0] == ("conv2_block1_2_conv", "conv2_block1_3_conv")
    compressed, report = dfcompress.dfmpc(resnet50)
    print(f"\nDF-MPC 2/6 on ResNet-50: {report.seconds:.1f} s")
    assert report.seconds < 300
    assert sum(bits == 2 for bits in report.layer_bits.values()) == 16
    assert report.layer_bits["conv1_conv"] == 6 and report.layer_bits["predictions"] == 6
    assert report.size_mb_after < report.size_mb_before * 6 / 32
    assert np.isfinite(np.asarray(compressed(image))).all()
