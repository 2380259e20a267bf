"""Datasets and reference CNNs shared by the project's scripts, tests and benchmarks.

`cnn_zoo.datasets` loads MNIST-family IDX data from local files first (offline machines are the norm
here) and `cnn_zoo.models` builds the Keras 3 models the experiments use. The library packages
(`keras_subp`, `tflite_delegate`) never import this package; scripts and tests compose them.
"""
