"""The inspector CLI (`python -m tflite_delegate.inspect_model`) and the model reader behind it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.tflite_delegate.delegate_keras_models import converted_small_model
from tests.tflite_delegate.delegate_test_support import (
    available_isas,
    cpu_splits_avx512,
    default_pixel_pairs,
)
from tflite_delegate.block_pattern import block_pattern
from tflite_delegate.flatbuffer_models import ConvSpec, build_conv_model
from tflite_delegate.inspect_model import EXIT_BAD_INPUT, EXIT_CHECK_FAILED, main
from tflite_delegate.tflite_model import ModelReadError, read_conv_layers

REPOSITORY = Path(__file__).resolve().parents[2]


def _rows(output: str) -> dict[str, str]:
    """Table lines keyed by layer name (second column)."""
    rows = {}
    for line in output.splitlines()[2:]:
        columns = line.split()
        if len(columns) > 2:
            rows[columns[1]] = line
    return rows


def _small_model_path(capsys) -> Path:
    """The converted model, with the converter's chatter drained from the captured output."""
    path, _, _ = converted_small_model()
    capsys.readouterr()
    return path


def test_table_shows_pattern_and_delegate_decisions(capsys):
    import tflite_delegate

    path = _small_model_path(capsys)
    isa = tflite_delegate.supported_isas()[0]  # the best one, the delegate's own default
    assert main([str(path), "--threads", "2", "--isa", isa]) == 0
    output = capsys.readouterr().out
    assert "3 CONV_2D layer(s)" in output
    rows = _rows(output)
    assert set(rows) == {"stem", "sparse_a", "sparse_b"}
    # sparse_a: 24 outputs, 1x8 tap vectors dropped at 60 % of 3*3*16 = 144 taps per group ->
    # 58 kept; the blocks (whole 3x3 windows, 16 per group) that lost all nine taps are counted
    # by the numpy reference below.
    columns = rows["sparse_a"].split()
    layer = next(layer for layer in read_conv_layers(model_path=path) if layer.name == "sparse_a")
    pattern = block_pattern(layer.filter, 8)
    blocks = f"{pattern.kept_blocks_min}-{pattern.kept_blocks_max}"
    block_sparsity = f"{100 * pattern.block_sparsity:.1f}%"
    balance = f"{pattern.balance_ratio:.3f}"
    assert columns[2:10] == [
        "24x3x3x16",
        "float32",
        "8",
        block_sparsity,
        blocks,
        balance,
        "59.7%",
        "58-58",
    ]
    # 59.7 % of its 1x8 tap vectors are zero: claimed where N = 8's default threshold is 0.55
    # (AVX2, generic) or 0.4 (AVX-512 on a CPU that splits 512-bit operations, Zen 4), left to
    # XNNPACK with AVX-512 elsewhere, whose pixel-pair 1x8 variant takes this 3x3 layer from 0.6
    # where this CPU runs pixel pairs (option pixel_pairs=auto), the pixel-major one from 0.75.
    if isa == "avx512" and not cpu_splits_avx512():
        assert "no [below_min_sparsity]: " in rows["sparse_a"]
        default = (
            "0.60 (the default for N=8, pixel-pair with avx512)"
            if default_pixel_pairs()
            else "0.75 (the default for N=8 with avx512)"
        )
        assert f"below min_sparsity {default}" in rows["sparse_a"]
    else:
        assert "claimed (N=8," in rows["sparse_a"]
    # The dense stem is below the default min_sparsity: stays with XNNPACK, with a reason.
    assert "no [below_min_sparsity]: " in rows["stem"] and "0.0%" in rows["stem"]


def test_min_sparsity_option_reaches_the_delegate(capsys):
    path = _small_model_path(capsys)
    assert main([str(path), "--min-sparsity", "0", "--isa", "generic"]) == 0
    rows = _rows(capsys.readouterr().out)
    assert all("claimed (N=" in line and "generic" in line for line in rows.values())


def test_check_block_n_passes_and_fails(capsys):
    path = _small_model_path(capsys)
    assert main([str(path), "--no-delegate", "--check-block-n", "8"]) == 0
    assert "check passed" in capsys.readouterr().out
    assert main([str(path), "--no-delegate", "--check-block-n", "16"]) == EXIT_CHECK_FAILED
    output = capsys.readouterr().out
    assert "check failed" in output and "sparse_a" in output and "stem" not in output.split(":")[-1]


def test_missing_and_corrupt_files_give_clear_errors(tmp_path, capsys):
    assert main([str(tmp_path / "absent.tflite")]) == EXIT_BAD_INPUT
    assert "not found" in capsys.readouterr().err
    garbage = tmp_path / "garbage.tflite"
    garbage.write_bytes(b"\x00" * 64)
    assert main([str(garbage)]) == EXIT_BAD_INPUT
    assert "not a TFLite flatbuffer" in capsys.readouterr().err
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(_small_model_path(capsys).read_bytes()[:200])
    assert main([str(truncated)]) == EXIT_BAD_INPUT
    assert "error:" in capsys.readouterr().err
    with pytest.raises(ModelReadError):
        read_conv_layers(model_content=b"")


def test_bad_delegate_option_is_reported_not_crashed(capsys):
    path = _small_model_path(capsys)
    assert main([str(path), "--block-n", "3"]) == EXIT_BAD_INPUT
    assert "block_n" in capsys.readouterr().err


def test_command_line_entry_point(tmp_path):
    path, _, _ = converted_small_model()
    result = subprocess.run(
        [sys.executable, "-m", "tflite_delegate.inspect_model", str(path), "--no-delegate"],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "sparse_b" in result.stdout
    missing = subprocess.run(
        [sys.executable, "-m", "tflite_delegate.inspect_model", str(tmp_path / "none.tflite")],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode == EXIT_BAD_INPUT and "not found" in missing.stderr


@pytest.mark.skipif("avx512" not in available_isas(), reason="needs AVX-512")
def test_a_stem_claimed_by_the_few_channel_rule_is_marked(tmp_path, capsys):
    weights = np.random.default_rng(0).normal(0.0, 0.1, (64, 7, 7, 3)).astype(np.float32)
    path = tmp_path / "stem.tflite"
    path.write_bytes(build_conv_model((1, 112, 112, 3), [ConvSpec(weights, None, stride=(2, 2))]))
    assert main([str(path), "--isa", "avx512"]) == 0
    (line,) = _rows(capsys.readouterr().out).values()
    assert "claimed (N=32, avx512, f32_1x32_p8__avx512; dense, few input channels)" in line
    assert main([str(path), "--isa", "avx512", "--min-sparsity", "0"]) == 0
    (line,) = _rows(capsys.readouterr().out).values()
    assert "claimed (N=32, avx512, f32_1x32_p8__avx512)" in line
