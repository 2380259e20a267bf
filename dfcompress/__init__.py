"""dfcompress: data-free compression of trained Keras CNNs, without fine-tuning.

* `udfc`: channel pruning plus weight quantization; every pruned or quantized channel is compensated in
  closed form (a linear combination of the kept channels folded into the consumer layer, a per-channel
  scale folded into the BatchNormalization).
* `dfmpc`: mixed precision; a low-bit layer's error is compensated by a closed-form per-channel
  coefficient that the following high-bit layer absorbs.
* Baselines with the same channel and layer selection: `prune_channels`, `neuron_merging`,
  `quantize_weights`.
* `reconstruction_errors`: on a few real images, how well each method rebuilds each layer's
  pruned channels after the activation (a diagnosis; the methods themselves use no data).
* `model_size_mb`, the `CompressionReport` every method returns, and `to_tflite` for deployment.

The package never imports `keras_subp` or `tflite_delegate` at module level.
"""

from __future__ import annotations

import importlib

from dfcompress.accounting import model_size_mb
from dfcompress.baselines import prune_channels, quantize_weights
from dfcompress.dfmpc import dfmpc
from dfcompress.diagnosis import LayerDiagnosis, reconstruction_errors
from dfcompress.neuron_merging import neuron_merging
from dfcompress.quantizers import QUANTIZER_NAMES, Quantizer, get_quantizer
from dfcompress.report import CompressionReport, LayerReport
from dfcompress.udfc import udfc

__all__ = [
    "QUANTIZER_NAMES",
    "CompressionReport",
    "LayerDiagnosis",
    "LayerReport",
    "Quantizer",
    "dfmpc",
    "get_quantizer",
    "model_size_mb",
    "neuron_merging",
    "prune_channels",
    "quantize_weights",
    "reconstruction_errors",
    "to_tflite",
    "udfc",
]

# Imported on first use: the TFLite export pulls in the converter, which plain compression never needs.
_LAZY = {"to_tflite": "dfcompress.tflite_export"}


def __getattr__(name: str):
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'dfcompress' has no attribute {name!r}")
    return getattr(importlib.import_module(module_name), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
