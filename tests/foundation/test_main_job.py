"""The main job end to end on the committed sample, in a subprocess as a user would run it."""

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import FASHION_MNIST_SAMPLE_DIR

REPOSITORY = Path(__file__).resolve().parents[2]


def run_main_job(tmp_path, *flags, env_overrides=None):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env_overrides or {})}
    command = [sys.executable, "-m", "scripts.main_job", f"--output_dir={tmp_path}", *flags]
    completed = subprocess.run(
        command, cwd=REPOSITORY, env=env, capture_output=True, text=True, timeout=600
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed.stdout, json.loads((tmp_path / "report.json").read_text())


def test_main_job_reports_accuracy_and_data_source(tmp_path):
    stdout, report = run_main_job(
        tmp_path, f"--data_dir={FASHION_MNIST_SAMPLE_DIR}", "--epochs=2", "--seed=3"
    )
    assert report["data"]["train_images"] == 5000 and report["data"]["test_images"] == 1000
    assert str(FASHION_MNIST_SAMPLE_DIR) in report["data"]["source"]
    # 10 classes: chance is 0.1; two epochs on 5,000 real images reach far more.
    assert report["dense_baseline"]["test_accuracy"] > 0.6
    assert "test accuracy" in stdout and "--seed=3" in report["command"]
    assert (tmp_path / "dense_baseline.keras").is_file()


def test_main_job_falls_back_to_the_sample(isolated_locations):
    from scripts.main_job import load_data

    dataset, is_sample = load_data(data_dir=None, allow_download=False)
    assert is_sample and dataset.name == "fashion-mnist (committed sample)"
    assert dataset.x_train.shape == (5000, 28, 28)
