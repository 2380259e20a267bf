"""SUBP training under tf.distribute.MirroredStrategy with two logical CPU devices.

Logical devices can only be configured before TensorFlow initialises its devices, so the
training runs in a subprocess (`mirrored_training_job.py`) and this test checks its output.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

REPOSITORY = Path(__file__).resolve().parents[2]


def test_masks_are_identical_on_both_replicas(tmp_path):
    output = tmp_path / "mirrored.npz"
    environment = {**os.environ, "PYTHONPATH": str(REPOSITORY), "KERAS_BACKEND": "tensorflow"}
    completed = subprocess.run(
        [sys.executable, "-m", "tests.keras_subp.mirrored_training_job", str(output)],
        cwd=REPOSITORY,
        env=environment,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    results = np.load(output)
    assert int(results["num_replicas"]) == 2
    for name in ("subp_conv1", "subp_conv2"):
        devices = list(results[f"{name}/devices"])
        assert (
            len(set(devices)) == 2 and devices[0].endswith("CPU:0") and devices[1].endswith("CPU:1")
        )
        masks = results[f"{name}/mask"]
        np.testing.assert_array_equal(masks[0], masks[1])
        np.testing.assert_array_equal(results[f"{name}/kernel"][0], results[f"{name}/kernel"][1])
        assert int(results[f"{name}/schedule_epoch"]) == 2
        # Linear(0, 2) is over at epoch 2: Cin = 8, p = 0.5 -> 4 pruned blocks in each of 2 groups.
        block_mask = masks[0][0, 0].reshape(8, 2, 4)[:, :, 0].T
        assert np.all((block_mask == 0).sum(axis=1) == 4)
