"""The README's "Train a 1xN sparse model" example runs as written.

The block is executed verbatim in a fresh Python process (a temporary working directory, the
committed Fashion-MNIST sample found through $FASHION_MNIST_DIR) so that the README cannot drift
from the API. Its printed TFLite accuracy and the files it writes are checked too.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parent.parent
SAMPLE_DIR = REPOSITORY / "tests" / "fixtures" / "fashion-mnist-sample"


def readme_example() -> str:
    readme = (REPOSITORY / "README.md").read_text()
    section = readme.split("## Train a 1xN sparse model", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```python\n(.*?)```", section, re.S)
    return block


@pytest.mark.slow
def test_readme_training_example_runs(tmp_path):
    environment = dict(os.environ, FASHION_MNIST_DIR=str(SAMPLE_DIR))
    environment["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(REPOSITORY), environment.get("PYTHONPATH")])
    )
    result = subprocess.run(
        [sys.executable, "-c", readme_example()],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    accuracy = float(re.search(r"TFLite accuracy on 200 test images: ([0-9.]+)", result.stdout)[1])
    assert accuracy > 0.6  # ten classes: chance is 0.1
    assert "claimed=True" in result.stdout
    for name in ("vgg_subp.keras", "vgg_subp.tflite", "logs/subp"):
        assert (tmp_path / name).exists(), name
