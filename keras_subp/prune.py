"""`prune_subp`: wrap the eligible Conv2D layers of a model (or one layer) in `SUBPWrapper`."""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Callable, Iterable

import keras

from keras_subp import schedules as schedules_module
from keras_subp.block_geometry import validate_block_n
from keras_subp.block_mask_wrapper import (
    BlockMaskWrapper,
    check_conv2d_can_take_blocks,
    validate_sparsity,
)
from keras_subp.criteria import normalize_criterion
from keras_subp.keras_compat import call_count
from keras_subp.model_walk import (
    clone_with_weights,
    copy_layer,
    iter_leaf_layers,
    require_graph_model,
)
from keras_subp.wrapper import SEED_LIMIT, SUBPWrapper, resolve_seed

Exclude = str | Iterable[str] | Callable[[keras.layers.Layer], bool] | None


def _input_channels(layer) -> int | None:
    kernel = getattr(layer, "kernel", None)
    return int(kernel.shape[2]) if kernel is not None else None


def block_eligibility(model, n: int, exclude: Exclude = None) -> dict[str, str]:
    """Decide, for every Conv2D of a model, whether it gets 1xN blocks.

    Rules (SUBP's defaults): the first convolution of the model and any Conv2D with at most 3
    input channels (the stem) stay dense; grouped convolutions, layers with Cout % n != 0 and
    weight-shared layers (called more than once in the model: their pruned-weight decay would
    count once per call) cannot take 1xN blocks; depthwise, separable, transposed and Dense
    layers are never considered. `exclude` removes more layers: a layer name, a collection of
    names (each must exist) or a predicate on the layer.

    Raises `ValueError` when two layers of the model (nested models included) share a name:
    decisions, masks and seeds are keyed by layer name.

    Returns:
        Ordered dict from layer name to "eligible", "first convolution", "excluded",
        "already wrapped" (a `BlockMaskWrapper`, left as it is), or the reason it cannot take
        blocks (those are the layers `prune_subp` warns about).
    """
    layers = list(iter_leaf_layers(model))
    name_counts = Counter(layer.name for layer in layers)
    duplicated = sorted(name for name, count in name_counts.items() if count > 1)
    if duplicated:
        raise ValueError(
            f"Layer names must be unique across model {model.name!r} and its nested models "
            f"(1xN decisions and masks are keyed by name); duplicated: {duplicated}. Give the "
            "layers distinct names (name=...) when building the model."
        )
    excluded_names: set[str] = set()
    predicate = None
    if callable(exclude):
        predicate = exclude
    elif exclude is not None:
        excluded_names = {exclude} if isinstance(exclude, str) else set(exclude)
        unknown = excluded_names - {layer.name for layer in layers}
        if unknown:
            raise ValueError(f"exclude names layers that are not in the model: {sorted(unknown)}.")
    decisions: dict[str, str] = {}
    seen_convolution = False
    for layer in layers:
        is_convolution = isinstance(
            layer,
            keras.layers.Conv2D
            | keras.layers.DepthwiseConv2D
            | keras.layers.SeparableConv2D
            | BlockMaskWrapper,
        )
        if isinstance(layer, BlockMaskWrapper):
            decisions[layer.name] = "already wrapped"
        elif isinstance(layer, keras.layers.Conv2D):
            channels = _input_channels(layer)
            if layer.name in excluded_names or (predicate is not None and predicate(layer)):
                decisions[layer.name] = "excluded"
            elif not seen_convolution or (channels is not None and channels <= 3):
                decisions[layer.name] = "first convolution"
            elif call_count(layer) > 1:
                decisions[layer.name] = (
                    f"weight-shared layer (called {call_count(layer)} times in the model)"
                )
            else:
                try:
                    check_conv2d_can_take_blocks(layer, n)
                    decisions[layer.name] = "eligible"
                except ValueError as error:
                    decisions[layer.name] = str(error)
        seen_convolution = seen_convolution or is_convolution
    return decisions


def eligible_layers(model, n: int, exclude: Exclude, caller: str) -> list[str]:
    """Names of the Conv2D layers of `model` to prune in 1xn blocks, in model order.

    Layers that cannot take the blocks (grouped, Cout % n != 0, ...) are listed in one
    `UserWarning` from `caller` (the stem and excluded layers are dense by choice, silently).
    Raises `ValueError` when no layer is eligible.
    """
    decisions = block_eligibility(model, n, exclude)
    left_dense = {
        name: reason
        for name, reason in decisions.items()
        if reason not in ("eligible", "first convolution", "excluded", "already wrapped")
    }
    if left_dense:
        listing = "; ".join(f"{name}: {reason}" for name, reason in left_dense.items())
        warnings.warn(
            f"{caller} left {len(left_dense)} Conv2D layer(s) dense because they cannot take "
            f"1x{n} blocks: {listing}",
            UserWarning,
            stacklevel=3,
        )
    eligible = [name for name, reason in decisions.items() if reason == "eligible"]
    if not eligible:
        raise ValueError(
            f"No layer of model {model.name!r} can be pruned in 1x{n} blocks: "
            f"{decisions or 'no Conv2D layers'}."
        )
    return eligible


def prune_subp(
    model,
    n: int = 16,
    sparsity: float = 0.5,
    schedule=None,
    criterion: str = "bpar",
    temperature: float = 1.0,
    pruned_decay: float = 2e-4,
    exclude: Exclude = None,
    seed: int | None = None,
    alpha: float = 1.0,
):
    """Prepare a model (or one layer) for SUBP training with uniform 1xN block sparsity.

    Clones a Sequential or Functional model (nested models included), wrapping each eligible
    Conv2D (see `block_eligibility`) in `keras_subp.SUBPWrapper` and copying all weights. Conv2D
    layers that cannot take 1xN blocks (grouped, or Cout % n != 0) stay dense and are listed in
    one `UserWarning`. Given a single layer it returns the wrapped layer, and raises
    `ValueError` if that layer cannot take 1xN blocks. The returned model is not compiled.

    Train with `callbacks=[keras_subp.UpdateSUBP()]`, then export with `keras_subp.strip_subp`.
    For multi-GPU or multi-worker training, call `prune_subp`, `compile` and `fit` under the
    `tf.distribute` strategy's scope; see `SUBPWrapper`.

    Args:
        model: a `keras.Sequential`, a Functional `keras.Model` or a single `keras.layers.Conv2D`.
        n: block length N (output channels per block).
        sparsity: target fraction p of blocks pruned in every output group, in [0, 1); each
            group keeps Cin - int(p * Cin) blocks.
        schedule: `keras_subp.schedules.Schedule` giving r(epoch); None is `Cubic(0, 10)`.
        criterion: block importance, "bpar" (default: the criterion of the SUBP paper), "l1"
            (what the SUBP authors' released training scripts use) or "l2".
        temperature: softmax temperature of the regrowth sampling.
        pruned_decay: lambda of the extra decay lambda * (1 - M) * W on pruned weights.
        exclude: layer name(s) or a predicate `layer -> bool` for Conv2D layers to keep dense.
        seed: integer seed; wrapped layer i (in model order) samples with seed + i. None draws
            a random seed, recorded in each wrapper's config.
        alpha: weight of BPAR's angular-redundancy term (1 in the SUBP authors' code).

    Returns:
        A new model (or a `SUBPWrapper` for a single layer).
    """
    validate_block_n(n)
    validate_sparsity(sparsity)
    normalize_criterion(criterion)
    schedule = schedules_module.get(schedule)
    seed = resolve_seed(seed)
    options = {
        "n": n,
        "sparsity": sparsity,
        "criterion": criterion,
        "temperature": temperature,
        "pruned_decay": pruned_decay,
        "alpha": alpha,
    }

    if not isinstance(model, keras.Model):
        if not isinstance(model, keras.layers.Layer):
            raise ValueError(f"Expected a Keras model or layer, got {type(model).__name__}.")
        if isinstance(model, BlockMaskWrapper):
            raise ValueError(f"Layer {model.name!r} is already a {type(model).__name__}.")
        check_conv2d_can_take_blocks(model, n)
        return SUBPWrapper(model, schedule=schedule, seed=seed, **options)

    require_graph_model(model)
    eligible = eligible_layers(model, n, exclude, caller="prune_subp")
    layer_seeds = {name: (seed + index) % SEED_LIMIT for index, name in enumerate(eligible)}

    def clone_layer(layer):
        if layer.name in layer_seeds and isinstance(layer, keras.layers.Conv2D):
            return SUBPWrapper(
                copy_layer(layer), schedule=schedule, seed=layer_seeds[layer.name], **options
            )
        return copy_layer(layer)

    return clone_with_weights(model, clone_layer)
