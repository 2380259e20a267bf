"""`scripts/compress.py`: flag validation (one line naming the flag, nothing written) and an
end-to-end run on the committed Fashion-MNIST sample.

The end-to-end run trains a small BN CNN here, compresses it through the command line, and checks
the printed accuracies against an independent evaluation of the written files (Keras and LiteRT).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.dfcompress.script_runner import run_script
from tflite_delegate.litert_compat import ops_details

REPOSITORY = Path(__file__).resolve().parents[2]
SAMPLE_DIR = REPOSITORY / "tests" / "fixtures" / "fashion-mnist-sample"


def run_cli(*arguments: str, cwd: Path) -> subprocess.CompletedProcess:
    return run_script("scripts.compress", *arguments, cwd=cwd)


def error_lines(stderr: str) -> list[str]:
    """stderr without TensorFlow/absl start-up log lines."""
    noise = re.compile(r"^(WARNING: All log messages|[IWE]\d{4} |To enable the following)")
    return [line for line in stderr.splitlines() if line.strip() and not noise.match(line)]


# ---------------------------------------------------------------------------------------------
# Flag validation: every bad value names its flag. All cases are parsed in one separate process
# (absl flags are process-global, and other scripts define flags of the same names).

PARSE_CASES = r"""
import json, sys
from absl import flags
import scripts.compress  # defines the flags and their validators

results = []
for arguments in json.loads(sys.argv[1]):
    flags.FLAGS.unparse_flags()
    try:
        flags.FLAGS(["compress.py", *arguments])
        results.append(None)
    except flags.Error as error:
        results.append(str(error))
print(json.dumps(results))
"""

BAD_FLAGS = [
    (["--prune_ratio=1.5"], "--prune_ratio"),
    (["--prune_ratio=-0.1"], "--prune_ratio"),
    (["--method=magic"], "--method"),
    (["--weight_bits=17"], "--weight_bits"),
    (["--quantizer=twn", "--weight_bits=6"], "--weight_bits=6"),
    (["--quantizer=symmetric", "--method=quant", "--bits=1"], "--bits=1"),
    (["--quantizer=nope"], "--quantizer"),
    (["--low_bits=7", "--high_bits=6"], "--low_bits"),
    (["--high_bits=0"], "--high_bits"),
    (["--bits=six"], "--bits"),
    (["--criterion=l3"], "--criterion"),
    (["--objective=relu"], "--objective"),
    (["--dataset=cifar10"], "--dataset"),
    (["--data_dir=/no/such/folder"], "--data_dir"),
    (["--model_path=/no/such/model.keras"], "--model_path"),
    (["--output=/no/such/folder/out.keras"], "--output"),
    (["--output=out.h5"], "--output"),
    (["--output=existing.keras"], "--output"),
    (["--output=model.keras", "--overwrite"], "--output must not be the input --model_path"),
    (["--tflite=model.onnx"], "--tflite"),
    (["--tflite_weights=int4"], "--tflite_weights"),
    (["--eval_images=-5"], "--eval_images"),
]
GOOD_FLAGS = [
    ["--method=dfmpc", "--low_bits=2", "--high_bits=6", "--tflite=m.tflite"],
    ["--method=quant", "--quantizer=twn", "--bits=2", "--weight_bits=0"],
    ["--output=existing.keras", "--overwrite"],
]


@pytest.fixture(scope="module")
def parse_results(tmp_path_factory):
    folder = tmp_path_factory.mktemp("flags")
    (folder / "model.keras").write_bytes(b"placeholder: validators only check existence")
    (folder / "existing.keras").write_bytes(b"do not touch")
    valid = ["--model_path=model.keras", "--output=out.keras"]
    cases = [valid + arguments for arguments, _ in BAD_FLAGS] + [valid + a for a in GOOD_FLAGS]
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    environment["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(REPOSITORY), environment.get("PYTHONPATH")])
    )
    result = subprocess.run(
        [sys.executable, "-c", PARSE_CASES, json.dumps(cases)],
        cwd=folder,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(result.stdout.strip().splitlines()[-1])
    assert (folder / "existing.keras").read_bytes() == b"do not touch"
    assert sorted(p.name for p in folder.iterdir()) == ["existing.keras", "model.keras"]
    return results[: len(BAD_FLAGS)], results[len(BAD_FLAGS) :]


@pytest.mark.parametrize("case", range(len(BAD_FLAGS)), ids=[a[0] for a, _ in BAD_FLAGS])
def test_bad_flag_is_named(parse_results, case):
    message = parse_results[0][case]
    assert message is not None, f"{BAD_FLAGS[case][0]} was accepted"
    assert BAD_FLAGS[case][1] in message
    assert "\n" not in message.strip()


def test_valid_flags_parse(parse_results):
    assert parse_results[1] == [None] * len(GOOD_FLAGS)


# ---------------------------------------------------------------------------------------------
# As a program


@pytest.mark.slow
def test_bad_flags_exit_with_one_line_and_write_nothing(tmp_path):
    (tmp_path / "model.keras").write_bytes(b"not a model")
    before = sorted(p.name for p in tmp_path.iterdir())
    result = run_cli(
        "--model_path=model.keras", "--output=out.keras", "--prune_ratio=2", cwd=tmp_path
    )
    assert result.returncode != 0
    lines = error_lines(result.stderr)
    assert "Traceback" not in result.stderr
    assert (
        lines[0]
        == "FATAL Flags parsing error: flag --prune_ratio=2.0: must be in [0.0, 1.0), got 2.0"
    )
    assert lines[1:] == ["Pass --helpshort or --helpfull to see help on flags."]
    # Valid flags, but the model file is garbage: one line naming --model_path, status 1.
    result = run_cli("--model_path=model.keras", "--output=out.keras", cwd=tmp_path)
    assert result.returncode == 1
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and lines[0].startswith("compress.py: error: --model_path: cannot load")
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.fixture(scope="module")
def trained_model(tmp_path_factory):
    """A small BN CNN trained for two epochs on the committed sample, saved as .keras."""
    import keras

    from cnn_zoo.datasets import load_idx_directory, to_model_inputs
    from cnn_zoo.models import vgg_small

    data = load_idx_directory(SAMPLE_DIR)
    keras.utils.set_random_seed(0)
    model = vgg_small(widths=(32, 64), seed=0)
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(to_model_inputs(data.x_train), data.y_train, epochs=2, batch_size=128, verbose=0)
    path = tmp_path_factory.mktemp("cli") / "vgg.keras"
    model.save(path)
    return path, to_model_inputs(data.x_test), data.y_test


@pytest.mark.slow
def test_compress_end_to_end_on_the_sample(trained_model, tmp_path):
    import keras
    from ai_edge_litert.interpreter import Interpreter

    model_path, images, labels = trained_model
    arguments = [
        f"--model_path={model_path}",
        "--method=udfc",
        "--prune_ratio=0.3",
        "--weight_bits=6",
        f"--data_dir={SAMPLE_DIR}",
        "--output=vgg_udfc.keras",
        "--tflite=vgg_udfc.tflite",
        "--tflite_weights=int8",
    ]
    result = run_cli(*arguments, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert str(SAMPLE_DIR) in out  # the data source is said
    before = float(re.search(r"before: accuracy ([0-9.]+) on 1000 test images", out)[1])
    after = float(re.search(r"after:  accuracy ([0-9.]+)", out)[1])
    assert "udfc(prune_ratio=0.3, weight_bits=6" in out and "pruned" in out
    assert "objective='activation'" in out

    original = keras.models.load_model(model_path, compile=False)
    compressed = keras.models.load_model(tmp_path / "vgg_udfc.keras", compile=False)
    assert compressed.count_params() < original.count_params()
    predicted = compressed.predict(images, verbose=0).argmax(1)
    assert after == pytest.approx(np.mean(predicted == labels), abs=1e-4)
    assert before == pytest.approx(
        np.mean(original.predict(images, verbose=0).argmax(1) == labels), abs=1e-4
    )

    interpreter = Interpreter(model_path=str(tmp_path / "vgg_udfc.tflite"))
    runner = interpreter.get_signature_runner()
    (output,) = runner.get_output_details()
    logits = np.concatenate([runner(image=image[None])[output] for image in images[:64]])
    np.testing.assert_array_equal(logits.argmax(1), predicted[:64])
    ops = {op["op_name"] for op in ops_details(interpreter)}
    assert "DEQUANTIZE" in ops  # int8 weights

    # Again without --overwrite: refused at flag parsing, the first outputs untouched.
    written = (tmp_path / "vgg_udfc.keras").read_bytes()
    result = run_cli(*arguments, cwd=tmp_path)
    assert result.returncode != 0
    assert "--output" in error_lines(result.stderr)[0] and "--overwrite" in result.stderr
    assert (tmp_path / "vgg_udfc.keras").read_bytes() == written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vgg_udfc.keras", "vgg_udfc.tflite"]
