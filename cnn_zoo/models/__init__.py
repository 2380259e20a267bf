"""The project's model zoo: plain Keras 3 functional models, BatchNormalization after every conv.

28x28 models (`vgg_small`, `resnet_small`, `mobilenet_v1_small`) for Fashion-MNIST/MNIST experiments;
ImageNet-shaped models (`resnet18`, `resnet34`, `resnet50`, `mobilenet_v1`) for FLOPs accounting,
conversion and latency benchmarks.
"""

from cnn_zoo.models.imagenet import mobilenet_v1, resnet18, resnet34, resnet50
from cnn_zoo.models.small import mobilenet_v1_small, resnet_small, vgg_small

__all__ = [
    "mobilenet_v1",
    "mobilenet_v1_small",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet_small",
    "vgg_small",
]
