"""On the committed Fashion-MNIST sample: a small trained BN ResNet compressed without data.

Trains `cnn_zoo.models.resnet_small` for 3 epochs on the 5,000 training images (seeded), then
compares test accuracy on the 1,000 test images at 30 % pruning with the default l2 criterion, and
DF-MPC MP2/6 against direct MP2/6 quantization with the same per-layer bits.

UDFC runs with its default objective (combinations fitted after the activation). With the paper's
objective (`objective="bn"`) Neuron Merging wins on most such models; docs/compression.md has both
on this model and nine others (resnet_small seeds 1-4, vgg_small seeds 0-4), and why.
"""

import keras
import numpy as np
import pytest

import dfcompress
from cnn_zoo.datasets import to_model_inputs
from cnn_zoo.models import resnet_small

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(fashion_mnist_sample):
    data = fashion_mnist_sample
    keras.utils.set_random_seed(0)
    model = resnet_small(seed=0)
    model.compile(
        optimizer=keras.optimizers.Adam(2e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(to_model_inputs(data.x_train), data.y_train, epochs=3, batch_size=64, verbose=0)
    x_test = to_model_inputs(data.x_test)

    def accuracy(candidate: keras.Model) -> float:
        logits = candidate.predict(x_test, batch_size=250, verbose=0)
        return float(np.mean(logits.argmax(axis=1) == data.y_test))

    return model, accuracy


def test_udfc_beats_plain_pruning_and_neuron_merging_at_30_percent(trained):
    model, accuracy = trained
    float_accuracy = accuracy(model)
    udfc_model, report = dfcompress.udfc(model, prune_ratio=0.3, weight_bits=6)
    paper_model, _ = dfcompress.udfc(model, prune_ratio=0.3, weight_bits=6, objective="bn")
    pruned, _ = dfcompress.prune_channels(model, 0.3)
    merged, _ = dfcompress.neuron_merging(model, 0.3)
    scores = {
        "float": float_accuracy,
        "udfc": accuracy(udfc_model),
        "udfc_paper_objective": accuracy(paper_model),
        "prune": accuracy(pruned),
        "nm": accuracy(merged),
    }
    print("\nFashion-MNIST sample, resnet_small, 30 % l2:", scores)
    assert float_accuracy > 0.7
    # Measured: UDFC 67.4 %, Neuron Merging 58.8 %, plain pruning 44.4 % (float 80.0 %); UDFC
    # quantizes to 6 bits on top, the other two keep float32 weights. No margin is asserted over
    # Neuron Merging: on the ten sample models of docs/compression.md it ranged 3.5-28.5 points.
    assert scores["udfc"] > scores["nm"]
    assert scores["udfc"] > scores["prune"] + 0.15
    assert report.size_mb_after < report.size_mb_before * 6 / 32


def test_dfmpc_beats_direct_mixed_precision(trained):
    model, accuracy = trained
    compensated, report = dfcompress.dfmpc(model, low_bits=2, high_bits=6)
    direct, _ = dfcompress.quantize_weights(model, bits=report.layer_bits)
    ternary, _ = dfcompress.quantize_weights(model, report.layer_bits, report.layer_quantizers)
    scores = {
        "dfmpc": accuracy(compensated),
        "direct_dorefa": accuracy(direct),
        "direct_twn": accuracy(ternary),
    }
    print("\nFashion-MNIST sample, resnet_small, MP2/6:", scores)
    assert scores["dfmpc"] > scores["direct_dorefa"]
