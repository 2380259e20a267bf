"""Pruning restricted to named layers (`layers=`), `reconstruction_errors`, and the
`scripts/diagnose_pruning.py` program.

The reconstruction errors are checked against activations computed here with a separate probe
model and numpy, and against cases with a known answer (a channel that is an exact multiple of a
kept one; a layer whose filters are shorter than the number of kept channels).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import keras
import numpy as np
import pytest

import dfcompress
from tests.dfcompress.dfcompress_test_models import conv_net, multiple_channel_model
from tests.dfcompress.script_runner import run_script

REPOSITORY = Path(__file__).resolve().parents[2]
SAMPLE_DIR = REPOSITORY / "tests" / "fixtures" / "fashion-mnist-sample"


@pytest.mark.parametrize(
    "method",
    [
        dfcompress.prune_channels,
        dfcompress.neuron_merging,
        lambda model, ratio, criterion, layers: dfcompress.udfc(
            model, ratio, None, criterion, layers=layers
        ),
    ],
    ids=["prune", "nm", "udfc"],
)
def test_layers_restricts_pruning_to_the_named_layers(method):
    model = conv_net(0, widths=(12, 16, 16))
    whole, _ = method(model, 0.3, "l2", layers=None)
    only, report = method(model, 0.3, "l2", layers=["conv1"])
    assert [only.get_layer(f"conv{i}").filters for i in range(3)] == [12, 11, 16]
    assert [whole.get_layer(f"conv{i}").filters for i in range(3)] == [8, 11, 11]
    # conv0 and conv2 are untouched; conv2's input rows lose conv1's pruned channels.
    np.testing.assert_array_equal(
        only.get_layer("conv0").kernel.numpy(), model.get_layer("conv0").kernel.numpy()
    )
    assert only.get_layer("conv2").kernel.shape[2] == 11
    assert report.settings["layers"] == ["conv1"]


def test_layers_names_what_is_wrong():
    model = conv_net(0, widths=(12, 16, 16))
    with pytest.raises(ValueError, match=r"\['nope'\] are not Conv2D/Dense layers"):
        dfcompress.prune_channels(model, 0.3, layers=["nope"])
    with pytest.raises(ValueError, match="cannot prune classifier"):
        dfcompress.udfc(model, 0.3, layers=["classifier"])
    with pytest.raises(ValueError, match="sequence of layer names"):
        dfcompress.neuron_merging(model, 0.3, layers="conv1")
    with pytest.raises(ValueError, match="layers is empty"):
        dfcompress.prune_channels(model, 0.3, layers=[])


def _activations(model: keras.Model, names: list[str], x: np.ndarray) -> list[np.ndarray]:
    probe = keras.Model(model.inputs, [model.get_layer(name).output for name in names])
    outputs = probe.predict(x, verbose=0)
    outputs = outputs if isinstance(outputs, list) else [outputs]
    return [np.asarray(o, dtype=np.float64).reshape(-1, o.shape[-1]) for o in outputs]


def test_exact_multiple_is_rebuilt_by_udfc_and_neuron_merging():
    model = multiple_channel_model(sequential=False, head="conv")
    x = np.random.default_rng(3).normal(size=(16, 9, 9, 3)).astype(np.float32)
    (row,) = dfcompress.reconstruction_errors(model, x, prune_ratio=1 / 8)
    assert (row.layer, row.kept, row.channels, row.weights_per_filter) == ("conv1", 7, 8, 27)
    assert row.activation == "relu"
    assert row.udfc_error < 1e-5 and row.udfc_error_before_activation < 1e-5
    assert row.neuron_merging_error < 1e-5
    assert row.fitted_error < 1e-5


def test_errors_match_an_independent_computation():
    model = conv_net(1, widths=(12, 16, 16), input_shape=(10, 10, 1))
    x = np.random.default_rng(4).normal(size=(20, 10, 10, 1)).astype(np.float32)
    rows = dfcompress.reconstruction_errors(model, x, prune_ratio=0.5, layers=["conv0", "conv1"])
    assert [row.layer for row in rows] == ["conv0", "conv1"]
    first = rows[0]
    # conv0 has 9 weights per filter and keeps 6 channels: below D, so no exact fit is promised;
    # the data-fitted error is recomputed here from the activations with numpy's lstsq.
    assert first.weights_per_filter == 9 and first.kept == 6
    kernel = model.get_layer("conv0").kernel.numpy().reshape(-1, 12)
    order = np.argsort(-np.linalg.norm(kernel, axis=0), kind="stable")
    kept, pruned = np.sort(order[:6]), np.sort(order[6:])
    (after,) = _activations(model, ["relu0"], x)
    fit = np.linalg.lstsq(after[:, kept], after[:, pruned], rcond=None)[0]
    error = np.linalg.norm(after[:, pruned] - after[:, kept] @ fit, axis=0)
    norm = np.linalg.norm(after[:, pruned], axis=0)
    live = norm > 0
    np.testing.assert_allclose(first.fitted_error, np.median(error[live] / norm[live]), rtol=1e-6)
    for row in rows:
        # The data-fitted combination is the least-squares optimum on these activations.
        assert row.fitted_error <= min(row.udfc_error, row.neuron_merging_error) + 1e-9
        assert 0 <= row.udfc_negative_fraction <= 1


def test_short_filters_give_an_exact_fit_before_the_activation():
    """kept >= D: the paper objective's weight-level fit is exact, so the BN outputs are rebuilt
    exactly (and not after the ReLU: mixed-sign coefficients)."""
    model = conv_net(2, widths=(16, 8, 8), input_shape=(8, 8, 1))  # conv0: D = 9, keeps 11
    x = np.random.default_rng(5).normal(size=(10, 8, 8, 1)).astype(np.float32)
    (row,) = dfcompress.reconstruction_errors(
        model, x, prune_ratio=0.3, layers=["conv0"], objective="bn"
    )
    assert row.kept == 11 and row.weights_per_filter == 9
    assert row.udfc_error_before_activation < 1e-4


def test_bad_arguments():
    model = conv_net(0, widths=(12, 16, 16))
    x = np.zeros((2, 16, 16, 3), np.float32)
    with pytest.raises(ValueError, match="prune_ratio is 0"):
        dfcompress.reconstruction_errors(model, x, prune_ratio=0)
    with pytest.raises(ValueError, match="non-empty batch"):
        dfcompress.reconstruction_errors(model, np.zeros((0, 16, 16, 3)), prune_ratio=0.3)


def _run_script(*arguments: str, cwd: Path) -> subprocess.CompletedProcess:
    return run_script("scripts.diagnose_pruning", *arguments, cwd=cwd, timeout=600)


@pytest.mark.slow
def test_script_table_matches_the_library(tmp_path):
    from cnn_zoo.datasets import load_idx_directory, to_model_inputs
    from cnn_zoo.models import vgg_small

    keras.utils.set_random_seed(0)
    model = vgg_small(widths=(32, 32, 32), seed=0)
    data = load_idx_directory(SAMPLE_DIR)
    x = to_model_inputs(data.x_test)
    model.predict(x[:8], verbose=0)  # built; random weights are enough for the plumbing
    path = tmp_path / "vgg.keras"
    model.save(path)
    output = tmp_path / "diag.md"
    result = _run_script(
        f"--model_path={path}",
        f"--data_dir={SAMPLE_DIR}",
        "--prune_ratio=0.5",
        "--images=200",
        "--eval_images=300",
        f"--output={output}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line for line in output.read_text().splitlines() if line.startswith("| stage")]
    assert len(rows) == 3
    x, labels = x[:300], data.y_test[:300]
    pruned, _ = dfcompress.prune_channels(model, 0.5, layers=["stage2_block1_conv"])
    expected = 100 * np.mean(pruned.predict(x, verbose=0).argmax(1) == labels)
    cells = [cell.strip() for cell in rows[1].split("|")]
    assert cells[1] == "stage2_block1_conv" and cells[2] == "16 / 32"
    assert float(cells[9]) == pytest.approx(expected, abs=0.005)
    library = dfcompress.reconstruction_errors(model, to_model_inputs(data.x_test)[:200], 0.5)
    assert cells[5].startswith(f"{library[1].udfc_error:.2f}")
    # An existing output is never replaced; a bad ratio names its flag.
    again = _run_script(f"--model_path={path}", f"--output={output}", cwd=tmp_path)
    assert again.returncode != 0 and "--output" in again.stderr
    bad = _run_script(f"--model_path={path}", "--prune_ratio=1.5", cwd=tmp_path)
    assert bad.returncode != 0
    assert re.search(r"prune_ratio.*must be in \(0, 1\)", bad.stderr)
