"""scripts.benchmark_delegate: flag validation, the layer shapes it picks, and a tiny --quick run
whose results are checked against the model file it wrote (numpy reference, block pattern).

Everything runs the script in a subprocess, as a user would: its absl flags must not meet other
scripts' flags in the pytest process.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPOSITORY = Path(__file__).resolve().parents[2]


def run_benchmark(*flags: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    command = [sys.executable, "-m", "scripts.benchmark_delegate", *flags]
    return subprocess.run(
        command, cwd=REPOSITORY, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--block_n=3"], "--block_n values must be in"),
        (["--sparsity=0.5,1.0"], "--sparsity values must be in (0, 1)"),
        (["--sparsity=half"], "--sparsity must list numbers"),
        (["--threads=0"], "--threads values must be >= 1"),
        (["--nets=resnet18,vgg"], "--nets: unknown ['vgg']"),
        (["--levels=speed"], "--levels: unknown ['speed']"),
        (["--repeats=0"], "--repeats must be >= 1"),
        (["--widths=seven"], "--widths must list integers"),
        (
            ["--levels=model", "--nets=resnet18", "--model_configs=resnet50_2.0G"],
            "no --model_configs ['resnet50_2.0G'] belongs to --nets ['resnet18']",
        ),
        (["--batches=0", "--levels=model"], "--batches values must be >= 1"),
        (["--batches=", "--levels=stem"], "need at least one --batches value"),
        (["--levels=stem", "--stem_shapes=224:3:64:7:3"], "is not INPUT_WIDTH:CIN:COUT:KERNEL"),
        (["--levels=stem", "--stem_shapes=224:3:64:7"], "is not INPUT_WIDTH:CIN:COUT:KERNEL"),
        (["--out_dir=README.md"], "exists and is not a directory"),
        (["--peak_gflops_per_core=0"], "--peak_gflops_per_core and --tolerance must be > 0"),
    ],
)
def test_bad_flags_are_rejected_with_a_message_naming_them(flags, message):
    completed = run_benchmark(*flags, timeout=60)
    assert completed.returncode != 0
    assert message in completed.stderr + completed.stdout


def test_layer_shapes_are_the_distinct_convs_of_the_nets_without_stem_depthwise_classifier():
    completed = run_benchmark("--list_shapes", "--levels=layer", "--nets=resnet18,mobilenet_v1")
    assert completed.returncode == 0, completed.stderr[-2000:]
    listed = re.findall(r"^layer (.+) @(\d+): (\{.*\})$", completed.stdout, flags=re.MULTILINE)
    shapes = {(conv, int(width)): counts for conv, width, counts in listed}
    # Hand-listed: torchvision ResNet-18 (stem excluded; stride on the 3x3 and the 1x1
    # downsample) and MobileNetV1's 13 pointwise convs (depthwise, stem, classifier excluded).
    expected = {
        ("3x3 64->64", 56): "{'resnet18': 4}",
        ("3x3 s2 64->128", 28): "{'resnet18': 1}",
        ("3x3 128->128", 28): "{'resnet18': 3}",
        ("1x1 s2 64->128", 28): "{'resnet18': 1}",
        ("3x3 s2 128->256", 14): "{'resnet18': 1}",
        ("3x3 256->256", 14): "{'resnet18': 3}",
        ("1x1 s2 128->256", 14): "{'resnet18': 1}",
        ("3x3 s2 256->512", 7): "{'resnet18': 1}",
        ("3x3 512->512", 7): "{'resnet18': 3}",
        ("1x1 s2 256->512", 7): "{'resnet18': 1}",
        ("1x1 32->64", 112): "{'mobilenet_v1': 1}",
        ("1x1 64->128", 56): "{'mobilenet_v1': 1}",
        ("1x1 128->128", 56): "{'mobilenet_v1': 1}",
        ("1x1 128->256", 28): "{'mobilenet_v1': 1}",
        ("1x1 256->256", 28): "{'mobilenet_v1': 1}",
        ("1x1 256->512", 14): "{'mobilenet_v1': 1}",
        ("1x1 512->512", 14): "{'mobilenet_v1': 5}",
        ("1x1 512->1024", 7): "{'mobilenet_v1': 1}",
        ("1x1 1024->1024", 7): "{'mobilenet_v1': 1}",
    }
    assert shapes == expected
    assert len(listed) == len(expected)  # no duplicates


QUICK_FLAGS = (
    "--quick",
    "--levels=layer",
    "--nets=mobilenet_v1",
    "--widths=7",
    "--kernels=1",
    "--max_layers=1",
    "--block_n=16",
    "--sparsity=0.75",
    "--threads=1",
    "--repeats=1",
    "--warmup=0",
    "--min_sample_ms=0",
)


def _reference_from_model_file(path: str, image: np.ndarray):
    """Filter (O, 1, 1, I), bias and numpy output of the single 1x1 conv + ReLU in `path`."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=path)
    interpreter.allocate_tensors()
    tensors = interpreter.get_tensor_details()
    (filter_detail,) = [t for t in tensors if len(t["shape"]) == 4 and t["shape"][1] == 1]
    (bias_detail,) = [t for t in tensors if len(t["shape"]) == 1]
    weights = interpreter.get_tensor(filter_detail["index"]).astype(np.float64)
    bias = interpreter.get_tensor(bias_detail["index"]).astype(np.float64)
    reference = np.einsum("nhwc,oc->nhwo", image.astype(np.float64), weights[:, 0, 0, :]) + bias
    return weights, np.maximum(reference, 0.0)


def test_quick_run_writes_consistent_results_and_reuses_its_cache(tmp_path):
    completed = run_benchmark(*QUICK_FLAGS, f"--out_dir={tmp_path}")
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "load average at start" in completed.stdout
    assert "load average at end" in completed.stdout

    record = json.loads((tmp_path / "delegate_benchmark.json").read_text())
    markdown = (tmp_path / "delegate_benchmark.md").read_text()
    assert record["command"].startswith("python -m scripts.benchmark_delegate --quick")
    assert f"Command: `{record['command']}`" in markdown
    assert "load average at start" in markdown and "| N | s | thr | width 7 |" in markdown
    assert record["model_rows"] == []
    assert len(record["load_average_start"]) == 3
    # The FMA peak is measured where the benchmark runs, and the header names the machine.
    assert record["peak_source"].startswith("measured at the start of the run")
    assert f"(fp32 FMA peak per core: {record['peak_source']})" in markdown
    assert record["environment"]["cpu_id"] in markdown
    # So does what the delegate's defaults found in its CPU (pixel pairs, Zen 4's table).
    import tflite_delegate

    found = tflite_delegate.delegate_summary(tflite_delegate.load_delegate())
    assert record["delegate_cpu"] == {
        "split_avx512": found.split_avx512,
        "pixel_pairs": found.pixel_pairs,
    }
    pairs = "on" if found.pixel_pairs else "off"
    assert f"delegate ISA {record['delegate_isa']}, pixel pairs {pairs}" in markdown
    assert ("512-bit operations split (Zen 4 claim thresholds)" in markdown) == found.split_avx512

    (row,) = record["layer_rows"]
    assert (row["conv"], row["out_width"], row["block_n"], row["threads"]) == (
        "1x1 512->1024",
        7,
        16,
        1,
    )
    assert row["pruned_blocks_per_group"] == 384  # int(0.75 * 512)
    assert row["ideal_speedup"] == pytest.approx(4.0)
    assert row["speedup"] == pytest.approx(row["xnnpack_ms"] / row["delegate_ms"])
    assert row["efficiency"] == pytest.approx(row["speedup"] / 4.0)
    assert row["kept_gflops"] == pytest.approx(2 * 49 * 1024 * 128 / (row["delegate_ms"] * 1e6))
    peak = record["settings"]["peak_gflops_per_core"]
    assert row["percent_of_peak"] == pytest.approx(100 * row["kept_gflops"] / peak)
    assert row["claims"]["claimed"] == row["claims"]["conv_nodes"] == 1
    assert row["claims"]["claimed_block_n"] == {"1x16": 1}
    assert row["agree"] and row["agreement"]["relative"] <= 1e-4
    assert len(row["delegate_samples_ms"]) == len(row["xnnpack_samples_ms"]) == 1
    assert row["spread"] == 0.0 and record["spread"] == {"median": 0.0, "max": 0.0}  # 1 sample
    assert "Noise: (max - min) / median" in markdown
    assert "1x1 512->1024" in markdown and "1/1 1x16" in markdown
    summary = record["layer_summary"]
    assert [(s["block_n"], s["out_width"], s["layers"]) for s in summary] == [(16, 7, 1)]
    if record["plot"]:
        assert (tmp_path / "delegate_benchmark.png").stat().st_size > 0
    else:
        assert "matplotlib" in record["plot_skipped"]

    # The model file the row names: exactly 384 all-zero blocks of 16 output channels in every
    # group, and both engines match a float64 numpy convolution of its own weights.
    from ai_edge_litert.interpreter import Interpreter

    import tflite_delegate

    image = np.random.default_rng(5).standard_normal((1, 7, 7, 512), dtype=np.float32)
    weights, reference = _reference_from_model_file(row["tflite"], image)
    zero_blocks = np.all(weights[:, 0, 0, :].reshape(64, 16, 512) == 0, axis=1)
    assert zero_blocks.sum(axis=1).tolist() == [384] * 64
    for interpreter in (
        tflite_delegate.Interpreter(model_path=row["tflite"]),
        Interpreter(model_path=row["tflite"]),
    ):
        interpreter.allocate_tensors()
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], image)
        interpreter.invoke()
        output = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
        np.testing.assert_allclose(output, reference, rtol=1e-4, atol=1e-4)

    # Second run: the cached model is used, not rewritten.
    modified = os.stat(row["tflite"]).st_mtime_ns
    again = run_benchmark(*QUICK_FLAGS, f"--out_dir={tmp_path}")
    assert again.returncode == 0, again.stderr[-3000:]
    assert os.stat(row["tflite"]).st_mtime_ns == modified
    assert json.loads((tmp_path / "delegate_benchmark.json").read_text())["layer_rows"]


# A stem-level run as short as it gets: one sample of one invoke per interpreter, 1 thread.
STEM_FLAGS = ("--levels=stem", "--threads=1", "--repeats=1", "--warmup=0", "--min_sample_ms=0")


def test_stem_level_times_dense_few_channel_convs_and_reports_the_claim(tmp_path):
    import tflite_delegate

    completed = run_benchmark(*STEM_FLAGS, "--max_layers=1", "--batches=1", f"--out_dir={tmp_path}")
    assert completed.returncode == 0, completed.stderr[-3000:]
    record = json.loads((tmp_path / "delegate_benchmark.json").read_text())
    assert record["layer_rows"] == [] and record["model_rows"] == []
    (row,) = record["stem_rows"]
    # The first STEM_SHAPES entry: the ResNet stem, 7x7 stride 2 over 3 channels to 64.
    assert (row["conv"], row["in_width"], row["out_width"], row["batch"]) == (
        "7x7 s2 3->64",
        224,
        112,
        1,
    )
    flops = 2 * 112 * 112 * 64 * 7 * 7 * 3
    assert row["dense_flops"] == row["kept_flops"] == flops
    assert row["filter_bytes"] == 4 * 64 * 7 * 7 * 3
    assert row["kept_gflops"] == pytest.approx(flops / (row["delegate_ms"] * 1e6))
    assert row["speedup"] == pytest.approx(row["xnnpack_ms"] / row["delegate_ms"])
    # Claimed by default only where the rule holds: with AVX-512 (the delegate's default ISA).
    claimed = tflite_delegate.supported_isas()[0] == "avx512"
    assert row["claims"]["claimed"] == int(claimed) and row["claims"]["conv_nodes"] == 1
    assert row["agree"]
    markdown = (tmp_path / "delegate_benchmark.md").read_text()
    assert "## Dense convs over few input channels (stem level)" in markdown
    assert "| 7x7 s2 3->64 | 224 | 1 | 1 |" in markdown
    if not claimed:
        assert "Not claimed, by reason:" in markdown and "below min_sparsity" in markdown
    # The model is dense: its (64, 7, 7, 3) filter has no zero.
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=row["tflite"])
    interpreter.allocate_tensors()
    (weights,) = [
        interpreter.get_tensor(detail["index"])
        for detail in interpreter.get_tensor_details()
        if tuple(detail["shape"]) == (64, 7, 7, 3)
    ]
    assert np.count_nonzero(weights) == weights.size


def test_stem_level_takes_shapes_from_the_command_line(tmp_path):
    completed = run_benchmark(
        *STEM_FLAGS, "--stem_shapes=32:3:24:3:1", "--batches=2", f"--out_dir={tmp_path}"
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    (row,) = json.loads((tmp_path / "delegate_benchmark.json").read_text())["stem_rows"]
    assert (row["conv"], row["in_width"], row["out_width"], row["batch"]) == (
        "3x3 3->24",
        32,
        32,
        2,
    )
    assert row["dense_flops"] == 2 * 32 * 32 * 24 * 3 * 3 * 3
    # O = 24 < 64: left to XNNPACK by the few-input-channel rule, whatever the ISA.
    assert row["claims"]["claimed"] == 0
    assert any("below min_sparsity" in reason for reason in row["claims"]["not_claimed"])
    assert row["agree"]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--shapes=28x28:256:256"], "is not WIDTH:CIN:COUT"),
        (["--shapes=28:256:250"], "Cout not divisible by --block_n 16"),
        (["--sparsity=0.7,1"], "--sparsity values must be in (0, 1)"),
        (["--levels=operator,speed"], "--levels: unknown ['speed']"),
    ],
)
def test_peer_benchmark_rejects_bad_flags(flags, message):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    completed = subprocess.run(
        [sys.executable, "-m", "scripts.benchmark_peers", *flags],
        cwd=REPOSITORY,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode != 0
    assert message in completed.stderr + completed.stdout
