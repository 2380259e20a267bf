"""dfcompress: data-free compression of trained Keras CNNs, without fine-tuning.

* `udfc`: channel pruning plus weight quantization; every pruned or quantized channel is compensated in
  closed form (a linear combination of the kept channels folded into the consumer layer, a per-channel
  scale folded into the BatchNormalization).
* `dfmpc`: mixed precision; a low-bit layer's error is compensated by a closed-form per-channel
  coefficient that the following high-bit layer absorbs.
* Baselines with the same channel and layer selection: `prune_channels`, `neuron_merging`,
  `quantize_weights`.
* `model_size_mb`, the `CompressionReport` every method returns, and `to_tflite` for deployment.

The package never imports `keras_subp` or `tflite_delegate` at module level.
"""

from __future__ import annotations

import importlib

# Public name -> module that defines it. Modules are imported on first use.
_EXPORTS = {
    "udfc": "dfcompress.udfc",
    "dfmpc": "dfcompress.dfmpc",
    "prune_channels": "dfcompress.baselines",
    "neuron_merging": "dfcompress.neuron_merging",
    "quantize_weights": "dfcompress.baselines",
    "model_size_mb": "dfcompress.accounting",
    "CompressionReport": "dfcompress.report",
    "LayerReport": "dfcompress.report",
    "get_quantizer": "dfcompress.quantizers",
    "to_tflite": "dfcompress.tflite_export",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'dfcompress' has no attribute {name!r}")
    return getattr(importlib.import_module(module_name), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
