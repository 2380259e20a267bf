"""The default claiming threshold depends on the block width N (the measured break-even of each
microkernel width against XNNPACK), and an explicit min_sparsity replaces it for every width."""

import numpy as np
import pytest

from tests.tflite_delegate.delegate_test_support import available_isas, delegate_interpreter
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
    ("block_n", "kept", "claimed_with_avx512", "claimed_otherwise"),
    [
        (16, 10, True, True),  # 0.375 >= 0.3
        (16, 12, False, False),  # 0.25 < 0.3
        (8, 7, True, True),  # 0.5625 >= 0.55
        # 0.5: every 1x8 layer measured at 50 % beat XNNPACK with the AVX-512 microkernels
        # (threshold 0.5); AVX2 and generic keep 0.55
        (8, 8, True, False),
        (4, 3, True, True),  # 0.8125 >= 0.8
        (4, 8, False, False),  # 0.5 < 0.8: a 1x4 layer at 50 % ran at 0.63x XNNPACK's speed
    ],
)
def test_default_threshold_depends_on_the_block_width_and_isa(
    isa, block_n, kept, claimed_with_avx512, claimed_otherwise
):
    import tflite_delegate

    threshold = {16: 0.3, 8: 0.5 if isa == "avx512" else 0.55, 4: 0.8}[block_n]
    expected = claimed_with_avx512 if isa == "avx512" else claimed_otherwise
    weights = _uniform_1xn_filter(32, 16, block_n, kept, seed=block_n * 100 + kept)
    content = build_conv_model((1, 8, 8, 16), [ConvSpec(weights, None)])
    _, delegate = delegate_interpreter(content, block_n=block_n, isa=isa)
    (decision,) = tflite_delegate.delegation_report(delegate)
    assert decision.block_n == block_n
    assert decision.claimed == expected
    if not expected:
        assert decision.reason_code == "below_min_sparsity"
        assert (
            f"below min_sparsity {threshold:.2f} (the default for N={block_n} with {isa})"
            in decision.reason
        )
    # An explicit threshold applies to every width.
    _, delegate = delegate_interpreter(content, block_n=block_n, min_sparsity=0.0)
    (decision,) = tflite_delegate.delegation_report(delegate)
    assert decision.claimed


@pytest.mark.parametrize(("kept", "sparsity"), [(4, 0.75), (8, 0.5)])
def test_a_channel_major_layer_has_its_own_default_threshold(kept, sparsity):
    """A 1x1 stride-1 layer at N=4 runs the channel-major microkernel where the ISA has one
    (AVX2, AVX-512); its default threshold is 0.75 (measured break-even) instead of N=4's 0.8."""
    import tflite_delegate

    weights = _uniform_1xn_filter(64, 16, 4, kept, seed=kept, kernel=1)
    content = build_conv_model((1, 8, 8, 16), [ConvSpec(weights, None)])
    _, delegate = delegate_interpreter(content, block_n=4, min_sparsity=0.0)
    (forced,) = tflite_delegate.delegation_report(delegate)
    layouts = {kernel.name: kernel.layout for kernel in tflite_delegate.microkernels()}
    channel_major = layouts[forced.microkernel] == "channel_major"
    _, delegate = delegate_interpreter(content, block_n=4)
    (decision,) = tflite_delegate.delegation_report(delegate)
    assert decision.tap_vector_sparsity == pytest.approx(sparsity)
    assert decision.claimed == (channel_major and sparsity >= 0.75)
    if decision.claimed:
        assert decision.microkernel == forced.microkernel
    else:
        assert decision.reason_code == "below_min_sparsity"
        suffix = ", channel-major" if channel_major else ""
        threshold = "0.75" if channel_major else "0.80"
        isa = tflite_delegate.supported_isas()[0]  # the delegate's default: the best one
        assert f"below min_sparsity {threshold} (the default for N=4{suffix} with {isa})" in (
            decision.reason
        )
