"""keras_subp: Soft Uniform Block Pruning (SUBP) of Conv2D layers for Keras 3.

Train uniform 1xN block-sparse CNNs from scratch with `model.fit`, in the style of tfmot:
`prune_subp` -> `fit(callbacks=[UpdateSUBP()])` -> `strip_subp` -> TFLite. See
`keras_subp.prune_subp` for the workflow, and the docstrings of `selection`, `criteria` and
`schedules` for the formulas.

A block is N consecutive output channels x one input channel x the whole Kh x Kw window of a
Conv2D kernel (`block_geometry`). Both wrappers, `SUBPWrapper` and the 1xN baseline's
`FixedBlockMaskWrapper`, derive from `BlockMaskWrapper`. Private Keras attributes are read only
in `keras_compat`.
"""

from keras_subp import schedules
from keras_subp.baseline_1xn import FixedBlockMaskWrapper, global_l1_block_mask, prune_1xn
from keras_subp.block_geometry import expand_block_mask, kernel_to_blocks
from keras_subp.block_mask_wrapper import BlockMaskWrapper
from keras_subp.callbacks import SUBPSummaries, UpdateSUBP, subp_wrappers, update_masks
from keras_subp.criteria import block_scores
from keras_subp.prune import block_eligibility, prune_subp
from keras_subp.report import (
    FlopsCount,
    LayerFlops,
    LayerSparsity,
    ParameterCount,
    count_flops,
    count_parameters,
    format_sparsity_report,
    sparsity_report,
)
from keras_subp.selection import subp_block_mask, uniform_block_mask
from keras_subp.strip import strip_subp
from keras_subp.wrapper import MaskUpdate, SUBPWrapper

__all__ = [
    "BlockMaskWrapper",
    "FixedBlockMaskWrapper",
    "FlopsCount",
    "LayerFlops",
    "LayerSparsity",
    "ParameterCount",
    "MaskUpdate",
    "SUBPSummaries",
    "SUBPWrapper",
    "UpdateSUBP",
    "block_eligibility",
    "block_scores",
    "count_flops",
    "count_parameters",
    "expand_block_mask",
    "format_sparsity_report",
    "global_l1_block_mask",
    "kernel_to_blocks",
    "prune_1xn",
    "prune_subp",
    "schedules",
    "sparsity_report",
    "strip_subp",
    "subp_block_mask",
    "subp_wrappers",
    "uniform_block_mask",
    "update_masks",
]
