"""The "Compress a trained model without data" example runs as written.

The block comes from README.md when it has that section, otherwise from docs/compression.md (where
the section lives until the README gains it). It is executed verbatim in a fresh Python process (a
temporary working directory, the committed Fashion-MNIST sample found through $FASHION_MNIST_DIR).
Its printed accuracies and sizes and the files it writes are checked against independent readings.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tflite_delegate.litert_compat import ops_details

REPOSITORY = Path(__file__).resolve().parent.parent
SAMPLE_DIR = REPOSITORY / "tests" / "fixtures" / "fashion-mnist-sample"
SECTION = "## Compress a trained model without data"


def compress_example() -> tuple[str, str]:
    """(python block, file it came from)."""
    for source in (REPOSITORY / "README.md", REPOSITORY / "docs" / "compression.md"):
        text = source.read_text()
        if SECTION in text:
            section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
            (block,) = re.findall(r"```python\n(.*?)```", section, re.S)
            return block, source.name
    raise AssertionError(f"no {SECTION!r} section in README.md or docs/compression.md")


def test_example_is_found():
    block, _ = compress_example()
    assert "dfcompress.udfc(" in block and "dfcompress.to_tflite(" in block


@pytest.mark.slow
def test_readme_compress_example_runs(tmp_path):
    block, source = compress_example()
    environment = dict(os.environ, FASHION_MNIST_DIR=str(SAMPLE_DIR), TF_CPP_MIN_LOG_LEVEL="2")
    environment["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(REPOSITORY), environment.get("PYTHONPATH")])
    )
    result = subprocess.run(
        [sys.executable, "-c", block],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, f"{source}: {result.stderr[-4000:]}"
    printed = dict(
        (name, (float(accuracy), float(size)))
        for name, accuracy, size in re.findall(
            r"^(.+): accuracy ([0-9.]+), ([0-9.]+) MiB$", result.stdout, re.M
        )
    )
    assert set(printed) == {
        "float32",
        "UDFC 30 % / 6-bit",
        "pruned 30 %, no compensation",
        "DF-MPC 2/6",
        "direct 2/6, no compensation",
    }
    assert printed["float32"][0] > 0.6  # ten classes: chance is 0.1
    assert "udfc(" in result.stdout and "channels" in result.stdout  # the report table
    # UDFC's model is pruned and at 6 bits: much smaller than float32 at the same accuracy scale.
    assert printed["UDFC 30 % / 6-bit"][1] < 0.25 * printed["float32"][1]

    # The written files: the .keras reloads and gives the printed accuracy; the .tflite has int8
    # filters and agrees with it.
    import keras
    from ai_edge_litert.interpreter import Interpreter

    from cnn_zoo.datasets import load_idx_directory, to_model_inputs

    data = load_idx_directory(SAMPLE_DIR)
    images = to_model_inputs(data.x_test)
    model = keras.models.load_model(tmp_path / "vgg_udfc.keras", compile=False)
    predictions = model.predict(images, verbose=0).argmax(1)
    assert np.mean(predictions == data.y_test) == pytest.approx(
        printed["UDFC 30 % / 6-bit"][0], abs=1e-4
    )
    interpreter = Interpreter(model_path=str(tmp_path / "vgg_udfc.tflite"))
    runner = interpreter.get_signature_runner()
    (output,) = runner.get_output_details()
    logits = np.concatenate([runner(image=image[None])[output] for image in images[:100]])
    np.testing.assert_array_equal(logits.argmax(1), predictions[:100])
    assert "DEQUANTIZE" in {op["op_name"] for op in ops_details(interpreter)}
