"""The default claiming threshold depends on the block width N (the measured break-even of each
microkernel width against XNNPACK) and, for dense convolutions over few input channels, on the
shape; an explicit min_sparsity replaces it for every width and shape."""

import numpy as np
import pytest

from tests.tflite_delegate.delegate_test_support import (
    assert_outputs_close,
    available_isas,
    cpu_splits_avx512,
    delegate_interpreter,
    model_inputs,
    reference_interpreter,
    run,
)
from tflite_delegate.flatbuffer_models import ConvSpec, build_conv_model


def _uniform_1xn_filter(
    out_channels: int, in_channels: int, block_n: int, kept: int, seed: int, kernel: int = 3
):
    """OHWI KxK filter whose groups of `block_n` output channels each keep `kept` whole blocks."""
    rng = np.random.default_rng(seed)
    weights = rng.uniform(0.5, 1.5, (out_channels, kernel, kernel, in_channels)).astype(np.float32)
    for group in range(out_channels // block_n):
        pruned = rng.permutation(in_channels)[kept:]
        weights[group * block_n : (group + 1) * block_n, :, :, pruned] = 0.0
    return weights


@pytest.mark.parametrize("isa", available_isas())
@pytest.mark.parametrize(
    ("block_n", "kept"),
    [
        # AVX-512 thresholds are Zen 5's break-evens (XNNPACK's dense kernels use both 512-bit
        # FMA pipes there, our pixel-major 1x8 and 1x4 microkernels only 256 and 128 bits): 0.45
        # for N = 16, 0.75 for N = 8 (0.6 for the pixel-pair 1x8 variant), 0.88 for N = 4; AVX2
        # and generic keep 0.3, 0.55 and 0.8 (0.75 for the channel-major 1x4 variant, which
        # these 3x3 layers get with AVX2). On a CPU that splits 512-bit operations (Zen 4) the
        # AVX-512 table is 0.2 for N >= 16, 0.4 for the channel-major 1x8 and 1x4 variants, 0.5
        # for the pixel-major 1x8 one and 0.75 for the pixel-major 1x4 one.
        (16, 8),  # 0.5
        (16, 10),  # 0.375
        (16, 12),  # 0.25
        (16, 13),  # 0.1875
        (8, 4),  # 0.75
        (8, 6),  # 0.625
        (8, 7),  # 0.5625 (pixel-pair 1x1 layers ran 0.74-1.18x at 0.5 on Zen 5)
        (8, 8),  # 0.5
        (8, 9),  # 0.4375
        (8, 10),  # 0.375
        (4, 1),  # 0.9375
        (4, 2),  # 0.875
        (4, 3),  # 0.8125
        (4, 4),  # 0.75
        (4, 8),  # 0.5: a pixel-major 1x4 layer at 50 % ran at 0.63x XNNPACK's speed (Zen 4)
        (4, 10),  # 0.375
        # Scalar code with every ISA: N = 2 from 0.98, N = 1 only for an all-zero filter.
        (2, 0),  # 1.0
        (2, 1),  # 0.9375 < 0.98
        (1, 0),  # 1.0
        (1, 1),  # 0.9375: N = 1 ran 0.34x at 98.5 % on Zen 5
    ],
)
def test_default_threshold_depends_on_the_block_width_layout_and_isa(isa, block_n, kept):
    import tflite_delegate

    layouts = {kernel.name: kernel.layout for kernel in tflite_delegate.microkernels()}
    weights = _uniform_1xn_filter(32, 16, block_n, kept, seed=block_n * 100 + kept)
    content = build_conv_model((1, 8, 8, 16), [ConvSpec(weights, None)])
    split = isa == "avx512" and cpu_splits_avx512()
    names = {"pixel_pair": ", pixel-pair", "channel_major": ", channel-major", "pixel_major": ""}
    for pixel_pairs in (True, False):
        # The variant the delegate picks for this layer (forced claim): pixel-pair, channel-major
        # (enough kept work per value) or pixel-major; the default threshold is that layout's.
        _, delegate = delegate_interpreter(
            content, block_n=block_n, isa=isa, pixel_pairs=pixel_pairs, min_sparsity=0.0
        )
        (forced,) = tflite_delegate.delegation_report(delegate)
        assert forced.claimed
        layout = layouts[forced.microkernel]
        assert layout != "pixel_pair" or (pixel_pairs and isa == "avx512" and block_n in (8, 16))
        channel_major = layout == "channel_major"
        if split:
            thresholds = {
                16: 0.2,
                8: 0.4 if channel_major else 0.5,
                4: 0.4 if channel_major else 0.75,
            }
        elif isa == "avx512":
            thresholds = {16: 0.45, 8: 0.6 if layout == "pixel_pair" else 0.75, 4: 0.88}
        else:
            thresholds = {16: 0.3, 8: 0.55, 4: 0.75 if channel_major else 0.8}
        threshold = {**thresholds, 2: 0.98, 1: 1.0}[block_n]
        _, delegate = delegate_interpreter(
            content, block_n=block_n, isa=isa, pixel_pairs=pixel_pairs
        )
        (decision,) = tflite_delegate.delegation_report(delegate)
        assert decision.block_n == block_n
        assert decision.claimed == (1 - kept / 16 >= threshold), (pixel_pairs, decision.reason)
        if decision.claimed:
            assert decision.microkernel == forced.microkernel
        else:
            assert decision.reason_code == "below_min_sparsity"
            assert (
                f"below min_sparsity {threshold:.2f} (the default for N={block_n}"
                f"{names[layout]} with {isa})" in decision.reason
            ), decision.reason


# A 1x1 layer at N = 4: (I, O, kept tap vectors per group of 4), the layout the delegate picks and
# the default threshold, per ISA. The channel-major variant needs 32 kept FLOPs per input value
# (2 x O x (1 - s)) with both ISAs, and with AVX-512 also 64 per output value (2 x I x (1 - s)),
# both 8 on a CPU that splits 512-bit operations ("avx512_split"); its threshold is 0.75 with AVX2,
# N = 4's 0.88 with AVX-512 and 0.4 on a splitting CPU (0.75 for the pixel-major variant there).
# Generic has no channel-major row.
CHANNEL_MAJOR_CASES = {
    "avx2": [
        ((16, 64, 4), "channel_major", True, None),  # s = 0.75
        ((16, 64, 8), "channel_major", False, "0.75 (the default for N=4, channel-major"),  # 0.5
    ],
    "avx512": [
        ((512, 256, 48), "channel_major", True, None),  # 0.906: 48 per input, 96 per output
        ((64, 128, 4), "pixel_major", True, None),  # 0.9375: 8 per output value
        ((512, 256, 64), "channel_major", False, "0.88 (the default for N=4, channel-major"),
        ((64, 128, 8), "pixel_major", False, "0.88 (the default for N=4 with"),  # 0.875
    ],
    "avx512_split": [
        ((64, 128, 8), "channel_major", True, None),  # 0.875: 16 per output value
        ((64, 128, 2), "pixel_major", True, None),  # 0.96875: 4 per output value
        ((64, 64, 8), "channel_major", True, None),  # 0.875: 16 per input and per output
        ((64, 16, 8), "pixel_major", True, None),  # 0.875: 4 per input value
        ((512, 256, 300), "channel_major", True, None),  # 0.414: 600 per output
        ((512, 256, 320), "channel_major", False, "0.40 (the default for N=4, channel-major"),
        ((8, 64, 3), "pixel_major", False, "0.75 (the default for N=4 with"),  # 0.625: 6 per output
    ],
    "generic": [
        ((16, 64, 3), "pixel_major", True, None),  # 0.8125
        ((16, 64, 4), "pixel_major", False, "0.80 (the default for N=4 with"),  # 0.75
    ],
}


@pytest.mark.parametrize("isa", available_isas())
def test_a_channel_major_layer_is_picked_by_its_work_per_value_and_has_its_own_threshold(isa):
    import tflite_delegate

    layouts = {kernel.name: kernel.layout for kernel in tflite_delegate.microkernels()}
    table = "avx512_split" if isa == "avx512" and cpu_splits_avx512() else isa
    for (in_channels, out_channels, kept), layout, claimed, reason in CHANNEL_MAJOR_CASES[table]:
        weights = _uniform_1xn_filter(out_channels, in_channels, 4, kept, seed=kept, kernel=1)
        content = build_conv_model((1, 8, 8, in_channels), [ConvSpec(weights, None)])
        _, delegate = delegate_interpreter(content, block_n=4, isa=isa, min_sparsity=0.0)
        (forced,) = tflite_delegate.delegation_report(delegate)
        assert layouts[forced.microkernel] == layout, (in_channels, out_channels, kept)
        _, delegate = delegate_interpreter(content, block_n=4, isa=isa)
        (decision,) = tflite_delegate.delegation_report(delegate)
        assert decision.tap_vector_sparsity == pytest.approx(1 - kept / in_channels)
        assert decision.claimed == claimed, decision.reason
        if claimed:
            assert decision.microkernel == forced.microkernel
        else:
            assert decision.reason_code == "below_min_sparsity"
            assert f"below min_sparsity {reason}" in decision.reason, decision.reason


# (input H, W, I), (O, K, stride), claimed by default with AVX-512: DenseFewChannelConvPays
# (claiming_policy.h) claims dense convolutions over at most 4 input channels on AVX-512 when
# N = 32 holds, O >= 64, the filter is at most 256 KiB, has at least 49 taps per output channel
# (KH x KW x I) and the conv does at least 20 MFLOP.
DENSE_FEW_CHANNEL_CASES = [
    ((112, 112, 3), (64, 7, 2), True),  # the ResNet stem at 112 input: 59 MFLOP, 147 taps
    ((224, 224, 1), (64, 7, 2), True),  # exactly 49 taps
    ((224, 224, 3), (96, 4, 4), False),  # 48 taps (4x4 patches of 3 channels), 28.9 MFLOP
    ((96, 96, 3), (64, 3, 1), False),  # 27 taps: 3x3 3->64 ran at 0.72-0.89x on Zen 5
    ((125, 25, 2), (64, 5, 1), True),  # 50 taps, exactly 20 MFLOP
    ((124, 25, 2), (64, 5, 1), False),  # 19.8 MFLOP: too small
    ((224, 224, 4), (64, 16, 16), True),  # a 4x16x16x64 filter: exactly 256 KiB
    ((224, 224, 4), (96, 16, 16), False),  # 384 KiB of weights
    ((112, 112, 3), (32, 7, 2), False),  # O = 32: one group per tile
    ((112, 112, 3), (80, 7, 2), True),  # N = 32 with a partial last group
    ((112, 112, 3), (48, 7, 2), False),  # O = 48 < 64
    ((112, 112, 5), (64, 7, 2), False),  # I = 5
]


@pytest.mark.parametrize("isa", available_isas())
@pytest.mark.parametrize(("input_hwc", "conv", "claimed_with_avx512"), DENSE_FEW_CHANNEL_CASES)
def test_dense_convs_over_few_input_channels_are_claimed_where_they_pay(
    isa, input_hwc, conv, claimed_with_avx512
):
    import tflite_delegate

    out_channels, kernel, stride = conv
    rng = np.random.default_rng(sum(input_hwc) + out_channels + kernel)
    weights = rng.normal(0.0, 0.1, (out_channels, kernel, kernel, input_hwc[2])).astype(np.float32)
    bias = rng.normal(0.0, 0.1, out_channels).astype(np.float32)
    spec = ConvSpec(weights, bias, stride=(stride, stride), activation="RELU")
    content = build_conv_model((1, *input_hwc), [spec])
    interpreter, delegate = delegate_interpreter(content, isa=isa)
    (decision,) = tflite_delegate.delegation_report(delegate)
    assert decision.tap_vector_sparsity == 0.0
    expected = claimed_with_avx512 and isa == "avx512"
    assert decision.claimed == expected, decision.reason
    if expected:
        assert decision.block_n == 32 and decision.microkernel == "f32_1x32_p8__avx512"
        assert decision.reason_code == "claimed"
        assert decision.reason.startswith("claimed: a dense conv over few input channels")
        inputs = model_inputs(interpreter, batch=1, seed=3)
        assert_outputs_close(run(interpreter, inputs), run(reference_interpreter(content), inputs))
    else:
        assert decision.reason_code == "below_min_sparsity"
        default_n = decision.block_n
        assert f"(the default for N={default_n} with {isa})" in decision.reason
    # An explicit threshold replaces the rule; claimed through it, the reason is the plain one.
    _, delegate = delegate_interpreter(content, isa=isa, min_sparsity=0.3)
    (decision,) = tflite_delegate.delegation_report(delegate)
    assert not decision.claimed and decision.reason_code == "below_min_sparsity"
    _, delegate = delegate_interpreter(content, isa=isa, min_sparsity=0.0)
    (decision,) = tflite_delegate.delegation_report(delegate)
    assert decision.claimed and decision.reason == "claimed"


@pytest.mark.parametrize("isa", available_isas())
def test_the_report_names_the_microkernel_each_layer_runs_once_prepared(isa):
    # 1x1 layers in 1x16 blocks at 50 % on a 14x14 input: with AVX-512 both are claimed with the
    # pixel-pair variant (64 and 256 kept FLOPs per input value, at least 48), and at prepare
    # time 64->64 goes to the pixel-major variant (below 96 per input value and group chunk:
    # SparseConvOperator::set_pixel_pair_fallback) while 64->256 keeps its pairs. Other ISAs
    # have no pair variant: pixel-major throughout.
    import tflite_delegate

    rows = [k for k in tflite_delegate.microkernels() if k.isa == isa and k.block_n == 16]
    by_layout = {
        layout: [k.name for k in rows if k.layout == layout][0]
        for layout in {k.layout for k in rows}
    }
    # Without pixel pairs (option pixel_pairs=0) both run pixel-major from the start.
    for pixel_pairs in (True, False):
        pixel_major = by_layout["pixel_major"]
        paired = by_layout.get("pixel_pair", pixel_major) if pixel_pairs else pixel_major
        for out_channels, running in ((64, pixel_major), (256, paired)):
            weights = _uniform_1xn_filter(out_channels, 64, 16, 32, seed=3, kernel=1)
            content = build_conv_model((1, 14, 14, 64), [ConvSpec(weights, None)])
            interpreter, delegate = delegate_interpreter(
                content, block_n=16, isa=isa, min_sparsity=0.0, pixel_pairs=pixel_pairs
            )
            (claimed,) = tflite_delegate.delegation_report(delegate)
            assert claimed.claimed and claimed.microkernel == paired, claimed
            interpreter.allocate_tensors()
            (prepared,) = tflite_delegate.delegation_report(delegate)
            assert prepared.microkernel == running, (out_channels, prepared.microkernel)
            # And it computes the layer.
            inputs = model_inputs(interpreter, batch=1, seed=out_channels)
            reference = run(reference_interpreter(content), inputs)
            assert_outputs_close(run(interpreter, inputs), reference)
