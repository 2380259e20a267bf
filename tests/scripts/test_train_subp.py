"""scripts/train_subp.py: recipe, flag validation, end-to-end run, kill and resume, mock ImageNet,
two real workers.

Runs that must behave as a user's command line run in subprocesses; flag checks and the mock
ImageNet run (tfds.testing.mock_data patches tensorflow-datasets in this process) run in-process
on a fresh absl `FlagValues`, so no flag is ever defined twice in the pytest process.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from absl import flags

from scripts.multiworker_launcher import run_workers
from tests.conftest import FASHION_MNIST_SAMPLE_DIR

REPOSITORY = Path(__file__).resolve().parents[2]
ENVIRONMENT = {
    **os.environ,
    "PYTHONPATH": str(REPOSITORY),
    "KERAS_BACKEND": "tensorflow",
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "CUDA_VISIBLE_DEVICES": "",
}
# A tiny SUBP run on the committed sample: 4 epochs of 8 steps, mask final after epoch 2.
TINY_RUN = [
    "--model=vgg_small",
    "--dataset=fashion_mnist",
    f"--data_dir={FASHION_MNIST_SAMPLE_DIR}",
    "--epochs=4",
    "--start_epoch=0",
    "--end_epoch=2",
    "--steps_per_epoch=8",
    "--eval_steps=4",
    "--batch_size=32",
    "--n=16",
    "--sparsity=0.5",
    "--criterion=l1",
    "--seed=3",
    "--deterministic",
]


def train_subp_module():
    from scripts import train_subp

    return train_subp


def command(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "scripts.train_subp", *arguments]


def run_command(*arguments: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        command(*arguments),
        cwd=REPOSITORY,
        env=ENVIRONMENT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_in_process(argv: list[str]):
    """Parse `argv` on fresh flags and call train_subp.run (SystemExit on a bad flag)."""
    module = train_subp_module()
    values = module.define_flags(flags.FlagValues())
    values(["train_subp", *argv])
    return module.run(values)


def directory_snapshot(directory: Path) -> dict[str, str]:
    """Relative path -> SHA-256 of every file under `directory`."""
    return {
        str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def load_checkpoint(path: Path):
    return train_subp_module().load_checkpoint(path)


def subp_state(model) -> dict[str, np.ndarray]:
    """Masks, kernels, schedule positions and RNG states of every SUBP layer of `model`."""
    import keras_subp

    state = {}
    for wrapper in keras_subp.subp_wrappers(model):
        state[f"{wrapper.name}/mask"] = np.asarray(wrapper.mask.numpy())
        state[f"{wrapper.name}/kernel"] = np.asarray(wrapper.layer.kernel.numpy())
        state[f"{wrapper.name}/schedule_epoch"] = np.asarray(wrapper.schedule_epoch.numpy())
        state[f"{wrapper.name}/rng_state"] = np.asarray(wrapper.rng_state.numpy())
    return state


# ---------------------------------------------------------------------------------------------
# The recipe


def test_coupled_decay_sgd_matches_the_reference_update():
    """Two steps against PyTorch's SGD(momentum, weight_decay) written out in numpy, with the
    rate changing between the steps; the 1-D variable gets no decay."""
    import keras

    module = train_subp_module()
    kernel = keras.Variable(np.array([[1.0, -2.0], [0.5, 3.0]], np.float32))
    bias = keras.Variable(np.array([0.25, -1.0], np.float32))
    schedule = module.EpochCosineDecay(0.1, epochs=2, steps_per_epoch=1)
    optimizer = module.CoupledDecaySGD(learning_rate=schedule, momentum=0.9, coupled_decay=0.01)
    gradients = [
        (np.array([[0.1, 0.2], [-0.3, 0.4]], np.float32), np.array([1.0, -0.5], np.float32)),
        (np.array([[-0.2, 0.0], [0.1, 0.1]], np.float32), np.array([0.5, 0.5], np.float32)),
    ]
    w, b = kernel.numpy().astype(np.float64), bias.numpy().astype(np.float64)
    velocity_w, velocity_b = np.zeros_like(w), np.zeros_like(b)
    for step, (grad_w, grad_b) in enumerate(gradients):
        optimizer.apply_gradients([(grad_w, kernel), (grad_b, bias)])
        lr = 0.5 * 0.1 * (1 + math.cos(math.pi * step / 2))  # 0.1, then 0.05
        velocity_w = 0.9 * velocity_w + (grad_w + 0.01 * w)
        velocity_b = 0.9 * velocity_b + grad_b
        w, b = w - lr * velocity_w, b - lr * velocity_b
    np.testing.assert_allclose(kernel.numpy(), w, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(bias.numpy(), b, rtol=1e-6, atol=1e-7)


def test_epoch_cosine_decay_is_constant_within_an_epoch():
    module = train_subp_module()
    schedule = module.EpochCosineDecay(0.2, epochs=4, steps_per_epoch=3)
    rates = [float(schedule(step)) for step in range(12)]
    expected = [0.1 * (1 + math.cos(math.pi * (step // 3) / 4)) for step in range(12)]
    np.testing.assert_allclose(rates, expected, rtol=1e-6)
    config = schedule.get_config()
    assert type(schedule).from_config(config).get_config() == config


# ---------------------------------------------------------------------------------------------
# Flag validation: one line naming the flag, exit status 2, nothing written


@pytest.mark.parametrize(
    ("arguments", "flag"),
    [
        (["--model=alexnet"], "--model"),
        (["--n=7"], "--n"),  # vgg_small's prunable layers have 64 and 128 output channels
        (["--sparsity=1.0"], "--sparsity"),
        (["--sparsity=-0.1"], "--sparsity"),
        (["--criterion=l3"], "--criterion"),
        (["--schedule=step"], "--schedule"),
        (["--method=magnitude"], "--method"),
        (["--strategy=tpu"], "--strategy"),
        (["--epochs=4", "--end_epoch=4"], "--end_epoch"),
        (["--resume"], "--resume"),
        (["--dataset=imagenet2012", "--data_dir="], "--data_dir"),
    ],
)
def test_bad_flag_is_one_line_naming_it_and_writes_nothing(tmp_path, capsys, arguments, flag):
    out_dir = tmp_path / "run"
    base = [f"--data_dir={FASHION_MNIST_SAMPLE_DIR}", f"--out_dir={out_dir}"]
    with pytest.raises(SystemExit) as exit_info:
        run_in_process([*base, *arguments])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1, error
    assert error.startswith("train_subp: error: ") and flag in error, error
    assert not out_dir.exists()


def test_unparsable_flag_value_is_one_line_from_the_command_line(tmp_path):
    completed = run_command("--sparsity=abc", f"--out_dir={tmp_path / 'run'}", timeout=120)
    assert completed.returncode == 2
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1 and "--sparsity" in lines[0], completed.stderr
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------------------------------------
# A tiny run end to end, then refusal to overwrite it


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """The tiny SUBP run, uninterrupted, with TensorBoard logs; returns (out_dir, seconds)."""
    out_dir = tmp_path_factory.mktemp("train_subp") / "finished"
    started = time.perf_counter()
    completed = run_command(*TINY_RUN, f"--out_dir={out_dir}", "--tensorboard")
    assert completed.returncode == 0, completed.stderr[-4000:]
    return out_dir, time.perf_counter() - started, completed.stdout


def test_tiny_run_writes_checkpoints_report_and_a_stripped_model(finished_run):
    import keras

    out_dir, _, stdout = finished_run
    state = json.loads((out_dir / "state.json").read_text())
    assert state["finished"] and state["epochs_done"] == 4
    assert [row["epoch"] for row in state["history"]] == [1, 2, 3, 4]
    assert sorted(path.name for path in (out_dir / "checkpoints").iterdir()) == [
        "epoch_0003.keras",
        "epoch_0004.keras",
    ]
    assert "subp_stage2_block1_conv" in stdout and "balance" in stdout  # the sparsity report
    log = (out_dir / "train.log").read_text()
    assert "epoch 4 (train) done" in log and "sparsity report" in log
    assert any((out_dir / "tensorboard").rglob("events.out.tfevents*"))

    metrics = json.loads((out_dir / "final" / "metrics.json").read_text())
    assert metrics["final_epoch"] == 4 and 0.0 <= metrics["final_val_accuracy"] <= 1.0
    assert metrics["stripped_max_abs_output_difference"] < 1e-5
    assert metrics["config"]["sparsity"] == 0.5 and metrics["config"]["criterion"] == "l1"
    assert {layer["name"] for layer in metrics["layers"]} == {
        "subp_stage2_block1_conv",
        "subp_stage3_block1_conv",
    }
    for layer in metrics["layers"]:
        assert layer["block_sparsity"] == 0.5 and layer["balance_ratio"] == 1.0

    # The stripped model holds plain Conv2D kernels with whole 1x16 blocks of exact zeros:
    # every group of 16 output channels has int(0.5 * Cin) zero blocks (checked in numpy).
    stripped = keras.saving.load_model(out_dir / "final" / "model.keras")
    assert "SUBPWrapper" not in {type(layer).__name__ for layer in stripped.layers}
    for name in ("stage2_block1_conv", "stage3_block1_conv"):
        kernel = stripped.get_layer(name).get_weights()[0]  # (3, 3, Cin, Cout)
        cin, cout = kernel.shape[2], kernel.shape[3]
        blocks = np.abs(kernel).reshape(9, cin, cout // 16, 16).sum(axis=(0, 3))  # (Cin, G)
        assert np.all((blocks == 0).sum(axis=0) == cin // 2)


def test_finished_run_is_refused_without_and_with_resume(finished_run, capsys):
    out_dir = finished_run[0]
    before = directory_snapshot(out_dir)
    for extra in ([], ["--resume"]):
        with pytest.raises(SystemExit) as exit_info:
            run_in_process([*TINY_RUN, f"--out_dir={out_dir}", *extra])
        assert exit_info.value.code == 2
        error = capsys.readouterr().err.strip()
        assert len(error.splitlines()) == 1 and "finished" in error, error
        assert ("--out_dir" if not extra else "--resume") in error
    assert directory_snapshot(out_dir) == before


# ---------------------------------------------------------------------------------------------
# Kill mid-run, resume, and end exactly where the uninterrupted run ended


def test_killed_run_resumes_with_the_same_masks_and_schedule(finished_run, tmp_path, capsys):
    out_dir = tmp_path / "killed"
    state_path = out_dir / "state.json"
    process = subprocess.Popen(
        command(*TINY_RUN, f"--out_dir={out_dir}"),
        cwd=REPOSITORY,
        env=ENVIRONMENT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and process.poll() is None:
            if state_path.exists() and json.loads(state_path.read_text())["epochs_done"] >= 1:
                break
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    interrupted = json.loads(state_path.read_text())
    assert 1 <= interrupted["epochs_done"] < 4 and not interrupted["finished"]

    # Resuming with a changed run setting is refused before anything is touched.
    before = directory_snapshot(out_dir)
    changed = [argument for argument in TINY_RUN if not argument.startswith("--sparsity")]
    with pytest.raises(SystemExit):
        run_in_process([*changed, "--sparsity=0.75", f"--out_dir={out_dir}", "--resume"])
    assert "--sparsity" in capsys.readouterr().err
    assert directory_snapshot(out_dir) == before

    completed = run_command(f"--out_dir={out_dir}", "--resume")
    assert completed.returncode == 0, completed.stderr[-4000:]
    log = (out_dir / "train.log").read_text()
    assert f"resumed from {interrupted['checkpoint']}" in log

    reference_dir = finished_run[0]
    resumed = json.loads(state_path.read_text())
    reference = json.loads((reference_dir / "state.json").read_text())
    assert [row["epoch"] for row in resumed["history"]] == [1, 2, 3, 4]
    for mine, theirs in zip(resumed["history"], reference["history"], strict=True):
        assert mine["val_accuracy"] == pytest.approx(theirs["val_accuracy"], abs=1e-6)
    # Final masks, schedule positions, RNG states and weights match the uninterrupted run.
    final = subp_state(load_checkpoint(out_dir / "checkpoints" / "epoch_0004.keras"))
    expected = subp_state(load_checkpoint(reference_dir / "checkpoints" / "epoch_0004.keras"))
    assert final.keys() == expected.keys() and final
    for key, value in expected.items():
        if key.endswith("/kernel"):
            np.testing.assert_allclose(final[key], value, rtol=1e-5, atol=1e-6, err_msg=key)
        else:
            np.testing.assert_array_equal(final[key], value, err_msg=key)
    # The schedule reached its end: every group keeps half of its blocks.
    for key, mask in final.items():
        if key.endswith("/mask"):
            cin = mask.shape[2]
            block_mask = mask[0, 0].reshape(cin, -1, 16)[:, :, 0]  # (Cin, G)
            assert np.all(block_mask.sum(axis=0) == cin - cin // 2)


# ---------------------------------------------------------------------------------------------
# The ImageNet path on mock data, and the 1xN baseline


def test_imagenet_path_on_mock_data(tmp_path, capsys):
    tfds = pytest.importorskip("tensorflow_datasets")
    import keras

    data_dir = tmp_path / "tfds"
    data_dir.mkdir()
    out_dir = tmp_path / "imagenet"
    with tfds.testing.mock_data(num_examples=12):
        metrics = run_in_process(
            [
                "--model=mobilenet_v1",
                "--dataset=imagenet2012",
                f"--data_dir={data_dir}",
                "--image_size=64",
                "--epochs=1",
                "--start_epoch=0",
                "--end_epoch=0",  # full target sparsity from the first epoch
                "--steps_per_epoch=2",
                "--eval_steps=1",
                "--batch_size=4",
                "--n=32",
                "--sparsity=0.5",
                "--criterion=l1",  # BPAR's pairwise angles over 1024 input channels cost more
                f"--out_dir={out_dir}",
            ]
        )
    assert "final_val_top5" in metrics and 0.0 <= metrics["final_val_top5"] <= 1.0
    assert metrics["final_epoch"] == 1 and metrics["steps_per_epoch"] == 2
    assert metrics["layers"] and all(
        layer["block_sparsity"] == pytest.approx(0.5, abs=1 / 64) for layer in metrics["layers"]
    )
    stripped = keras.saving.load_model(out_dir / "final" / "model.keras")
    assert stripped.input_shape == (None, 64, 64, 3) and stripped.output_shape == (None, 1000)
    assert "top5" in capsys.readouterr().out


def test_1xn_baseline_pretrains_prunes_and_finetunes(tmp_path):
    out_dir = tmp_path / "one_by_n"
    excluded = ("--start_epoch", "--end_epoch", "--deterministic")  # no global determinism here
    arguments = [a for a in TINY_RUN if not a.startswith(excluded)]
    metrics = run_in_process([*arguments, "--method=1xn", "--epochs=2", f"--out_dir={out_dir}"])
    state = json.loads((out_dir / "state.json").read_text())
    assert [row["phase"] for row in state["history"]] == ["pretrain", "finetune"]
    # Lin et al.'s layer-global selection: half of each layer's blocks, groups unequal.
    for layer in metrics["layers"]:
        assert layer["block_sparsity"] == 0.5 and layer["balance_ratio"] >= 1.0


# ---------------------------------------------------------------------------------------------
# Two real workers (MultiWorkerMirroredStrategy over loopback)


def test_two_workers_end_with_identical_masks(tmp_path):
    out_dir = tmp_path / "multiworker"
    arguments = [a for a in TINY_RUN if not a.startswith(("--epochs", "--end_epoch", "--steps"))]
    results = run_workers(
        command(
            *arguments,
            "--epochs=2",
            "--end_epoch=1",
            "--steps_per_epoch=4",
            "--strategy=multiworker",
            f"--out_dir={out_dir}",
        ),
        num_workers=2,
        env=ENVIRONMENT,
        cwd=str(REPOSITORY),
        timeout=300,
    )
    for result in results:
        assert result.returncode == 0, result.stderr[-4000:]
    chief = load_checkpoint(out_dir / "checkpoints" / "epoch_0002.keras")
    worker = load_checkpoint(out_dir / "workers" / "worker_1" / "checkpoints" / "epoch_0002.keras")
    chief_state, worker_state = subp_state(chief), subp_state(worker)
    assert chief_state.keys() == worker_state.keys() and chief_state
    for key, value in chief_state.items():
        np.testing.assert_array_equal(worker_state[key], value, err_msg=key)
    for key, mask in chief_state.items():
        if key.endswith("/mask"):
            assert mask.mean() == 0.5  # target reached at epoch 1 and kept
        if key.endswith("/schedule_epoch"):
            assert int(mask) == 1
    chief_history = json.loads((out_dir / "state.json").read_text())["history"]
    worker_history = json.loads((out_dir / "workers" / "worker_1" / "state.json").read_text())[
        "history"
    ]
    assert chief_history == worker_history
