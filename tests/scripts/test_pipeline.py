"""scripts/pipeline.py: a tiny end-to-end run on the committed sample, flag validation, the report
folder's protection, and the fall-back to the committed sample.

The runs are subprocesses, as a user runs the script; the module defines its flags only when run
as a program, so the in-process tests import it without touching absl's global flags.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import FASHION_MNIST_SAMPLE_DIR

REPOSITORY = Path(__file__).resolve().parents[2]
ENVIRONMENT = {
    **{key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"},
    "PYTHONPATH": str(REPOSITORY),
    "KERAS_BACKEND": "tensorflow",
}
# A log line of TensorFlow/absl C++ logging ("I0000 00:00:... file.cc:12] ...") or of Python's
# absl/TF loggers ("WARNING:tensorflow:...", "I1202 12:00:00.000 ... py:12] ...").
LOG_LINE = re.compile(r"^([IWEF]\d{4} |WARNING:|INFO:|ERROR:)|cuInit|cuda", re.MULTILINE)


def run_pipeline(*flags: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "scripts.pipeline", *flags],
        cwd=REPOSITORY,
        env=ENVIRONMENT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One --tiny run on the committed sample (1 epoch of 8 steps, 32-channel net, no ResNet-50)."""
    base = tmp_path_factory.mktemp("pipeline")
    out_dir = base / "report"
    completed = run_pipeline(
        "--tiny",
        f"--data_dir={FASHION_MNIST_SAMPLE_DIR}",
        f"--out_dir={out_dir}",
        f"--cache_dir={base / 'cache'}",
        "--seed=3",
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed, out_dir, json.loads((out_dir / "report.json").read_text())


def test_tiny_run_writes_the_whole_report(tiny_run):
    completed, out_dir, report = tiny_run
    for name in ("summary.md", "report.json", "models/dense.tflite", "models/subp.tflite"):
        assert (out_dir / name).is_file(), name
    for name in ("models/dense.keras", "models/subp_stripped.keras", "logs/native_stderr.log"):
        assert (out_dir / name).is_file(), name
    assert set(report) >= {"command", "data", "training", "conversion", "speed", "compression"}
    assert "--seed=3" in report["command"] and "--tiny=True" in report["command"]
    assert report["data"]["train_images"] == 256 and report["data"]["test_images"] == 1000
    assert not report["data"]["is_full"]
    assert "Not the full" in (out_dir / "summary.md").read_text()
    # The default trains every model at once, each in a child process; each reported its epochs.
    training = report["training"]
    assert training["side_by_side"] is True
    for role in ("dense", "subp"):
        assert len(training[role]["curves"]["test_accuracy"]) == 1
    assert "dense epoch 1/1: train acc" in completed.stdout
    assert "SUBP epoch 1/1: train acc" in completed.stdout
    assert "SUBP p=0.75 epoch 1/1: train acc" in completed.stdout
    # No partial folder is left next to the report.
    assert [path.name for path in out_dir.parent.iterdir() if path.name.startswith(".")] == []


def test_tiny_run_has_exact_uniform_block_sparsity(tiny_run):
    _, _, report = tiny_run
    subp = report["training"]["subp"]
    assert subp["block_n"] == 16 and subp["sparsity"] == 0.5
    # Every conv of vgg_small(32, 32, 32) but the stem, whose single input channel makes one
    # block per group: keras_subp leaves it dense.
    assert [layer["name"] for layer in subp["layers"]] == subp["sparse_layers"]
    assert len(subp["layers"]) == 2
    for layer in subp["layers"]:
        cin = layer["kernel_shape"][2]
        kept = cin - int(0.5 * cin)  # SUBP keeps Cin - int(p * Cin) blocks in every group
        assert layer["kept_blocks_min"] == layer["kept_blocks_max"] == kept, layer
        assert layer["balance_ratio"] == 1.0
        assert layer["block_sparsity"] == pytest.approx(int(0.5 * cin) / cin)
    # The schedule made the mask final before the end of training and kept it there.
    history = subp["mask_history"]
    assert history[-1][1] == pytest.approx(subp["layers"][0]["block_sparsity"], abs=0.05)
    assert subp["schedule"]["recovery_epochs"] > 0


def test_tiny_run_states_the_gap_of_the_further_sparsity(tiny_run):
    """--gap_sparsities (default 0.75): a third model, same recipe, its accuracy and gap to
    dense, checked here against the saved model itself."""
    _, out_dir, report = tiny_run
    training = report["training"]
    (row,) = training["gap_models"]
    assert row["role"] == "subp_p0.75" and row["sparsity"] == 0.75
    model_path = out_dir / "models" / "subp_p0.75_stripped.keras"
    assert model_path.is_file()
    assert row["accuracy_gap_points"] == pytest.approx(
        100 * (training["dense"]["test_accuracy"] - row["test_accuracy"]), abs=0.011
    )
    # Fewer kept blocks than the p=0.5 model: 75 % of each conv's blocks are zero.
    assert row["macs_per_image_actual"] < training["subp"]["macs_per_image_actual"]
    summary = (out_dir / "summary.md").read_text()
    assert f"| SUBP 1x16 p=0.75 | {row['test_accuracy']:.4f} |" in summary
    assert f"SUBP at p=0.75 - dense: {-row['accuracy_gap_points']:+.2f} points" in summary


def test_tiny_run_tflite_matches_keras_with_and_without_delegate(tiny_run):
    _, _, report = tiny_run
    for model, variants in (("dense", ("xnnpack",)), ("subp", ("xnnpack", "delegate"))):
        entry = report["conversion"][model]
        for variant in variants:
            assert entry[variant]["accuracy_equals_keras"], (model, variant, entry)
            assert entry[variant]["test_accuracy"] == entry["keras_test_accuracy"]
            assert entry[variant]["max_abs_logit_difference"] < 1e-3
    claims = report["conversion"]["subp"]["claims"]
    assert claims["conv2d_nodes"] == 3 and claims["claimed"] >= 1


def test_tiny_run_times_every_variant(tiny_run):
    _, _, report = tiny_run
    trained = report["speed"]["trained"]
    assert "resnet50" not in report["speed"]  # --tiny turns it off
    # --threads=2 (the default): batch 1 and 64 at 2 threads, and batch 1 at one thread too.
    assert trained["batch1"]["threads"] == trained["batch64"]["threads"] == 2
    assert trained["batch1_threads1"]["threads"] == 1
    for key, batch in (("batch1", 1), ("batch64", 64), ("batch1_threads1", 1)):
        entry = trained[key]
        medians = entry["median_ms"]
        assert set(medians) == {"dense_xnnpack", "subp_xnnpack", "subp_delegate"}
        assert all(value > 0 for value in medians.values())
        assert entry["delegate_speedup"] == pytest.approx(
            medians["subp_xnnpack"] / medians["subp_delegate"], rel=1e-2
        )
        assert entry["images_per_second"]["subp_delegate"] == pytest.approx(
            batch / medians["subp_delegate"] * 1e3, rel=1e-2
        )


def test_tiny_run_compression_rows(tiny_run):
    _, _, report = tiny_run
    compression = report["compression"]
    if compression["status"] == "skipped":
        pytest.skip(compression["reason"])
    rows = {row["name"]: row for row in compression["rows"]}
    assert len(rows) == 5 and all(row["status"] == "ok" for row in rows.values()), rows
    dense_float, subp_float = rows["dense float32"], rows["SUBP 1x16 float32"]
    udfc = next(row for name, row in rows.items() if name.startswith("UDFC"))
    quantized = next(row for name, row in rows.items() if "symmetric" in name)
    # Sizes at the stated bits: UDFC keeps 70% of the channels at 6 bits; 8-bit kernels are a
    # quarter of float32 ones (biases and BatchNorm stay float32, so a little more).
    assert udfc["size_mb_at_bits"] < 0.3 * dense_float["size_mb_at_bits"]
    assert 0.25 < quantized["size_mb_at_bits"] / subp_float["size_mb_at_bits"] < 0.35
    # The zero-preserving quantizer keeps every pruned block at exactly zero.
    assert quantized["block_sparsity"] == subp_float["block_sparsity"] > 0
    assert all(row["tflite_int8_bytes"] < row["tflite_float32_bytes"] for row in rows.values())


def test_tiny_run_is_quiet_and_prints_the_table(tiny_run):
    completed, out_dir, _ = tiny_run
    assert not LOG_LINE.search(completed.stdout), completed.stdout
    assert not LOG_LINE.search(completed.stderr), completed.stderr
    assert "| SUBP 1x16 p=0.5 |" in completed.stdout and "delegate speedup" in completed.stdout
    assert "| batch 1, 1 thr (ms) |" in completed.stdout
    assert str(out_dir) in completed.stdout


def test_tiny_run_plots(tiny_run):
    pytest.importorskip("matplotlib")
    _, out_dir, report = tiny_run
    expected = ["accuracy_curves.png", "sparsity_balance.png", "latency.png"]
    if report["compression"]["status"] == "ok":
        expected.append("accuracy_vs_size.png")
    assert report["plots"] == expected
    for name in expected:
        assert (out_dir / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


@pytest.mark.parametrize(
    ("flag", "name"),
    [
        ("--sparsity=1.5", "sparsity"),
        ("--sparsity=-0.1", "sparsity"),
        ("--widths=48,64", "widths"),
        ("--block_n=24", "block_n"),
        ("--epochs=0", "epochs"),
        ("--train_jobs=3", "train_jobs"),
        ("--gap_sparsities=0.75,1.2", "gap_sparsities"),
        ("--gap_sparsities=0.5", "gap_sparsities"),  # the same as --sparsity
        ("--optimizer=rmsprop", "optimizer"),
        ("--prune_end=0", "prune_end"),
        ("--dfmpc_low_bits=6", "dfmpc_low_bits"),
        ("--data_dir=/nonexistent/fashion", "data_dir"),
    ],
)
def test_bad_flag_gives_one_line_naming_it_and_writes_nothing(tmp_path, flag, name):
    out_dir = tmp_path / "report"
    completed = run_pipeline(flag, f"--out_dir={out_dir}", timeout=120)
    assert completed.returncode == 2
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1 and f"--{name}" in lines[0], completed.stderr
    assert completed.stdout == ""
    assert list(tmp_path.iterdir()) == []


def test_one_after_the_other_trains_in_process(tmp_path):
    """--train_jobs=1: no child processes; the same report, with side_by_side false."""
    out_dir = tmp_path / "report"
    completed = run_pipeline(
        "--tiny",
        "--train_jobs=1",
        "--compress=false",
        f"--data_dir={FASHION_MNIST_SAMPLE_DIR}",
        f"--out_dir={out_dir}",
        "--seed=3",
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads((out_dir / "report.json").read_text())
    assert report["training"]["side_by_side"] is False
    assert "one after the other" in completed.stdout
    for role in ("dense", "subp"):
        assert 0 <= report["training"][role]["test_accuracy"] <= 1
    assert report["training"]["subp"]["layers"], "the SUBP model's sparse layers are reported"
    (gap_model,) = report["training"]["gap_models"]
    assert gap_model["sparsity"] == 0.75 and 0 <= gap_model["test_accuracy"] <= 1


def test_resnet50_row_reads_its_cache_and_times_both_engines(tmp_path):
    """The model-level row's machinery (cache, interpreters at --threads, claims, output check,
    timing) on a small stand-in written under ResNet-50's cache name: two 3x3 convs on a
    224x224x3 input, the second with half of its 1x16 blocks zero. Building the real ResNet-50
    takes a minute, so only `make demo` runs that part."""
    import keras

    import tflite_delegate

    keras.utils.set_random_seed(0)
    inputs = keras.Input((224, 224, 3))
    x = keras.layers.Conv2D(32, 3, strides=4, padding="same", activation="relu")(inputs)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="sparse")(x)
    outputs = keras.layers.Dense(10)(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, outputs)
    layer = model.get_layer("sparse")
    kernel, bias = layer.get_weights()
    blocks = kernel.reshape(3, 3, 32, 2, 16)  # (kh, kw, cin, output group, 16 channels)
    blocks[:, :, ::2, :, :] = 0.0  # every other input channel: half the blocks of each group
    layer.set_weights([blocks.reshape(kernel.shape), bias])
    cache = tmp_path / "cache"
    cache.mkdir()
    stem = f"resnet50_1x16_p{66 / 128:.6f}_seed3"
    tflite_delegate.convert(model, cache / f"{stem}.tflite")
    facts = {"sparse_conv2d_layers": 1, "gmacs_dense": 0.01, "gmacs_sparse": 0.007}
    (cache / f"{stem}.json").write_text(json.dumps(facts))

    out_dir = tmp_path / "report"
    completed = run_pipeline(
        "--tiny",
        "--resnet50=true",
        "--compress=false",
        "--train_jobs=1",
        f"--data_dir={FASHION_MNIST_SAMPLE_DIR}",
        f"--out_dir={out_dir}",
        f"--cache_dir={cache}",
        "--seed=3",
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "ResNet-50 1x16: cached" in completed.stdout
    row = json.loads((out_dir / "report.json").read_text())["speed"]["resnet50"]
    assert row["gmacs_sparse"] == 0.007 and row["batch"] == 1
    assert set(row["median_ms"]) == {"xnnpack", "delegate"}
    assert all(value > 0 for value in row["median_ms"].values())
    assert row["delegate_speedup"] == pytest.approx(
        row["median_ms"]["xnnpack"] / row["median_ms"]["delegate"], rel=1e-2
    )
    assert row["claims"]["claimed"] == 1 and row["claims"]["conv2d_nodes"] == 2
    assert row["relative_output_difference"] < 1e-4
    assert "| ResNet-50 1x16 0.01G batch 1 (ms) |" in completed.stdout


def test_existing_report_folder_is_refused_and_kept(tmp_path):
    out_dir = tmp_path / "report"
    out_dir.mkdir()
    (out_dir / "summary.md").write_text("an earlier report\n")
    completed = run_pipeline("--tiny", f"--out_dir={out_dir}", timeout=120)
    assert completed.returncode == 2
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1 and "--out_dir" in lines[0] and "--overwrite" in lines[0]
    assert [path.name for path in tmp_path.iterdir()] == ["report"]
    assert (out_dir / "summary.md").read_text() == "an earlier report\n"


def test_finish_output_folder_replaces_only_with_overwrite(tmp_path):
    from scripts.pipeline import FlagError, finish_output_folder

    out_dir = tmp_path / "report"
    out_dir.mkdir()
    (out_dir / "old.txt").write_text("old")
    work = tmp_path / ".report.partial-1"
    work.mkdir()
    (work / "new.txt").write_text("new")
    with pytest.raises(FlagError, match="--out_dir"):
        finish_output_folder(work, out_dir, overwrite=False)
    assert (out_dir / "old.txt").read_text() == "old" and (work / "new.txt").is_file()
    finish_output_folder(work, out_dir, overwrite=True)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["report"]
    assert [path.name for path in out_dir.iterdir()] == ["new.txt"]


def test_falls_back_to_the_committed_sample_and_says_why(tmp_path, monkeypatch):
    from cnn_zoo import datasets
    from scripts.pipeline import load_data

    for name in ("DEBIAN_FASHION_MNIST_DIR", "KERAS_DATASETS_DIR", "TFDS_DATA_DIR", "CACHE_DIR"):
        monkeypatch.setattr(datasets, name, tmp_path / name.lower())
    monkeypatch.setattr(datasets, "REPOSITORY_ROOT", tmp_path / "repo")
    monkeypatch.delenv("FASHION_MNIST_DIR", raising=False)
    dataset, fell_back, why = load_data(data_dir=None, allow_download=False)
    assert fell_back and dataset.name == "fashion-mnist (committed sample)"
    assert dataset.x_train.shape == (5000, 28, 28) and dataset.x_test.shape == (1000, 28, 28)
    assert why and "\n" not in why
