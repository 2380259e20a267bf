"""Speed of the 1xN sparse CONV_2D delegate against dense XNNPACK, layer by layer and per model.

Three levels, any of them measured in one run:

- **layer**: single-convolution float32 models (Conv2D + bias + ReLU, batch 1) with every distinct
  conv shape that ResNet-18, ResNet-50 and MobileNetV1 have at 224x224 input (the stem, the
  depthwise convs and the classifier excluded; the stride-2 downsampling convs included). For
  every shape, block length N and block sparsity s, each group of N output channels gets the
  same number P = int(s * Cin) of all-zero blocks (a block is N output channels x 1 input channel
  x the whole KxK window), zeroed in the Keras kernel before conversion. Padding is "same", so
  the input is (stride x output) wide.
- **model**: cnn_zoo's ResNet-18 (torchvision topology), ResNet-50 and MobileNetV1
  (keras.applications, weights=None), with logits heads, at 224x224, batch 1 and 8, with uniform
  1x16 masks in the SUBP paper's configurations (blocks pruned per 128 input channels: ResNet-18 60,
  ResNet-50 66 ("2.0G") and 98.5 ("1.0G"), MobileNetV1 69). The first conv, the depthwise convs
  and the classifier stay dense.
- **stem** (only with `--levels=stem`): dense single-conv models over few input channels (RGB
  stems, patchify stems: `STEM_SHAPES`, or `--stem_shapes`), batch sizes `--batches`: the shapes
  behind the delegate's one per-shape claiming rule, which claims such convs at any sparsity
  where its kernel beats XNNPACK's dense one (AVX-512, at least 64 outputs, at most 256 KiB of
  weights, 20 MFLOP per image). Rows the rule leaves to XNNPACK measure it against itself unless
  `--min_sparsity=0` makes the delegate claim them too.

Every row compares two interpreters on the same `.tflite` (the same sparse weights): the
delegate (`tflite_delegate.Interpreter`) and plain LiteRT, whose XNNPACK runs the zeros as dense
work. Rows give median latencies, speedup (ratio of medians), the ideal speedup from FLOPs
(dense FLOPs / kept FLOPs; at the model level all conv, depthwise and dense-layer FLOPs count,
so the dense layers cap it), efficiency = speedup / ideal, GFLOP/s on the kept work and its share
of `--peak_gflops_per_core` x threads, the 2-over-1-thread scaling, what the delegate claimed
(`tflite_delegate.delegation_report`) and whether both outputs agree on the same random input.

Timing: all interpreters of one row (both engines x every thread count) are built and warmed
up, then sampled in `--repeats` interleaved rounds (the starting interpreter rotates), so load
drifts hit all of them alike. A sample is the mean of enough back-to-back invokes to last
`--min_sample_ms`. All models are converted before any timing starts and cached under
`<out_dir>/cache` (ResNet-50 takes about a minute); `--rebuild` reconverts, `--convert_only`
fills the cache without timing (conversion can run on a busy machine, timing should not). The
load average is printed at start and end (above 1.0: other work shared the cores), and so is the
time the two cores take to pass a cache line back and forth (scripts/core_round_trip.py; above
250 ns the run met a period in which 2-thread rows of the delegate run 20-35 % slower).

Outputs in `--out_dir`: delegate_benchmark.md (carrying the command), delegate_benchmark.json and
delegate_benchmark.png (speedup against block sparsity per N, with the ideal curve; needs
matplotlib). The process exits with status 1 if any row's outputs disagree.

Run: python -m scripts.benchmark_delegate [--quick] [--levels layer --nets resnet50 ...]
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import sys
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402

if TYPE_CHECKING:
    import keras
    import numpy as np

NETS = ("resnet18", "resnet50", "mobilenet_v1")
LEVELS = ("layer", "model", "stem")
DELEGATE_BLOCK_NS = (1, 2, 4, 8, 16, 32)
IMAGE_SHAPE = (224, 224, 3)
NUM_CLASSES = 1000
CACHE_VERSION = 3  # bump when the way cached models are built changes
RESULT_STEM = "delegate_benchmark"


@dataclass(frozen=True)
class ModelConfig:
    """A model-level configuration: net, block length and blocks pruned per 128 input channels."""

    name: str
    net: str
    block_n: int
    pruned_per_128: float
    label: str

    @property
    def sparsity(self) -> float:
        """Block sparsity p: P = int(p * Cin) blocks pruned per group of N output channels."""
        return self.pruned_per_128 / 128


MODEL_CONFIGS = {
    config.name: config
    for config in (
        ModelConfig("resnet18_p60", "resnet18", 16, 60, "ResNet-18 1x16 p=60/128"),
        ModelConfig("resnet50_2.0G", "resnet50", 16, 66, 'ResNet-50 1x16 p=66/128 ("2.0G")'),
        ModelConfig("resnet50_1.0G", "resnet50", 16, 98.5, 'ResNet-50 1x16 p=98.5/128 ("1.0G")'),
        ModelConfig("mobilenet_v1_p69", "mobilenet_v1", 16, 69, "MobileNetV1 1x16 p=69/128"),
    )
}

# Defaults that --quick changes, unless the flag is given explicitly.
QUICK_DEFAULTS: dict[str, Any] = {
    "block_n": ["16"],
    "sparsity": ["0.75"],
    "max_layers": 4,
    "batches": ["1"],
    "model_configs": ["resnet18_p60"],
    "repeats": 3,
    "warmup": 1,
    "min_sample_ms": 5.0,
}

FLAGS = flags.FLAGS


def define_flags() -> None:
    """Define this script's absl flags (only when it runs as the program: importing the module
    for its helpers, as scripts.benchmark_peers does, defines none)."""
    flags.DEFINE_list(
        "levels",
        ["layer", "model"],
        f"What to measure: any of {LEVELS} (stem: dense convs over few input channels, the "
        "shapes behind the delegate's per-shape claiming rule; not run by default).",
    )
    flags.DEFINE_list("nets", list(NETS), f"Networks (layer shapes and models) from {NETS}.")
    flags.DEFINE_list("block_n", ["4", "8", "16", "32"], "Layer level: block lengths N.")
    flags.DEFINE_list(
        "sparsity", ["0.5", "0.75", "0.9"], "Layer level: block sparsities s in (0, 1)."
    )
    flags.DEFINE_list("threads", ["1", "2"], "Thread counts (both engines run at each).")
    flags.DEFINE_list("widths", [], "Layer level: output widths to keep (e.g. 56,28); empty: all.")
    flags.DEFINE_list("kernels", [], "Layer level: kernel sizes to keep (1, 3); empty: all.")
    flags.DEFINE_integer(
        "max_layers", 0, "Layer and stem levels: at most this many shapes each (0: all)."
    )
    flags.DEFINE_list(
        "model_configs",
        list(MODEL_CONFIGS),
        f"Model level configurations from {list(MODEL_CONFIGS)}.",
    )
    flags.DEFINE_list("batches", ["1", "8"], "Model and stem levels: batch sizes.")
    flags.DEFINE_list(
        "stem_shapes",
        [],
        "Stem level: dense convs to time instead of STEM_SHAPES, each "
        "INPUT_WIDTH:CIN:COUT:KERNEL:STRIDE (square, 'same' padding; the width a multiple of the "
        "stride), e.g. 224:3:64:7:2 for the ResNet stem.",
    )
    flags.DEFINE_integer("repeats", 15, "Interleaved rounds: timed samples per interpreter.")
    flags.DEFINE_integer("warmup", 2, "Untimed invokes per interpreter before timing.")
    flags.DEFINE_float(
        "min_sample_ms", 20.0, "A sample averages invokes lasting at least this long."
    )
    flags.DEFINE_float(
        "min_sparsity",
        None,
        "Delegate option min_sparsity; default: the delegate's own default.",
    )
    flags.DEFINE_bool(
        "fuse_add",
        True,
        "Delegate option fuse_add: run a claimed conv's residual ADD in its epilogue "
        "(--nofuse_add: the ADDs stay XNNPACK nodes, for a before/after comparison).",
    )
    flags.DEFINE_float(
        "peak_gflops_per_core",
        None,
        "fp32 FMA peak per core, GFLOP/s (for the % of peak column). Default: measured at the "
        "start of the run (scripts/fma_peak.py: benchmarks/ceilings/fma_ceilings.c compiled with "
        "$CC or cc, the fastest FMA form it finds), since the same model name covers cores of "
        "very different peaks (AMD Zen 4: about 115, Zen 5: about 230).",
    )
    flags.DEFINE_float(
        "tolerance", 1e-4, "Largest accepted max|delegate - xnnpack| / max|xnnpack| of a row."
    )
    flags.DEFINE_integer("seed", 0, "Seed of weights, masks and inputs.")
    flags.DEFINE_string(
        "out_dir",
        None,
        "Results and the model cache; default results/delegate_benchmark "
        "(results/delegate_benchmark_quick with --quick).",
    )
    flags.DEFINE_bool("rebuild", False, "Reconvert cached models.")
    flags.DEFINE_bool("list_shapes", False, "Print the layer shapes the flags select and exit.")
    flags.DEFINE_bool(
        "convert_only",
        False,
        "Fill the model cache and exit without timing (conversion needs no quiet machine).",
    )
    define_quick_flag(QUICK_DEFAULTS)


def define_quick_flag(defaults: dict[str, Any]) -> None:
    """Define --quick, which replaces the `defaults` of flags not given explicitly."""
    flags.DEFINE_bool(
        "quick",
        False,
        "Small sanity run: "
        + ", ".join(f"--{name}={value}" for name, value in defaults.items())
        + " (flags given explicitly win).",
    )


# ----------------------------------------------------------------------------- flag handling


@dataclass(frozen=True)
class Settings:
    """Validated flags."""

    levels: tuple[str, ...]
    nets: tuple[str, ...]
    block_ns: tuple[int, ...]
    sparsities: tuple[float, ...]
    threads: tuple[int, ...]
    widths: tuple[int, ...]
    kernels: tuple[int, ...]
    max_layers: int
    model_configs: tuple[str, ...]
    batches: tuple[int, ...]
    stem_shapes: tuple[ConvShape, ...]
    repeats: int
    warmup: int
    min_sample_ms: float
    min_sparsity: float | None
    fuse_add: bool
    peak_gflops_per_core: float | None  # None until measured (resolve_peak)
    tolerance: float
    seed: int
    out_dir: Path
    rebuild: bool


def _integers(name: str, values: Sequence[str], minimum: int) -> tuple[int, ...]:
    try:
        numbers = tuple(int(value) for value in values)
    except ValueError:
        raise app.UsageError(f"--{name} must list integers, got {','.join(values)!r}") from None
    if any(number < minimum for number in numbers):
        raise app.UsageError(f"--{name} values must be >= {minimum}, got {numbers}")
    return tuple(dict.fromkeys(numbers))


def _choices(name: str, values: Sequence[str], allowed: Iterable[str]) -> tuple[str, ...]:
    allowed = tuple(allowed)
    unknown = [value for value in values if value not in allowed]
    if unknown:
        raise app.UsageError(f"--{name}: unknown {unknown}; choose from {list(allowed)}")
    return tuple(dict.fromkeys(values))


def apply_quick_defaults(defaults: dict[str, Any]) -> None:
    """With --quick, give the flags in `defaults` that were not given explicitly those values."""
    if not FLAGS.quick:
        return
    for name, value in defaults.items():
        if not FLAGS[name].present:
            setattr(FLAGS, name, value)


def parse_sparsities(values: Sequence[str]) -> tuple[float, ...]:
    """--sparsity values as distinct floats in (0, 1); raises app.UsageError otherwise."""
    try:
        sparsities = tuple(dict.fromkeys(float(value) for value in values))
    except ValueError:
        raise app.UsageError(f"--sparsity must list numbers, got {list(values)}") from None
    if any(not 0 < s < 1 for s in sparsities):
        raise app.UsageError(f"--sparsity values must be in (0, 1), got {sparsities}")
    return sparsities


def parse_stem_shape(text: str) -> ConvShape:
    """'INPUT_WIDTH:CIN:COUT:KERNEL:STRIDE' -> ConvShape; raises app.UsageError naming the entry."""
    parts = text.strip().split(":")
    try:
        width, cin, cout, kernel, stride = (int(part) for part in parts)
    except ValueError:
        width = cin = cout = kernel = stride = 0
    if min(width, cin, cout, kernel, stride) < 1 or width % stride:
        raise app.UsageError(
            f"--stem_shapes entry {text!r} is not INPUT_WIDTH:CIN:COUT:KERNEL:STRIDE (positive "
            "integers, the width a multiple of the stride)"
        )
    return ConvShape(out_size=width // stride, cin=cin, cout=cout, kernel=kernel, stride=stride)


def validate_flags() -> Settings:
    """Check every flag and return them typed; raises app.UsageError naming the bad flag."""
    levels = _choices("levels", FLAGS.levels, LEVELS)
    if not levels:
        raise app.UsageError("--levels is empty")
    nets = _choices("nets", FLAGS.nets, NETS)
    if not nets:
        raise app.UsageError("--nets is empty")
    block_ns = _integers("block_n", FLAGS.block_n, 1)
    bad_n = [n for n in block_ns if n not in DELEGATE_BLOCK_NS]
    if bad_n:
        raise app.UsageError(f"--block_n values must be in {DELEGATE_BLOCK_NS}, got {bad_n}")
    sparsities = parse_sparsities(FLAGS.sparsity)
    threads = _integers("threads", FLAGS.threads, 1)
    widths = _integers("widths", FLAGS.widths, 1)
    kernels = _integers("kernels", FLAGS.kernels, 1)
    batches = _integers("batches", FLAGS.batches, 1)
    stem_shapes = tuple(dict.fromkeys(parse_stem_shape(text) for text in FLAGS.stem_shapes))
    configs = _choices("model_configs", FLAGS.model_configs, MODEL_CONFIGS)
    if "layer" in levels and (not block_ns or not sparsities):
        raise app.UsageError("the layer level needs at least one --block_n and one --sparsity")
    if not threads:
        raise app.UsageError("--threads is empty")
    if ("model" in levels or "stem" in levels) and not batches:
        raise app.UsageError("the model and stem levels need at least one --batches value")
    if "model" in levels:
        if not any(MODEL_CONFIGS[name].net in nets for name in configs):
            raise app.UsageError(
                f"no --model_configs {list(configs)} belongs to --nets {list(nets)}"
            )
    if FLAGS.max_layers < 0:
        raise app.UsageError(f"--max_layers must be >= 0, got {FLAGS.max_layers}")
    if FLAGS.repeats < 1 or FLAGS.warmup < 0 or FLAGS.min_sample_ms < 0:
        raise app.UsageError("--repeats must be >= 1, --warmup and --min_sample_ms >= 0")
    if FLAGS.min_sparsity is not None and not 0 <= FLAGS.min_sparsity <= 1:
        raise app.UsageError(f"--min_sparsity must be in [0, 1], got {FLAGS.min_sparsity}")
    if (
        FLAGS.peak_gflops_per_core is not None and FLAGS.peak_gflops_per_core <= 0
    ) or FLAGS.tolerance <= 0:
        raise app.UsageError("--peak_gflops_per_core and --tolerance must be > 0")
    default_dir = "results/delegate_benchmark" + ("_quick" if FLAGS.quick else "")
    out_dir = Path(FLAGS.out_dir or default_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise app.UsageError(f"--out_dir {out_dir} exists and is not a directory")
    return Settings(
        levels=levels,
        nets=nets,
        block_ns=block_ns,
        sparsities=sparsities,
        threads=threads,
        widths=widths,
        kernels=kernels,
        max_layers=FLAGS.max_layers,
        model_configs=tuple(name for name in configs if MODEL_CONFIGS[name].net in nets),
        batches=batches,
        stem_shapes=stem_shapes or STEM_SHAPES,
        repeats=FLAGS.repeats,
        warmup=FLAGS.warmup,
        min_sample_ms=FLAGS.min_sample_ms,
        min_sparsity=FLAGS.min_sparsity,
        fuse_add=FLAGS.fuse_add,
        peak_gflops_per_core=FLAGS.peak_gflops_per_core,
        tolerance=FLAGS.tolerance,
        seed=FLAGS.seed,
        out_dir=out_dir,
        rebuild=FLAGS.rebuild,
    )


# ----------------------------------------------------------------------------- networks


def build_net(net: str, seed: int | None = None) -> keras.Model:
    """The cnn_zoo model of `net` at 224x224x3 with 1000 logits (no softmax), weights seeded.

    ResNet-18 is the torchvision topology; ResNet-50 and MobileNetV1 are keras.applications
    models (weights=None), seeded through `keras.utils.set_random_seed`.
    """
    from cnn_zoo import models

    builders = {
        "resnet18": models.resnet18,
        "resnet50": models.resnet50,
        "mobilenet_v1": models.mobilenet_v1,
    }
    if net not in builders:
        raise ValueError(f"unknown net {net!r}; choose from {NETS}")
    return builders[net](
        input_shape=IMAGE_SHAPE, num_classes=NUM_CLASSES, seed=seed, classifier_activation=None
    )


def _all_layers(model) -> list:
    """Every leaf layer of `model` in graph order (nested models expanded)."""
    import keras

    layers = []
    for layer in model.layers:
        layers.extend(_all_layers(layer) if isinstance(layer, keras.Model) else [layer])
    return layers


def _compute_layers(model) -> list:
    """Conv2D, DepthwiseConv2D and Dense layers of `model` in graph order (nested models too)."""
    import keras

    kinds = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense)
    return [layer for layer in _all_layers(model) if isinstance(layer, kinds)]


def _is_plain_conv(layer) -> bool:
    import keras

    return (
        isinstance(layer, keras.layers.Conv2D)
        and not isinstance(layer, keras.layers.DepthwiseConv2D)
        and getattr(layer, "groups", 1) == 1
    )


def _output_size(layer) -> tuple[int, int]:
    _, height, width, _ = layer.output.shape
    return int(height), int(width)


def prunable_convs(model: keras.Model) -> list[keras.layers.Layer]:
    """The convs that get 1xN masks: plain Conv2D except the first conv (the stem) and
    classifier convs (1x1 output, as MobileNetV1's `conv_preds`)."""
    convs = [layer for layer in _compute_layers(model) if _is_plain_conv(layer)]
    return [layer for layer in convs[1:] if _output_size(layer) != (1, 1)]


def layer_flops(layer: keras.layers.Layer) -> int:
    """Dense FLOPs (2 x multiply-adds) of one Conv2D/DepthwiseConv2D/Dense call, per image."""
    import keras

    if isinstance(layer, keras.layers.Dense):
        return 2 * int(layer.kernel.shape[0]) * int(layer.kernel.shape[1])
    height, width = _output_size(layer)
    # Conv2D kernels are (KH, KW, Cin / groups, Cout); depthwise ones (KH, KW, C, multiplier):
    # either way an output value costs KH * KW * (third dimension) multiply-adds.
    kernel_height, kernel_width, inputs_per_output, last = (int(d) for d in layer.kernel.shape)
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        outputs, inputs_per_output = inputs_per_output * last, 1
    else:
        outputs = last
    return 2 * height * width * kernel_height * kernel_width * inputs_per_output * outputs


@dataclass(frozen=True)
class ConvShape:
    """One single-conv benchmark layer: square input/output, 'same' padding."""

    out_size: int
    cin: int
    cout: int
    kernel: int
    stride: int

    @property
    def in_size(self) -> int:
        """Input height and width (output x stride)."""
        return self.out_size * self.stride

    @property
    def key(self) -> str:
        """Identifier used in cache file names."""
        return f"{self.in_size}x{self.in_size}x{self.cin}_k{self.kernel}s{self.stride}_c{self.cout}"

    def describe(self) -> str:
        """Human-readable form, e.g. '3x3 s2 64->128'."""
        stride = f" s{self.stride}" if self.stride != 1 else ""
        return f"{self.kernel}x{self.kernel}{stride} {self.cin}->{self.cout}"

    def flops(self) -> int:
        """Dense FLOPs of the conv (2 x multiply-adds), batch 1."""
        return 2 * self.out_size**2 * self.cout * self.kernel**2 * self.cin


# Stem level: dense convolutions over few input channels at 224x224 input (ConvShape(out width,
# Cin, Cout, kernel, stride)): the shapes behind the delegate's one per-shape claiming rule
# (DenseFewChannelConvPays in tflite_delegate/native/claiming/claiming_policy.h), first those it
# claims by default with AVX-512, then the nearest ones it leaves to XNNPACK and why
# (--min_sparsity=0 claims them all, to see what the rule avoids).
STEM_SHAPES = (
    ConvShape(112, 3, 64, 7, 2),  # the ResNet stem
    ConvShape(224, 3, 64, 3, 1),  # VGG's first conv
    ConvShape(112, 3, 64, 3, 2),
    ConvShape(56, 3, 96, 4, 4),  # a patchify stem (ConvNeXt)
    ConvShape(28, 3, 256, 8, 8),
    ConvShape(112, 1, 64, 7, 2),  # one input channel
    ConvShape(112, 3, 32, 3, 2),  # MobileNet's stem: O = 32 < 64
    ConvShape(112, 3, 16, 3, 2),  # O = 16
    ConvShape(14, 3, 768, 16, 16),  # a ViT patch embedding: 2.4 MB of weights > 256 KiB
    ConvShape(32, 3, 64, 3, 1),  # 32x32 input: 3.5 MFLOP < 20
)


@dataclass
class LayerSource:
    """A distinct conv shape and where it occurs: {net: number of layers with this shape}."""

    shape: ConvShape
    nets: dict[str, int] = field(default_factory=dict)


def net_conv_shapes(net: str, cache: Path | None = None, rebuild: bool = False) -> list[ConvShape]:
    """Shapes of `net`'s prunable convs in graph order (repeats kept).

    With `cache` (a directory), the list is kept in a JSON file there (rewritten when
    `rebuild`), so that a run whose models are all cached never imports TensorFlow.
    """
    path = None if cache is None else cache / f"shapes_{net}_v{CACHE_VERSION}.json"
    if path is not None and path.is_file() and not rebuild:
        return [ConvShape(**entry) for entry in json.loads(path.read_text())]
    import keras

    model = build_net(net)
    shapes = []
    for layer in prunable_convs(model):
        kernel_height, kernel_width, cin, cout = (int(d) for d in layer.kernel.shape)
        height, width = _output_size(layer)
        strides = tuple(layer.strides)
        if kernel_height != kernel_width or height != width or strides[0] != strides[1]:
            raise ValueError(f"{net}/{layer.name}: not a square conv")
        shapes.append(ConvShape(height, cin, cout, kernel_height, strides[0]))
    del model
    keras.backend.clear_session()
    if path is not None:
        write_json_atomically(path, [asdict(shape) for shape in shapes])
    return shapes


def select_layer_shapes(settings: Settings, cache: Path | None = None) -> list[LayerSource]:
    """Distinct shapes of the selected nets (first-appearance order), filtered by the flags.

    `cache`: directory keeping each net's shape list (see `net_conv_shapes`).
    """
    sources: dict[ConvShape, LayerSource] = {}
    for net in settings.nets:
        for shape in net_conv_shapes(net, cache, settings.rebuild):
            source = sources.setdefault(shape, LayerSource(shape))
            source.nets[net] = source.nets.get(net, 0) + 1
    selected = [
        source
        for source in sources.values()
        if (not settings.widths or source.shape.out_size in settings.widths)
        and (not settings.kernels or source.shape.kernel in settings.kernels)
    ]
    if settings.max_layers:
        selected = selected[: settings.max_layers]
    return selected


# ----------------------------------------------------------------------------- masks and models


def pruned_blocks(sparsity: float, cin: int) -> int:
    """P = int(s * Cin) all-zero blocks per group of N output channels (SUBP's count)."""
    return int(sparsity * cin)


def uniform_block_mask(rng: np.random.Generator, groups: int, cin: int, pruned: int) -> np.ndarray:
    """Boolean (groups, Cin) mask, True = kept: every group prunes `pruned` random input channels."""
    import numpy as np

    order = np.argsort(rng.random((groups, cin)), axis=1)
    keep = np.ones((groups, cin), dtype=bool)
    np.put_along_axis(keep, order[:, :pruned], False, axis=1)
    return keep


def apply_block_mask(kernel: np.ndarray, keep: np.ndarray, block_n: int) -> np.ndarray:
    """Zero the pruned blocks of a Keras kernel (KH, KW, Cin, Cout); `keep` is (Cout/N, Cin)."""
    import numpy as np

    expanded = np.repeat(keep.T, block_n, axis=1)  # (Cin, Cout)
    return kernel * expanded[None, None, :, :].astype(kernel.dtype)


def count_zero_blocks(kernel: np.ndarray, block_n: int) -> np.ndarray:
    """All-zero 1xN blocks per group: int array of shape (Cout/N,)."""
    import numpy as np

    kernel_height, kernel_width, cin, cout = kernel.shape
    blocks = kernel.reshape(kernel_height, kernel_width, cin, cout // block_n, block_n)
    return np.all(blocks == 0, axis=(0, 1, 4)).sum(axis=0)


def _check_uniform(name: str, kernel, block_n: int, pruned: int) -> None:
    import numpy as np

    per_group = count_zero_blocks(kernel, block_n)
    if not np.all(per_group == pruned):
        raise AssertionError(
            f"{name}: all-zero 1x{block_n} blocks per group {sorted(set(per_group.tolist()))}, "
            f"expected {pruned}"
        )


def build_layer_model(shape: ConvShape, block_n: int, sparsity: float, seed: int) -> keras.Model:
    """Single-conv Keras model (Conv2D + bias + ReLU) with a uniform 1xN mask; deterministic."""
    import keras
    import numpy as np

    inputs = keras.Input((shape.in_size, shape.in_size, shape.cin), name="image")
    conv = keras.layers.Conv2D(
        shape.cout, shape.kernel, strides=shape.stride, padding="same", activation="relu"
    )
    model = keras.Model(inputs, conv(inputs), name=f"conv_{shape.key}")
    rng = np.random.default_rng(
        [seed, shape.in_size, shape.cin, shape.cout, shape.kernel, shape.stride]
    )
    fan_in = shape.kernel**2 * shape.cin
    kernel = rng.standard_normal(conv.kernel.shape).astype(np.float32) * np.sqrt(2 / fan_in)
    bias = (0.1 * rng.standard_normal(shape.cout)).astype(np.float32)
    pruned = pruned_blocks(sparsity, shape.cin)
    mask_rng = np.random.default_rng([seed, block_n, pruned, *kernel.shape])
    keep = uniform_block_mask(mask_rng, shape.cout // block_n, shape.cin, pruned)
    kernel = apply_block_mask(kernel, keep, block_n)
    _check_uniform(model.name, kernel, block_n, pruned)
    conv.set_weights([kernel, bias])
    return model


def mask_net(model: keras.Model, block_n: int, sparsity: float, seed: int) -> dict:
    """Give every prunable conv of `model` a uniform 1xN mask in place; return FLOP facts."""
    import numpy as np

    prunable = {id(layer) for layer in prunable_convs(model)}
    dense_flops = kept_flops = 0
    masked = []
    for index, layer in enumerate(_compute_layers(model)):
        flops = layer_flops(layer)
        dense_flops += flops
        if id(layer) not in prunable:
            kept_flops += flops
            continue
        weights = layer.get_weights()
        kernel = weights[0]
        cin, cout = kernel.shape[2], kernel.shape[3]
        if cout % block_n:
            kept_flops += flops
            continue
        pruned = pruned_blocks(sparsity, cin)
        keep = uniform_block_mask(
            np.random.default_rng([seed, index]), cout // block_n, cin, pruned
        )
        weights[0] = apply_block_mask(kernel, keep, block_n)
        _check_uniform(layer.name, weights[0], block_n, pruned)
        layer.set_weights(weights)
        kept_flops += flops * (cin - pruned) // cin
        masked.append(layer.name)
    return {
        "dense_flops": dense_flops,
        "kept_flops": kept_flops,
        "masked_convs": len(masked),
        "compute_layers": len(_compute_layers(model)),
    }


def calibrate_batch_norm(model: keras.Model, seed: int, batch: int = 2) -> None:
    """Set every BatchNormalization's moving statistics to those of one random input batch.

    Freshly initialised statistics (mean 0, variance 1) let activations shrink or grow layer
    after layer (MobileNetV1's logits come out near 1e-20), which makes the output comparison
    meaningless and can put denormals, which are slow on x86, into the timed runs. One
    training-mode pass with momentum 0 normalises every layer's output as trained nets do.
    """
    import keras
    import numpy as np

    norms = [
        layer for layer in _all_layers(model) if isinstance(layer, keras.layers.BatchNormalization)
    ]
    momenta = [layer.momentum for layer in norms]
    rng = np.random.default_rng([seed, 7])
    images = rng.standard_normal((batch, *model.input_shape[1:]), dtype=np.float32)
    try:
        for layer in norms:
            layer.momentum = 0.0
        model(images, training=True)
    finally:
        for layer, momentum in zip(norms, momenta, strict=True):
            layer.momentum = momentum


def write_json_atomically(path: Path, data: Any) -> None:
    """Write `data` as JSON to `path` through a temporary file, so `path` is never partial."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(data, indent=1))
    os.replace(temporary, path)


def cached_conversion(path: Path, build: Callable[[], tuple[Any, dict]], rebuild: bool) -> dict:
    """Convert `build()`'s Keras model to `path` unless cached; return the facts stored with it.

    The facts JSON is written after the model, so a file pair is complete or rebuilt.
    """
    facts_path = path.with_suffix(".json")
    if not rebuild and path.is_file() and facts_path.is_file():
        return json.loads(facts_path.read_text())
    import keras

    import tflite_delegate

    facts_path.unlink(missing_ok=True)
    start = time.perf_counter()
    model, facts = build()
    tflite_delegate.convert(model, path)
    facts = {**facts, "conversion_s": round(time.perf_counter() - start, 2)}
    write_json_atomically(facts_path, facts)
    del model
    keras.backend.clear_session()
    return facts


def cache_dir(out_dir: Path) -> Path:
    """`<out_dir>/cache`, created with a .gitignore that keeps its models out of git."""
    cache = out_dir / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    ignore = cache / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n")
    return cache


def layer_model_path(
    out_dir: Path, seed: int, shape: ConvShape, block_n: int, sparsity: float
) -> Path:
    """Cache path of a single-conv model."""
    pruned = pruned_blocks(sparsity, shape.cin)
    return cache_dir(out_dir) / (
        f"layer_{shape.key}_1x{block_n}_P{pruned}_seed{seed}_v{CACHE_VERSION}.tflite"
    )


def prepare_layer_model(
    out_dir: Path, seed: int, shape: ConvShape, block_n: int, sparsity: float, rebuild: bool
) -> tuple[Path, dict]:
    """Convert (or find cached) one single-conv model; return its path and facts."""
    path = layer_model_path(out_dir, seed, shape, block_n, sparsity)

    def build():
        model = build_layer_model(shape, block_n, sparsity, seed)
        return model, {"shape": asdict(shape), "block_n": block_n}

    return path, cached_conversion(path, build, rebuild)


def prepare_model(
    out_dir: Path, seed: int, config: ModelConfig, rebuild: bool
) -> tuple[Path, dict]:
    """Convert (or find cached) one model-level configuration; return its path and facts."""
    path = cache_dir(out_dir) / f"{config.name}_seed{seed}_v{CACHE_VERSION}.tflite"

    def build():
        model = build_net(config.net, seed=seed)
        facts = mask_net(model, config.block_n, config.sparsity, seed)
        calibrate_batch_norm(model, seed)
        return model, facts

    if rebuild or not path.is_file():
        print(f"converting {config.label} to {path} ...", flush=True)
    return path, cached_conversion(path, build, rebuild)


# ----------------------------------------------------------------------------- timing


def make_interpreter(
    engine: str,
    path: Path,
    threads: int,
    batch: int,
    min_sparsity: float | None,
    fuse_add: bool = True,
) -> Any:
    """Allocated interpreter: engine "delegate" (ours, XNNPACK for the rest) or "xnnpack"."""
    import tflite_delegate

    if engine == "delegate":
        options: dict[str, Any] = {"fuse_add": fuse_add}
        if min_sparsity is not None:
            options["min_sparsity"] = min_sparsity
        interpreter = tflite_delegate.Interpreter(model_path=path, num_threads=threads, **options)
    else:
        from ai_edge_litert.interpreter import Interpreter as LiteRtInterpreter

        interpreter = LiteRtInterpreter(model_path=str(path), num_threads=threads)
    details = interpreter.get_input_details()[0]
    if int(details["shape"][0]) != batch:
        interpreter.resize_tensor_input(details["index"], [batch, *details["shape"][1:]])
    interpreter.allocate_tensors()
    return interpreter


def run_once(interpreter: Any, image: np.ndarray) -> np.ndarray:
    """Set the input, invoke, and return a copy of the output."""
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], image)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).copy()


def interpreter_sampler(interpreter: Any) -> Callable[[int], float]:
    """A sampler for `time_interleaved`: seconds that `count` back-to-back invokes take."""

    def sample(count: int) -> float:
        start = time.perf_counter()
        for _ in range(count):
            interpreter.invoke()
        return time.perf_counter() - start

    return sample


def time_interleaved(
    samplers: dict[Any, Callable[[int], float]], repeats: int, warmup: int, min_sample_ms: float
) -> tuple[dict[Any, list[float]], dict[Any, int]]:
    """Seconds per invoke: `repeats` samples per engine, interleaved (rotating start).

    `samplers[key](count)` runs `count` invokes of one engine (input already set) and returns
    the seconds they took. Returns (samples, invokes per sample).
    """
    invokes = {}
    for key, sampler in samplers.items():
        if warmup:
            sampler(warmup)
        single = max(sampler(1), 1e-7)
        invokes[key] = max(1, math.ceil(min_sample_ms / 1e3 / single))
    keys = list(samplers)
    samples: dict[Any, list[float]] = {key: [] for key in keys}
    for round_index in range(repeats):
        shift = round_index % len(keys)
        for key in keys[shift:] + keys[:shift]:
            samples[key].append(samplers[key](invokes[key]) / invokes[key])
    return samples, invokes


def claim_facts(interpreter: Any) -> dict:
    """What the delegate claimed: counts, detected block lengths, reasons for the rest."""
    import tflite_delegate

    try:
        nodes = tflite_delegate.delegation_report(interpreter)
    except (KeyError, ValueError, OSError, AttributeError) as error:
        # The latencies stay valid; say the report failed instead of losing the whole run.
        message = f"delegation_report failed: {type(error).__name__}: {error}"
        print(f"WARNING: {message}", file=sys.stderr)
        return {
            "conv_nodes": 0,
            "claimed": 0,
            "claimed_block_n": {},
            "not_claimed": {},
            "microkernels": {},
            "isa": None,
            "error": message,
        }
    claimed = [node for node in nodes if node.claimed]
    block_ns: dict[str, int] = {}
    for node in claimed:
        block_ns[f"1x{node.block_n}"] = block_ns.get(f"1x{node.block_n}", 0) + 1
    reasons: dict[str, int] = {}
    for node in nodes:
        if not node.claimed:
            reasons[node.reason] = reasons.get(node.reason, 0) + 1
    microkernels: dict[str, int] = {}
    for node in claimed:
        name = str(getattr(node, "microkernel", None))  # reported by newer delegate builds
        microkernels[name] = microkernels.get(name, 0) + 1
    return {
        "microkernels": microkernels,
        "conv_nodes": len(nodes),
        "claimed": len(claimed),
        "claimed_block_n": block_ns,
        "not_claimed": reasons,
        "isa": nodes[0].isa if nodes else None,
    }


def relative_spread(samples: Sequence[float]) -> float:
    """(largest - smallest) / median of one engine's samples: how noisy the machine was."""
    return (max(samples) - min(samples)) / statistics.median(samples)


def agreement(sparse: np.ndarray, dense: np.ndarray) -> dict:
    """max |sparse - dense| relative to max |dense|."""
    import numpy as np

    difference = float(np.max(np.abs(sparse - dense)))
    scale = float(np.max(np.abs(dense)))
    return {
        "max_abs_diff": difference,
        "max_abs_output": scale,
        "relative": difference / scale if scale else (0.0 if difference == 0 else math.inf),
    }


def measure_pair(
    path: Path,
    input_shape: Sequence[int],
    batches: Sequence[int],
    settings: Settings,
    seed_parts: Sequence[int],
) -> dict[tuple[int, int], dict]:
    """Both engines on one model at every (batch, threads): medians, claims, agreement.

    Returns {(batch, threads): {...}} with times in ms.
    """
    import numpy as np

    results = {}
    for batch in batches:
        rng = np.random.default_rng([settings.seed, batch, *seed_parts])
        image = rng.standard_normal((batch, *input_shape), dtype=np.float32)
        interpreters = {}
        outputs = {}
        for threads in settings.threads:
            for engine in ("delegate", "xnnpack"):
                interpreter = make_interpreter(
                    engine, path, threads, batch, settings.min_sparsity, settings.fuse_add
                )
                outputs[engine, threads] = run_once(interpreter, image)
                interpreters[engine, threads] = interpreter
        samplers = {key: interpreter_sampler(value) for key, value in interpreters.items()}
        samples, invokes = time_interleaved(
            samplers, settings.repeats, settings.warmup, settings.min_sample_ms
        )
        for threads in settings.threads:
            results[batch, threads] = {
                "delegate_ms": statistics.median(samples["delegate", threads]) * 1e3,
                "xnnpack_ms": statistics.median(samples["xnnpack", threads]) * 1e3,
                "paired_speedup": statistics.median(
                    x / d
                    for x, d in zip(
                        samples["xnnpack", threads], samples["delegate", threads], strict=True
                    )
                ),
                "spread": max(
                    relative_spread(samples[engine, threads]) for engine in ("delegate", "xnnpack")
                ),
                "delegate_samples_ms": [v * 1e3 for v in samples["delegate", threads]],
                "xnnpack_samples_ms": [v * 1e3 for v in samples["xnnpack", threads]],
                "invokes_per_sample": {
                    "delegate": invokes["delegate", threads],
                    "xnnpack": invokes["xnnpack", threads],
                },
                "claims": claim_facts(interpreters["delegate", threads]),
                "agreement": agreement(outputs["delegate", threads], outputs["xnnpack", threads]),
            }
        del interpreters, samplers  # free them before the next batch builds its own
    return results


def _complete_row(
    row: dict, dense_flops: float, kept_flops: float, settings: Settings, batch: int = 1
) -> dict:
    """Add speedup, ideal, efficiency, GFLOP/s and % of peak to a row with latencies."""
    threads = row["threads"]
    row["speedup"] = row["xnnpack_ms"] / row["delegate_ms"]
    row["ideal_speedup"] = dense_flops / kept_flops
    row["efficiency"] = row["speedup"] / row["ideal_speedup"]
    row["kept_gflops"] = kept_flops * batch / (row["delegate_ms"] * 1e6)
    row["xnnpack_gflops"] = dense_flops * batch / (row["xnnpack_ms"] * 1e6)
    row["percent_of_peak"] = 100 * row["kept_gflops"] / (settings.peak_gflops_per_core * threads)
    row["agree"] = row["agreement"]["relative"] <= settings.tolerance
    return row


def _batch_thread_rows(facts: dict, measured: dict, settings: Settings) -> list[dict]:
    """One completed row per (batch, threads) of `measured` (measure_pair's result): `facts`
    (with "dense_flops" and "kept_flops" per image) plus that pair's latencies and claims."""
    return [
        _complete_row(
            {**facts, "batch": batch, "threads": threads, **measured[batch, threads]},
            facts["dense_flops"],
            facts["kept_flops"],
            settings,
            batch,
        )
        for batch in settings.batches
        for threads in settings.threads
    ]


def _add_scaling(rows: list[dict], group_keys: Sequence[str]) -> None:
    """`scaling` = delegate ms at 1 thread / at this row's threads (same row group), also dense."""
    one_thread = {tuple(row[key] for key in group_keys): row for row in rows if row["threads"] == 1}
    for row in rows:
        base = one_thread.get(tuple(row[key] for key in group_keys))
        if base is None or row["threads"] == 1:
            row["scaling"] = row["xnnpack_scaling"] = None
        else:
            row["scaling"] = base["delegate_ms"] / row["delegate_ms"]
            row["xnnpack_scaling"] = base["xnnpack_ms"] / row["xnnpack_ms"]


# ----------------------------------------------------------------------------- the two levels


def prepare_layer_models(settings: Settings, sources: list[LayerSource]) -> list[tuple]:
    """Convert (or find cached) every layer model; return (source, N, s, path, facts) tuples."""
    plan = []
    for source in sources:
        shape = source.shape
        for block_n in settings.block_ns:
            if shape.cout % block_n:
                print(f"skip {shape.describe()}: Cout {shape.cout} not divisible by N={block_n}")
                continue
            for sparsity in settings.sparsities:
                path, facts = prepare_layer_model(
                    settings.out_dir, settings.seed, shape, block_n, sparsity, settings.rebuild
                )
                plan.append((source, block_n, sparsity, path, facts))
    return plan


def run_layer_level(settings: Settings, plan: list[tuple]) -> list[dict]:
    """Time every planned layer model with both engines; one row per (layer, N, s, threads)."""
    rows = []
    for index, (source, block_n, sparsity, path, _) in enumerate(plan, start=1):
        shape = source.shape
        pruned = pruned_blocks(sparsity, shape.cin)
        kept_flops = shape.flops() * (shape.cin - pruned) / shape.cin
        input_shape = (shape.in_size, shape.in_size, shape.cin)
        measured = measure_pair(
            path, input_shape, [1], settings, [shape.in_size, shape.cin, shape.cout, block_n]
        )
        group = []
        for threads in settings.threads:
            row = {
                "level": "layer",
                "layer": shape.key,
                "conv": shape.describe(),
                "nets": dict(source.nets),
                "out_width": shape.out_size,
                "in_width": shape.in_size,
                "cin": shape.cin,
                "cout": shape.cout,
                "kernel": shape.kernel,
                "stride": shape.stride,
                "block_n": block_n,
                "sparsity": sparsity,
                "pruned_blocks_per_group": pruned,
                "block_sparsity": pruned / shape.cin,
                "threads": threads,
                "dense_flops": shape.flops(),
                "kept_flops": kept_flops,
                "tflite": str(path),
                **measured[1, threads],
            }
            group.append(_complete_row(row, shape.flops(), kept_flops, settings))
        _add_scaling(group, ["layer", "block_n", "sparsity"])
        rows.extend(group)
        for row in group:
            print(_progress_line(f"[{index}/{len(plan)}] {row['conv']} @{shape.out_size}", row))
    return rows


def prepare_stem_models(settings: Settings) -> list[tuple[ConvShape, Path]]:
    """Convert (or find cached) the stem level's dense single-conv models."""
    shapes = settings.stem_shapes
    if settings.max_layers:
        shapes = shapes[: settings.max_layers]
    plan = []
    for shape in shapes:
        # Dense: no block pruned (the 1xN of the cache name only names the mask's layout).
        block_n = next(n for n in (16, 8, 4, 2, 1) if shape.cout % n == 0)
        path, _ = prepare_layer_model(
            settings.out_dir, settings.seed, shape, block_n, 0.0, settings.rebuild
        )
        plan.append((shape, path))
    return plan


def run_stem_level(settings: Settings, plan: list[tuple[ConvShape, Path]]) -> list[dict]:
    """Time every dense stem model with both engines; one row per (shape, batch, threads)."""
    rows = []
    for index, (shape, path) in enumerate(plan, start=1):
        input_shape = (shape.in_size, shape.in_size, shape.cin)
        measured = measure_pair(
            path, input_shape, settings.batches, settings, [shape.in_size, shape.cin, shape.cout]
        )
        facts = {
            "level": "stem",
            "layer": shape.key,
            "conv": shape.describe(),
            "in_width": shape.in_size,
            "out_width": shape.out_size,
            "cin": shape.cin,
            "cout": shape.cout,
            "kernel": shape.kernel,
            "stride": shape.stride,
            "block_n": None,
            "filter_bytes": 4 * shape.cout * shape.kernel**2 * shape.cin,
            "dense_flops": shape.flops(),
            "kept_flops": shape.flops(),
            "tflite": str(path),
        }
        group = _batch_thread_rows(facts, measured, settings)
        _add_scaling(group, ["layer", "batch"])
        rows.extend(group)
        for row in group:
            print(_progress_line(f"[{index}/{len(plan)}] stem {row['conv']} @{shape.in_size}", row))
    return rows


def _blocks_label(row: dict) -> str:
    """'1xN' for a row with block-sparse weights, 'dense' for a stem row (block_n None)."""
    return f"1x{row['block_n']}" if row["block_n"] else "dense"


def _progress_line(label: str, row: dict) -> str:
    scaling = f" 2/1 {row['scaling']:.2f}x" if row.get("scaling") else ""
    claims = row["claims"]
    blocks = _blocks_label(row)
    if row["block_n"]:
        blocks += f" s={row.get('sparsity', 0):.3g}"
    return (
        f"{label} {blocks} {row['threads']}T "
        f"b{row.get('batch', 1)}: delegate {row['delegate_ms']:.3f} ms, XNNPACK "
        f"{row['xnnpack_ms']:.3f} ms, {row['speedup']:.2f}x (ideal {row['ideal_speedup']:.2f}, "
        f"eff {row['efficiency']:.2f}){scaling}, claimed {claims['claimed']}/"
        f"{claims['conv_nodes']}, rel diff {row['agreement']['relative']:.1e}"
    )


def prepare_models(settings: Settings) -> list[tuple[ModelConfig, Path, dict]]:
    """Convert (or find cached) the model-level configurations."""
    plan = []
    for name in settings.model_configs:
        config = MODEL_CONFIGS[name]
        path, facts = prepare_model(settings.out_dir, settings.seed, config, settings.rebuild)
        plan.append((config, path, facts))
    return plan


def run_model_level(settings: Settings, plan: list[tuple[ModelConfig, Path, dict]]) -> list[dict]:
    """Time every model configuration at every batch and thread count with both engines."""
    rows = []
    for config, path, facts in plan:
        measured = measure_pair(
            path, IMAGE_SHAPE, settings.batches, settings, [zlib.crc32(config.name.encode())]
        )
        row_facts = {
            "level": "model",
            "config": config.name,
            "label": config.label,
            "net": config.net,
            "block_n": config.block_n,
            "sparsity": config.sparsity,
            "dense_flops": facts["dense_flops"],
            "kept_flops": facts["kept_flops"],
            "masked_convs": facts["masked_convs"],
            "tflite": str(path),
        }
        group = _batch_thread_rows(row_facts, measured, settings)
        _add_scaling(group, ["config", "batch"])
        rows.extend(group)
        for row in group:
            print(_progress_line(config.label, row))
    return rows


# ----------------------------------------------------------------------------- reporting


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages."""
    return [round(value, 2) for value in os.getloadavg()]


def print_load(when: str, values: Sequence[float]) -> str:
    """Print and return a load-average line, with a warning above 1.0, and the core-to-core
    round trip measured now (scripts/core_round_trip.py), with a warning when it is slow."""
    from scripts.core_round_trip import round_trip_text

    line = f"load average {when}: {values[0]:.2f} {values[1]:.2f} {values[2]:.2f} (1/5/15 min)"
    if values[0] > 1.0:
        line += " -- WARNING: above 1.0, other processes share the cores; timings are suspect"
    line += f"; {round_trip_text()}"
    print(line, flush=True)
    return line


def cache_sizes() -> str:
    """CPU 0's data and unified caches as "L1d 48K, L2 1024K, L3 32768K" (sysfs), or "caches ?"."""
    parts = []
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            kind = (index / "type").read_text().strip()
            level = (index / "level").read_text().strip()
            size = (index / "size").read_text().strip()
        except OSError:
            continue
        if kind != "Instruction":
            parts.append(f"L{level}{'d' if kind == 'Data' else ''} {size}")
    return ", ".join(parts) or "caches ?"


def resolve_peak(settings: Settings) -> tuple[Settings, str]:
    """Settings with the per-core FMA peak filled in, and where it came from (for the header).

    --peak_gflops_per_core wins; otherwise scripts/fma_peak.py measures it, and a failure there
    (no C compiler) is a usage error that says to give the flag.
    """
    if settings.peak_gflops_per_core is not None:
        return settings, "given by --peak_gflops_per_core"
    from scripts.fma_peak import measure_fma_peak

    try:
        peak = measure_fma_peak()
    except (RuntimeError, ValueError) as error:
        raise app.UsageError(
            f"cannot measure the FMA peak ({error}); give --peak_gflops_per_core"
        ) from None
    measured = replace(settings, peak_gflops_per_core=peak.gflops_per_core)
    return measured, f"measured at the start of the run: {peak.form}"


def environment() -> dict:
    """Versions and machine facts for the results header."""
    import ai_edge_litert
    import numpy as np

    cpu = platform.processor() or "?"
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "cpu family", "model", "stepping"):
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    cpu = fields.get("model name", cpu)
    # A VM's model name ("AMD EPYC") hides the core generation; family and model tell it.
    cpu_id = (
        f"family {fields['cpu family']} model {fields['model']} stepping {fields.get('stepping', '?')}"
        if "cpu family" in fields and "model" in fields
        else "family ?"
    )
    return {
        "cpu": cpu,
        "cpu_id": cpu_id,
        "caches": cache_sizes(),
        "cpus_visible": os.cpu_count(),
        "python": platform.python_version(),
        "ai_edge_litert": getattr(ai_edge_litert, "__version__", "?"),
        "numpy": np.__version__,
    }


def machine_text(env: dict) -> str:
    """The results header's machine: model name, family/model and caches, CPUs visible."""
    return (
        f"{env['cpu']} ({env.get('cpu_id', 'family ?')}; {env.get('caches', 'caches ?')}), "
        f"{env['cpus_visible']} CPUs visible"
    )


def _format(value, digits: int = 2, suffix: str = "") -> str:
    if value is None:
        return ""
    return f"{value:.{digits}f}{suffix}"


def _claim_cell(row: dict) -> str:
    claims = row["claims"]
    text = f"{claims['claimed']}/{claims['conv_nodes']}"
    if claims["claimed_block_n"]:
        text += " " + ",".join(claims["claimed_block_n"])
    return text


def layer_table(rows: list[dict]) -> list[str]:
    """Markdown lines: one row per (layer, N, s, threads)."""
    lines = [
        "| nets | out | conv | N | s | thr | delegate ms | XNNPACK ms | speedup | ideal | eff. "
        "| GFLOP/s | % peak | 2/1 | claimed | microkernel | agree |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|",
    ]
    for row in rows:
        nets = ", ".join(f"{net}:{count}" for net, count in row["nets"].items())
        lines.append(
            f"| {nets} | {row['out_width']} | {row['conv']} | {row['block_n']} | "
            f"{row['block_sparsity']:.3f} | {row['threads']} | {row['delegate_ms']:.3f} | "
            f"{row['xnnpack_ms']:.3f} | {row['speedup']:.2f}x | {row['ideal_speedup']:.2f} | "
            f"{row['efficiency']:.2f} | {row['kept_gflops']:.1f} | {row['percent_of_peak']:.0f} | "
            f"{_format(row['scaling'], 2, 'x')} | {_claim_cell(row)} | "
            f"{', '.join(row['claims'].get('microkernels', {}))} | "
            f"{'yes' if row['agree'] else 'NO'} |"
        )
    return lines


def efficiency_summary(rows: list[dict]) -> list[dict]:
    """Per (N, s, threads, output width): min and median efficiency and sparse 2/1 scaling."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        key = (row["block_n"], row["sparsity"], row["threads"], row["out_width"])
        groups.setdefault(key, []).append(row)
    summary = []
    for (block_n, sparsity, threads, width), members in sorted(groups.items()):
        efficiencies = [row["efficiency"] for row in members]
        scalings = [row["scaling"] for row in members if row["scaling"]]
        summary.append(
            {
                "block_n": block_n,
                "sparsity": sparsity,
                "threads": threads,
                "out_width": width,
                "layers": len(members),
                "min_efficiency": min(efficiencies),
                "median_efficiency": statistics.median(efficiencies),
                "min_scaling": min(scalings) if scalings else None,
            }
        )
    return summary


def summary_table(summary: list[dict]) -> list[str]:
    """Markdown lines: efficiency per (N, s, threads) and output width (`efficiency_summary`)."""
    widths = sorted({entry["out_width"] for entry in summary}, reverse=True)
    cells: dict[tuple, dict[int, dict]] = {}
    for entry in summary:
        key = (entry["block_n"], entry["sparsity"], entry["threads"])
        cells.setdefault(key, {})[entry["out_width"]] = entry
    header = "| N | s | thr | " + " | ".join(f"width {w}" for w in widths) + " |"
    lines = [
        "Efficiency min / median over the layers of each output width (2/1 = smallest sparse "
        "2-over-1-thread scaling):",
        "",
        header,
        "|---:|---:|---:|" + "---|" * len(widths),
    ]
    for (block_n, sparsity, threads), by_width in sorted(cells.items()):
        parts = []
        for width in widths:
            entry = by_width.get(width)
            if entry is None:
                parts.append("")
                continue
            text = f"{entry['min_efficiency']:.2f} / {entry['median_efficiency']:.2f}"
            if entry["min_scaling"] is not None:
                text += f" (2/1 {entry['min_scaling']:.2f})"
            parts.append(text)
        lines.append(f"| {block_n} | {sparsity:g} | {threads} | " + " | ".join(parts) + " |")
    return lines


def model_table(rows: list[dict]) -> list[str]:
    """Markdown lines: one row per (model, batch, threads), then what was not claimed and why."""
    lines = [
        "| model | batch | thr | delegate ms | XNNPACK ms | speedup | ideal | eff. | GFLOP/s "
        "| % peak | 2/1 | claimed | agree |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['label']} | {row['batch']} | {row['threads']} | {row['delegate_ms']:.2f} | "
            f"{row['xnnpack_ms']:.2f} | {row['speedup']:.2f}x | {row['ideal_speedup']:.2f} | "
            f"{row['efficiency']:.2f} | {row['kept_gflops']:.1f} | {row['percent_of_peak']:.0f} | "
            f"{_format(row['scaling'], 2, 'x')} | {_claim_cell(row)} | "
            f"{'yes' if row['agree'] else 'NO'} |"
        )
    not_claimed = {}
    for row in rows:
        if row["claims"]["not_claimed"]:
            not_claimed[row["label"]] = row["claims"]["not_claimed"]
    if not_claimed:
        lines += ["", "Convs the delegate did not claim, by reason:"]
        lines += [f"- {label}: {reasons}" for label, reasons in not_claimed.items()]
    return lines


def stem_table(rows: list[dict]) -> list[str]:
    """Markdown lines: one row per (stem shape, batch, threads), then what was not claimed."""
    lines = [
        "| conv | input | batch | thr | delegate ms | XNNPACK ms | speedup | GFLOP/s | % peak "
        "| 2/1 | claimed | microkernel | agree |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|",
    ]
    not_claimed = {}
    for row in rows:
        lines.append(
            f"| {row['conv']} | {row['in_width']} | {row['batch']} | {row['threads']} | "
            f"{row['delegate_ms']:.3f} | {row['xnnpack_ms']:.3f} | {row['speedup']:.2f}x | "
            f"{row['kept_gflops']:.1f} | {row['percent_of_peak']:.0f} | "
            f"{_format(row['scaling'], 2, 'x')} | {_claim_cell(row)} | "
            f"{', '.join(row['claims'].get('microkernels', {}))} | "
            f"{'yes' if row['agree'] else 'NO'} |"
        )
        for reason in row["claims"]["not_claimed"]:
            not_claimed.setdefault(f"{row['conv']} @{row['in_width']}", reason)
    if not_claimed:
        lines += ["", "Not claimed, by reason:"]
        lines += [f"- {conv}: {reason}" for conv, reason in not_claimed.items()]
    return lines


def write_plot(
    path: Path, rows: list[dict], load_start: Sequence[float], load_end: Sequence[float]
) -> str | None:
    """Speedup against block sparsity per N (median over layers, layers as dots), ideal curve.

    Returns None when written, else the reason it was not (matplotlib missing, no rows).
    """
    layer_rows = [row for row in rows if row["level"] == "layer"]
    if not layer_rows:
        return "no layer-level rows"
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install matplotlib)"
    import numpy as np

    thread_counts = sorted({row["threads"] for row in layer_rows})
    figure, axes = plt.subplots(
        1, len(thread_counts), figsize=(6 * len(thread_counts), 4.5), squeeze=False, sharey=True
    )
    block_ns = sorted({row["block_n"] for row in layer_rows})
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    sparsities = sorted({row["block_sparsity"] for row in layer_rows})
    for axis, threads in zip(axes[0], thread_counts, strict=True):
        grid = np.linspace(min(sparsities + [0.5]) - 0.02, max(sparsities + [0.9]) + 0.02, 100)
        axis.plot(grid, 1 / (1 - grid), "k--", label="ideal 1/(1-s)")
        axis.axhline(1.0, color="gray", linewidth=0.8)
        for index, block_n in enumerate(block_ns):
            color = colors[index % len(colors)]
            members = [r for r in layer_rows if r["threads"] == threads and r["block_n"] == block_n]
            by_target: dict[float, list[dict]] = {}
            for row in members:
                by_target.setdefault(row["sparsity"], []).append(row)
            xs = sorted(by_target)
            axis.scatter(
                [r["block_sparsity"] for r in members],
                [r["speedup"] for r in members],
                s=8,
                alpha=0.35,
                color=color,
            )
            axis.plot(
                [statistics.median(r["block_sparsity"] for r in by_target[x]) for x in xs],
                [statistics.median(r["speedup"] for r in by_target[x]) for x in xs],
                "o-",
                color=color,
                label=f"1x{block_n} (median of layers)",
            )
        axis.set_title(f"{threads} thread(s)")
        axis.set_xlabel("block sparsity s")
        axis.set_yscale("log")
        axis.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("speedup over dense XNNPACK (same model)")
    axes[0][0].legend(fontsize=8)
    figure.suptitle(
        f"1xN sparse delegate, single-conv layers (load {load_start[0]:.2f} -> {load_end[0]:.2f})"
    )
    figure.tight_layout()
    temporary = path.with_name(f".{path.name}.tmp.png")
    figure.savefig(temporary, dpi=110)
    plt.close(figure)
    os.replace(temporary, path)
    return None


def delegate_cpu_traits() -> dict:
    """What the delegate's defaults found in this CPU: {"split_avx512": bool, "pixel_pairs":
    bool} (None values from libraries older than those report fields)."""
    import tflite_delegate

    summary = tflite_delegate.delegate_summary(tflite_delegate.load_delegate())
    return {"split_avx512": summary.split_avx512, "pixel_pairs": summary.pixel_pairs}


def cpu_trait_text(traits: dict | None) -> str:
    """The report header's words for `traits` (delegate_cpu_traits), e.g. ", pixel pairs off";
    "" when unknown."""
    if not traits or traits.get("pixel_pairs") is None:
        return ""
    text = f", pixel pairs {'on' if traits['pixel_pairs'] else 'off'}"
    if traits.get("split_avx512"):
        text += ", 512-bit operations split (Zen 4 claim thresholds)"
    return text


def markdown_report(record: dict) -> str:
    """The whole markdown report of a results record (as written to the JSON)."""
    env = record["environment"]
    lines = [
        "# 1xN sparse delegate vs dense XNNPACK",
        "",
        f"Command: `{record['command']}`",
        "",
        f"{record['created_utc']}; {machine_text(env)}; "
        f"ai_edge_litert {env['ai_edge_litert']}, numpy {env['numpy']}; delegate ISA "
        f"{record['delegate_isa']}{cpu_trait_text(record.get('delegate_cpu'))}.",
        f"{record['load_start_line']}  ",
        f"{record['load_end_line']}",
        "",
        f"Median of {record['settings']['repeats']} interleaved samples per interpreter (each "
        f"the mean of invokes lasting >= {record['settings']['min_sample_ms']} ms); speedup = "
        "XNNPACK ms / delegate ms on the same .tflite; ideal = dense FLOPs / kept FLOPs; eff. = "
        "speedup / ideal; GFLOP/s on the kept work, % of "
        f"{record['settings']['peak_gflops_per_core']:.1f} GFLOP/s x threads (fp32 FMA peak per "
        f"core: {record['peak_source']}); 2/1 = delegate ms at "
        "1 thread / at 2 threads; claimed = CONV_2D nodes claimed / all (detected block length).",
        "",
        f"Noise: (max - min) / median of a row's samples (the larger of both engines) is "
        f"{record['spread']['median']:.2f} in the median row and {record['spread']['max']:.2f} "
        "at worst (a quiet machine gives a few hundredths).",
    ]
    if record["model_rows"]:
        lines += ["", "## Models (224x224)", "", *model_table(record["model_rows"])]
    if record["layer_rows"]:
        lines += [
            "",
            "## Single-conv layers (batch 1)",
            "",
            *summary_table(record["layer_summary"]),
            "",
            *layer_table(record["layer_rows"]),
        ]
    if record.get("stem_rows"):
        lines += [
            "",
            "## Dense convs over few input channels (stem level)",
            "",
            *stem_table(record["stem_rows"]),
        ]
    if record["plot"]:
        lines += ["", f"![speedup against sparsity]({Path(record['plot']).name})"]
    elif record["plot_skipped"]:
        lines += ["", f"No plot: {record['plot_skipped']}."]
    return "\n".join(lines) + "\n"


def write_text_atomically(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file, so `path` is never partial."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def command_line() -> str:
    """The command that runs this script with the arguments it was given."""
    return ("python -m scripts.benchmark_delegate " + " ".join(sys.argv[1:])).strip()


def main(argv: Sequence[str]) -> int:
    """Validate the flags, convert, measure, and write the results; 1 if outputs disagree."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {list(argv[1:])}")
    apply_quick_defaults(QUICK_DEFAULTS)
    settings = validate_flags()
    logging.set_verbosity(logging.WARNING)  # TensorFlow's converter logs every SavedModel step
    command = command_line()
    print(f"command: {command}")
    load_start = load_average()
    load_start_line = print_load("at start", load_start)

    sources = []
    if "layer" in settings.levels:
        # --list_shapes writes nothing; other runs keep the shape lists with the cached models.
        cache = None if FLAGS.list_shapes else cache_dir(settings.out_dir)
        sources = select_layer_shapes(settings, cache)
        if not sources:
            raise app.UsageError("no layer shape matches --nets/--widths/--kernels")
        for source in sources:
            print(f"layer {source.shape.describe()} @{source.shape.out_size}: {source.nets}")
        if FLAGS.list_shapes:
            return 0
    elif FLAGS.list_shapes:
        raise app.UsageError("--list_shapes needs the layer level")

    settings.out_dir.mkdir(parents=True, exist_ok=True)
    settings, peak_source = resolve_peak(settings)
    print(f"fp32 FMA peak: {settings.peak_gflops_per_core:.1f} GFLOP/s per core ({peak_source})")
    start = time.perf_counter()
    layer_plan = prepare_layer_models(settings, sources) if sources else []
    model_plan = prepare_models(settings) if "model" in settings.levels else []
    stem_plan = prepare_stem_models(settings) if "stem" in settings.levels else []
    conversion_s = time.perf_counter() - start
    print(f"models ready in {conversion_s:.1f} s", flush=True)
    if FLAGS.convert_only:
        count = len(layer_plan) + len(model_plan) + len(stem_plan)
        print(f"--convert_only: {count} models in {settings.out_dir}")
        return 0

    start = time.perf_counter()
    model_rows = run_model_level(settings, model_plan) if model_plan else []
    layer_rows = run_layer_level(settings, layer_plan) if layer_plan else []
    stem_rows = run_stem_level(settings, stem_plan) if stem_plan else []
    timing_s = time.perf_counter() - start
    load_end = load_average()
    load_end_line = print_load("at end", load_end)

    rows = model_rows + layer_rows + stem_rows
    isas = sorted({row["claims"]["isa"] for row in rows if row["claims"]["isa"]})
    record = {
        "command": command,
        "created_utc": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "environment": environment(),
        "delegate_isa": ",".join(isas) or "?",
        "delegate_cpu": delegate_cpu_traits(),
        "peak_source": peak_source,
        "settings": {
            key: (str(value) if isinstance(value, Path) else value)
            for key, value in asdict(settings).items()
        },
        "load_average_start": load_start,
        "load_average_end": load_end,
        "load_start_line": load_start_line,
        "load_end_line": load_end_line,
        "conversion_s": round(conversion_s, 1),
        "timing_s": round(timing_s, 1),
        "model_rows": model_rows,
        "layer_rows": layer_rows,
        "layer_summary": efficiency_summary(layer_rows),
        "stem_rows": stem_rows,
        "spread": {
            "median": statistics.median(row["spread"] for row in rows),
            "max": max(row["spread"] for row in rows),
        },
        "plot": None,
        "plot_skipped": None,
    }
    plot_path = settings.out_dir / f"{RESULT_STEM}.png"
    skipped = write_plot(plot_path, rows, load_start, load_end)
    record["plot"], record["plot_skipped"] = (None, skipped) if skipped else (str(plot_path), None)
    if skipped:
        print(f"no plot: {skipped}")
    write_json_atomically(settings.out_dir / f"{RESULT_STEM}.json", record)
    markdown = markdown_report(record)
    write_text_atomically(settings.out_dir / f"{RESULT_STEM}.md", markdown)
    print()
    print(markdown)
    print(
        f"wrote {settings.out_dir}/{RESULT_STEM}.{{md,json{'' if skipped else ',png'}}}; "
        f"conversion {conversion_s:.0f} s, timing {timing_s:.0f} s"
    )
    disagreeing = [row for row in rows if not row["agree"]]
    if disagreeing:
        for row in disagreeing:
            print(
                f"ERROR: outputs disagree ({row['agreement']['relative']:.2e} > "
                f"{settings.tolerance:g}): {row.get('label') or row.get('conv')} "
                f"{_blocks_label(row)} threads "
                f"{row['threads']} ({row['tflite']})",
                file=sys.stderr,
            )
        return 1
    return 0


if __name__ == "__main__":
    define_flags()
    app.run(main)
