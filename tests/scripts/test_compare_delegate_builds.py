"""scripts/compare_delegate_builds.py: two builds of the delegate interleaved in one process."""

import shutil

import numpy as np
import pytest

from scripts import compare_delegate_builds as compare
from tflite_delegate.flatbuffer_models import ConvSpec, build_conv_model
from tflite_delegate.runtime import library_path


def _sparse_model(path):
    """A 3x3 conv 16->32 keeping 4 of 16 blocks per group of 16: claimed by the delegate."""
    rng = np.random.default_rng(3)
    weights = rng.uniform(0.5, 1.5, (32, 3, 3, 16)).astype(np.float32)
    for group in range(2):
        weights[group * 16 : (group + 1) * 16, :, :, rng.permutation(16)[4:]] = 0.0
    path.write_bytes(build_conv_model((1, 10, 10, 16), [ConvSpec(weights, None)]))
    return path


def _two_copies(tmp_path) -> dict:
    """The library copied to two distinct paths, so that each is opened as its own library."""
    libraries = {}
    for name in ("old", "new"):
        libraries[name] = tmp_path / f"{name}.so"
        shutil.copyfile(library_path(), libraries[name])
    return libraries


def test_two_copies_of_one_build_agree_bitwise_and_are_timed_interleaved(tmp_path):
    model = _sparse_model(tmp_path / "conv.tflite")
    libraries = _two_copies(tmp_path)
    row = compare.compare_model(
        model, libraries, batch=2, threads=2, rounds=3, min_sample_ms=2.0, seed=1
    )
    assert list(row["median_ms"]) == ["old", "new", compare.XNNPACK]
    assert all(ms > 0 for ms in row["median_ms"].values())
    assert row["bitwise_equal"] == {"old": True, "new": True}
    assert set(row["over_first"]) == {"new"} and row["over_first"]["new"] > 0
    # A ratio of medians: XNNPACK's median over each build's.
    for name in ("old", "new"):
        expected = row["median_ms"][compare.XNNPACK] / row["median_ms"][name]
        assert row["speedup_over_xnnpack"][name] == pytest.approx(expected)
    line = compare.format_row(row)
    assert "conv.tflite b2 t2:" in line and "outputs bitwise equal" in line

    without_reference = compare.compare_model(
        model, {"old": libraries["old"]}, rounds=1, min_sample_ms=1.0, xnnpack=False
    )
    assert list(without_reference["median_ms"]) == ["old"]
    assert without_reference["speedup_over_xnnpack"] == {}
    assert without_reference["over_first"] == {}


def test_profile_gives_every_claimed_conv_its_time_in_each_build(tmp_path):
    model = _sparse_model(tmp_path / "conv.tflite")
    libraries = _two_copies(tmp_path)
    row = compare.compare_model(
        model, libraries, rounds=2, min_sample_ms=2.0, xnnpack=False, profile=True
    )
    (layer,) = row["layers"]  # the model's one conv, claimed by both builds
    assert layer["filter_shape"] == [32, 3, 3, 16]
    assert set(layer["run_ms"]) == {"old", "new"}
    # The conv runs inside each invoke: its mean time is positive and below the invoke's.
    for name in ("old", "new"):
        assert 0 < layer["run_ms"][name] <= 3 * row["median_ms"][name]
        assert layer["microkernel"][name] == layer["microkernel"]["old"]
    (line,) = compare.format_layers(row)
    assert line.startswith(f"  node {layer['node']} (32x3x3x16):  old ") and "[first/this " in line
    assert "layers" not in compare.compare_model(
        model, {"old": libraries["old"]}, rounds=1, min_sample_ms=1.0, xnnpack=False
    )


def test_a_build_with_other_outputs_is_named():
    row = {
        "model": "m.tflite",
        "batch": 1,
        "threads": 1,
        "median_ms": {"old": 2.0, "new": 1.0},
        "speedup_over_xnnpack": {},
        "over_first": {"new": 2.0},
        "bitwise_equal": {"old": True, "new": False},
    }
    line = compare.format_row(row)
    assert "new 1.000 ms [first/this per round 2.000]" in line
    assert line.endswith("outputs DIFFER: new")


def test_library_entries_are_validated(tmp_path):
    library = tmp_path / "a.so"
    library.write_bytes(b"")
    assert compare.parse_libraries([f"a={library}", f"b={library}"]) == {
        "a": library.resolve(),
        "b": library.resolve(),
    }
    with pytest.raises(ValueError, match="is not NAME=PATH"):
        compare.parse_libraries([str(library)])
    with pytest.raises(ValueError, match="used twice"):
        compare.parse_libraries([f"a={library}", f"a={library}"])
    with pytest.raises(ValueError, match="used twice"):
        compare.parse_libraries([f"xnnpack={library}"])
    with pytest.raises(ValueError, match="is not a file"):
        compare.parse_libraries([f"a={tmp_path / 'missing.so'}"])
    with pytest.raises(ValueError, match="at least one"):
        compare.parse_libraries([])
