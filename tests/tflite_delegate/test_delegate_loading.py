"""Loading the delegate library: symbol hygiene, both Python loaders, the interpreter factory, the
claiming report, resizing, fp16 weights, every ISA path and concurrent interpreters.

Outputs are compared with the TFLite reference interpreter (builtin kernels, no XNNPACK); the
expected block statistics are computed with numpy from the Keras weights.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import tflite_delegate
from tflite_delegate import litert_compat
from tflite_delegate.runtime import report_text

keras = pytest.importorskip("keras")

EXPORTED_SYMBOLS = {
    "tflite_plugin_create_delegate",
    "tflite_plugin_destroy_delegate",
    "tflite_sparse_delegate_report",
    "tflite_sparse_delegate_last_error",
    "tflite_sparse_delegate_microkernels",
}
# Every ISA of the library's microkernel registry (variants the CPU cannot run are skipped).
ISAS = tuple(dict.fromkeys(kernel.isa for kernel in tflite_delegate.microkernels()))
RELATIVE_TOLERANCE = 1e-5
BLOCK_N = 4
SEED = 20261121


def _zero_blocks(model: keras.Model, block_n: int, sparsity: float, seed: int) -> None:
    """Zero random 1xN blocks (N output channels at one tap) of every Conv2D; randomise biases."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if type(layer) is not keras.layers.Conv2D:
            continue
        weights = layer.get_weights()
        kernel_h, kernel_w, in_channels, out_channels = weights[0].shape
        groups = -(-out_channels // block_n)
        keep = rng.random((kernel_h, kernel_w, in_channels, groups)) >= sparsity
        weights[0] = weights[0] * np.repeat(keep, block_n, axis=3)[..., :out_channels]
        if len(weights) > 1:
            weights[1] = rng.normal(scale=0.1, size=weights[1].shape).astype(np.float32)
        layer.set_weights(weights)


def _tap_vector_statistics(kernel: np.ndarray, block_n: int) -> tuple[float, int, int]:
    """(tap-vector sparsity, min and max kept tap vectors per group) of a Keras (KH, KW, I, O)
    kernel: a tap vector is the N weights of one group at one (ky, kx, ci)."""
    out_channels = kernel.shape[3]
    groups = -(-out_channels // block_n)
    padded = np.zeros((*kernel.shape[:3], groups * block_n), np.float32)
    padded[..., :out_channels] = kernel
    kept = np.any(padded.reshape(*kernel.shape[:3], groups, block_n) != 0, axis=-1)
    per_group = kept.reshape(-1, groups).sum(axis=0)
    return 1.0 - kept.mean(), int(per_group.min()), int(per_group.max())


def _block_statistics(kernel: np.ndarray, block_n: int) -> tuple[float, int, int, float]:
    """(block sparsity, min and max kept blocks per group, max/mean balance) of a Keras kernel:
    a block is one group x one input channel x the whole KH x KW window."""
    out_channels = kernel.shape[3]
    groups = -(-out_channels // block_n)
    padded = np.zeros((*kernel.shape[:3], groups * block_n), np.float32)
    padded[..., :out_channels] = kernel
    kept = np.any(padded.reshape(*kernel.shape[:3], groups, block_n) != 0, axis=(0, 1, 4))
    per_group = kept.sum(axis=0)
    balance = per_group.max() / per_group.mean() if per_group.sum() else 1.0
    return 1.0 - kept.mean(), int(per_group.min()), int(per_group.max()), float(balance)


def _build_model(batch: int | None) -> keras.Model:
    """Odd-sized input, SAME/VALID, strides, dilation, no-bias, a grouped conv and a depthwise."""
    keras.utils.set_random_seed(SEED)
    inputs = keras.Input((17, 19, 3), batch_size=batch)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="c0")(inputs)
    x = keras.layers.Conv2D(18, 3, strides=2, activation="relu6", name="c1")(x)
    x = keras.layers.Conv2D(12, 1, use_bias=False, name="c2")(x)
    x = keras.layers.Conv2D(8, 3, dilation_rate=2, padding="same", activation="relu", name="c3")(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = keras.layers.Conv2D(8, 3, groups=2, padding="same", name="grouped")(x)
    # 18 and 6 output channels leave a partial last group of 2 at N = 4.
    outputs = keras.layers.Conv2D(6, 3, strides=2, name="c4")(x)
    model = keras.Model(inputs, outputs)
    _zero_blocks(model, BLOCK_N, 0.6, SEED)
    return model


CLAIMABLE_LAYERS = ("c0", "c1", "c2", "c3", "c4")


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict:
    """Keras model plus its fp32, fp16-weight and dynamic-batch conversions."""
    directory = tmp_path_factory.mktemp("delegate_loading")
    model = _build_model(batch=1)
    dynamic = _build_model(batch=None)
    dynamic.set_weights(model.get_weights())
    return {
        "keras": model,
        "fp32": tflite_delegate.convert(model, directory / "model.tflite"),
        "fp16": tflite_delegate.convert(model, directory / "fp16.tflite", weights="float16"),
        "dynamic": tflite_delegate.convert(dynamic, directory / "dynamic.tflite"),
    }


def _inputs(batch: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(batch, 17, 19, 3)).astype(np.float32)


def _run(interpreter, x: np.ndarray) -> np.ndarray:
    detail = interpreter.get_input_details()[0]
    if tuple(detail["shape"]) != x.shape:
        interpreter.resize_tensor_input(detail["index"], x.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(detail["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).copy()


def _reference(model_path: Path, x: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(
        model_path=str(model_path),
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    return _run(interpreter, x)


def _assert_close(actual: np.ndarray, expected: np.ndarray) -> None:
    assert actual.shape == expected.shape
    scale = max(float(np.max(np.abs(expected))), 1e-30)
    assert float(np.max(np.abs(actual - expected))) <= RELATIVE_TOLERANCE * scale


def _isolated(model_path: Path, num_threads: int = 1, **options):
    """LiteRT interpreter with only our delegate (no XNNPACK), for exact attribution."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    return Interpreter(
        model_path=str(model_path),
        num_threads=num_threads,
        experimental_delegates=[tflite_delegate.load_delegate(min_sparsity=0, **options)],
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )


def _supported(isa: str) -> bool:
    return isa in tflite_delegate.supported_isas()


def test_library_exports_exactly_the_entry_points():
    if shutil.which("nm") is None:
        pytest.skip("nm (binutils) not installed")
    listing = subprocess.run(
        ["nm", "-D", "--defined-only", tflite_delegate.library_path()],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert {line.split()[-1] for line in listing.splitlines() if line.strip()} == EXPORTED_SYMBOLS


def test_library_does_not_depend_on_tflite():
    if shutil.which("ldd") is None or shutil.which("nm") is None:
        pytest.skip("ldd/nm not installed")
    path = tflite_delegate.library_path()
    dependencies = subprocess.run(["ldd", path], capture_output=True, text=True, check=True).stdout
    for forbidden in ("tflite", "tensorflow", "litert", "pywrap"):
        assert forbidden not in dependencies.lower()
    undefined = subprocess.run(
        ["nm", "-D", "--undefined-only", path], capture_output=True, text=True, check=True
    ).stdout
    assert "TfLite" not in undefined


def test_import_does_not_import_tensorflow_or_litert():
    code = (
        "import sys, tflite_delegate; "
        "assert 'tensorflow' not in sys.modules and 'ai_edge_litert' not in sys.modules; "
        "assert callable(tflite_delegate.convert); "
        "assert 'tensorflow' not in sys.modules"
    )
    root = Path(tflite_delegate.__file__).resolve().parent.parent
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)


def test_library_path_override_and_missing_library(monkeypatch, tmp_path):
    monkeypatch.setenv(tflite_delegate.LIBRARY_ENVIRONMENT_VARIABLE, tflite_delegate.library_path())
    assert Path(tflite_delegate.library_path()).is_file()
    missing = tmp_path / "nowhere.so"
    monkeypatch.setenv(tflite_delegate.LIBRARY_ENVIRONMENT_VARIABLE, str(missing))
    with pytest.raises(FileNotFoundError, match="build_delegate.py"):
        tflite_delegate.library_path()


def test_report_names_every_conv_and_why(models):
    interpreter = _isolated(models["fp32"])
    summary = tflite_delegate.delegate_summary(interpreter)
    decisions = summary.nodes
    assert [d.claimed for d in decisions].count(True) == len(CLAIMABLE_LAYERS)
    assert summary.kernels_created == len(CLAIMABLE_LAYERS)
    rejected = [d for d in decisions if not d.claimed]
    assert [d.reason_code for d in rejected] == ["grouped_convolution"]
    assert [d.reason for d in rejected] == ["grouped convolution (groups=2)"]
    assert [d.microkernel for d in rejected] == [None]
    claimed = [d for d in decisions if d.claimed]
    names = {kernel.name for kernel in tflite_delegate.microkernels() if kernel.isa == summary.isa}
    for decision, name in zip(claimed, CLAIMABLE_LAYERS, strict=True):
        kernel = models["keras"].get_layer(name).get_weights()[0]
        sparsity, fewest, most = _tap_vector_statistics(kernel, decision.block_n)
        assert decision.reason_code == "claimed" and decision.reason == "claimed"
        assert decision.filter_shape == (kernel.shape[3], *kernel.shape[:3])
        assert decision.block_n == BLOCK_N
        assert decision.tap_vector_sparsity == pytest.approx(sparsity, abs=1e-12)
        assert (decision.kept_tap_vectors_min, decision.kept_tap_vectors_max) == (fewest, most)
        assert (decision.blocks_per_group_min, decision.blocks_per_group_max) == (fewest, most)
        assert decision.uniform == (fewest == most)
        block_sparsity, block_min, block_max, balance = _block_statistics(kernel, BLOCK_N)
        assert decision.block_sparsity == pytest.approx(block_sparsity, abs=1e-12)
        assert (decision.kept_blocks_min, decision.kept_blocks_max) == (block_min, block_max)
        assert decision.balance_ratio == pytest.approx(balance, abs=1e-12)
        assert decision.isa == summary.isa
        assert decision.microkernel in names and f"_1x{BLOCK_N}_" in decision.microkernel
    # The same report through the delegate object itself.
    (delegate,) = litert_compat.interpreter_delegates(interpreter)
    assert tflite_delegate.delegation_report(delegate) == decisions


def test_report_retries_with_a_larger_buffer(models):
    from ai_edge_litert.interpreter import Interpreter

    delegate = tflite_delegate.load_delegate(min_sparsity=0)
    interpreter = Interpreter(model_path=str(models["fp32"]), experimental_delegates=[delegate])
    _run(interpreter, _inputs(1))
    small, needed = report_text(delegate, 8)
    assert needed > 8
    assert len(small) == 7  # truncated to 7 characters plus the NUL
    full, needed_again = report_text(delegate, needed + 1)
    assert needed_again == needed
    assert len(full) == needed and full.startswith(small)


@pytest.mark.parametrize("isa", ISAS)
def test_every_isa_matches_reference_and_threads_agree_bitwise(models, isa):
    if not _supported(isa):
        pytest.skip(f"CPU lacks {isa}")
    x = _inputs(1)
    expected = _reference(models["fp32"], x)
    outputs = [_run(_isolated(models["fp32"], threads, isa=isa), x) for threads in (1, 2)]
    _assert_close(outputs[0], expected)
    np.testing.assert_array_equal(outputs[0], outputs[1])


def test_fp16_weights_are_claimed_and_match(models):
    x = _inputs(1)
    interpreter = _isolated(models["fp16"])
    _assert_close(_run(interpreter, x), _reference(models["fp16"], x))
    claimed = [d for d in tflite_delegate.delegation_report(interpreter) if d.claimed]
    assert len(claimed) == len(CLAIMABLE_LAYERS)


def test_resize_after_delegation_keeps_kernels(models):
    interpreter = _isolated(models["dynamic"], num_threads=2)
    first = tflite_delegate.delegate_summary(interpreter).kernels_created
    for batch in (1, 3, 1):
        x = _inputs(batch, seed=batch)
        _assert_close(_run(interpreter, x), _reference(models["dynamic"], x))
    assert tflite_delegate.delegate_summary(interpreter).kernels_created == first


def test_interpreter_factory_with_xnnpack_for_the_rest(models):
    x = _inputs(1)
    expected = _reference(models["fp32"], x)
    content = Path(models["fp32"]).read_bytes()
    for interpreter in (
        tflite_delegate.Interpreter(model_path=models["fp32"], num_threads=2, min_sparsity=0),
        tflite_delegate.Interpreter(model_content=content, min_sparsity=0),
    ):
        _assert_close(_run(interpreter, x), expected)
        assert sum(d.claimed for d in tflite_delegate.delegation_report(interpreter)) == 5
    plain = tflite_delegate.Interpreter(model_path=models["fp32"], sparse=False)
    _assert_close(_run(plain, x), expected)
    with pytest.raises(ValueError, match="neither"):
        tflite_delegate.delegation_report(plain)
    with pytest.raises(ValueError, match="sparse=True"):
        tflite_delegate.Interpreter(model_path=models["fp32"], sparse=False, isa="generic")


def test_interpreter_num_threads_reaches_the_delegate(models):
    interpreter = tflite_delegate.Interpreter(model_path=models["fp32"], num_threads=2)
    assert tflite_delegate.delegate_summary(interpreter).num_threads == 2
    interpreter = tflite_delegate.Interpreter(model_path=models["fp32"])
    assert tflite_delegate.delegate_summary(interpreter).num_threads == 1


def test_tf_lite_loader_and_interpreter(models):
    tf = pytest.importorskip("tensorflow")
    delegate = tf.lite.experimental.load_delegate(
        tflite_delegate.library_path(), options={"min_sparsity": "0", "isa": "generic"}
    )
    interpreter = tf.lite.Interpreter(
        model_path=str(models["fp32"]),
        experimental_delegates=[delegate],
        experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    x = _inputs(1)
    _assert_close(_run(interpreter, x), _reference(models["fp32"], x))
    summary = tflite_delegate.delegate_summary(interpreter)
    assert summary.isa == "generic"
    assert summary.kernels_created == len(CLAIMABLE_LAYERS)
    with pytest.raises(ValueError, match="bogus"):
        tf.lite.experimental.load_delegate(tflite_delegate.library_path(), options={"bogus": "1"})


def test_two_interpreters_run_concurrently(models):
    inputs = [_inputs(1, seed=seed) for seed in (1, 2)]
    expected = [_reference(models["fp32"], x) for x in inputs]
    interpreters = [_isolated(models["fp32"], num_threads=2) for _ in inputs]
    for interpreter in interpreters:
        interpreter.allocate_tensors()
    failures: list[BaseException] = []

    def work(interpreter, x, reference):
        try:
            for _ in range(20):
                _assert_close(_run(interpreter, x), reference)
        except BaseException as error:  # reported by the main thread
            failures.append(error)

    threads = [
        threading.Thread(target=work, args=args)
        for args in zip(interpreters, inputs, expected, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures


def test_verbose_prints_decisions(models, capfd):
    _isolated(models["fp32"], verbose=True)
    err = capfd.readouterr().err
    assert "grouped convolution (groups=2) [grouped_convolution]" in err
    assert err.count(": claimed") == len(CLAIMABLE_LAYERS)
    assert err.count(": claimed (f32_1x4_") == len(CLAIMABLE_LAYERS)


def test_profile_times_each_claimed_conv_per_invoke(models):
    import time

    def total_ms(decisions) -> float:
        return sum(d.run_ms * d.runs for d in decisions if d.claimed)

    interpreter = _isolated(models["fp32"], profile=True)
    assert all(d.runs is None for d in tflite_delegate.delegation_report(interpreter))
    x = _inputs(1)
    _run(interpreter, x)  # allocates and invokes once
    after_first = tflite_delegate.delegation_report(interpreter)
    invokes, started = 3, time.perf_counter()
    for _ in range(invokes):
        interpreter.invoke()
    elapsed_ms = 1e3 * (time.perf_counter() - started)
    decisions = tflite_delegate.delegation_report(interpreter)
    claimed = [d for d in decisions if d.claimed]
    assert len(claimed) == len(CLAIMABLE_LAYERS)
    for decision in claimed:
        assert decision.runs == invokes + 1, decision
        assert decision.run_ms is not None and decision.run_ms > 0.0
    assert all(d.runs is None and d.run_ms is None for d in decisions if not d.claimed)
    # The convs ran inside the three invokes timed here.
    assert 0.0 < total_ms(decisions) - total_ms(after_first) <= elapsed_ms
    # Without the option nothing is timed.
    plain = _isolated(models["fp32"])
    _run(plain, x)
    assert all(d.runs is None for d in tflite_delegate.delegation_report(plain))


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"bogus": 1}, "unknown option 'bogus'"),
        ({"block_n": 3}, "option block_n='3' is invalid: expected auto, 1, 2, 4, 8, 16 or 32"),
        ({"min_sparsity": "x"}, "option min_sparsity='x' is invalid"),
        ({"per_image_bytes": -1}, "option per_image_bytes='-1' is invalid: expected auto, off"),
        ({"per_image_bytes": "1.5"}, "option per_image_bytes='1.5' is invalid"),
    ],
)
def test_bad_options_raise_value_error_with_the_delegates_reason(options, expected):
    """The plugin's own reason (read back through tflite_sparse_delegate_last_error) is the
    message, for both load_delegate and Interpreter."""
    for factory in (tflite_delegate.load_delegate, tflite_delegate.Interpreter):
        with pytest.raises(ValueError) as raised:
            factory(**options) if factory is tflite_delegate.load_delegate else factory(
                model_content=b"unused", **options
            )
        message = str(raised.value)
        assert message.startswith("tflite_sparse_delegate: "), message
        assert expected in message, message


def test_unsupported_forced_isa_raises_value_error_naming_it():
    """On a CPU without AVX-512 (emulated with $TFLITE_SPARSE_DELEGATE_CPU_WITHOUT), forcing it
    fails with the reason; the registry reports the variants as not runnable; auto falls back."""
    code = (
        "import json, tflite_delegate\n"
        "result = {'isas': list(tflite_delegate.supported_isas())}\n"
        "try:\n"
        "    tflite_delegate.load_delegate(isa='avx512')\n"
        "    result['error'] = None\n"
        "except ValueError as error:\n"
        "    result['error'] = str(error)\n"
        "result['auto'] = tflite_delegate.delegate_summary(tflite_delegate.load_delegate()).isa\n"
        "print(json.dumps(result))\n"
    )
    root = Path(tflite_delegate.__file__).resolve().parent.parent
    env = {**os.environ, "TFLITE_SPARSE_DELEGATE_CPU_WITHOUT": "avx512"}
    env.pop(tflite_delegate.ISA_ENVIRONMENT_VARIABLE, None)
    output = subprocess.run(
        [sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, check=True
    ).stdout
    result = json.loads(output.strip().splitlines()[-1])
    assert "avx512" not in result["isas"] and "generic" in result["isas"]
    assert result["error"] == (
        "tflite_sparse_delegate: option isa requests 'avx512' but this CPU lacks "
        "AVX-512F/VL/AVX2/FMA; use isa=auto or generic"
    )
    assert result["auto"] == result["isas"][0]


def test_last_error_is_cleared_by_a_successful_create():
    """The exported last-error text belongs to the last create call of the calling thread."""
    import ctypes

    library = ctypes.CDLL(tflite_delegate.library_path())
    last_error = library.tflite_sparse_delegate_last_error
    last_error.restype = ctypes.c_char_p
    with pytest.raises(ValueError):
        tflite_delegate.load_delegate(verbose="perhaps")
    assert b"verbose" in last_error()
    tflite_delegate.load_delegate()
    assert last_error() == b""


def test_microkernel_registry_lists_every_isa_and_width():
    """The exported registry: every width N on every ISA the CPU runs, unique names, and the
    library's CPU check agrees with what load_delegate accepts."""
    kernels = tflite_delegate.microkernels()
    assert len({kernel.name for kernel in kernels}) == len(kernels)
    for kernel in kernels:
        assert kernel.weight_type == "float32" and kernel.tile_pixels >= 1
        infixes = {"pixel_major": "__", "channel_major": "_panel__", "pixel_pair": "_pair__"}
        assert kernel.layout in infixes
        infix = infixes[kernel.layout]
        assert kernel.name.startswith(f"f32_1x{kernel.block_n}_p{kernel.tile_pixels}{infix}")
        assert kernel.name.endswith(f"__{kernel.isa}")
    for isa in {kernel.isa for kernel in kernels}:
        widths = {kernel.block_n for kernel in kernels if kernel.isa == isa}
        assert widths == {1, 2, 4, 8, 16, 32}, isa
        pairs = {
            kernel.name for kernel in kernels if kernel.isa == isa and kernel.layout == "pixel_pair"
        }
        expected = {"f32_1x8_p16_pair__avx512", "f32_1x16_p16_pair__avx512"}
        assert pairs == (expected if isa == "avx512" else set()), isa
        runs = all(kernel.supported_by_cpu for kernel in kernels if kernel.isa == isa)
        assert runs == _loads(isa), isa
    assert "generic" in tflite_delegate.supported_isas()


def _loads(isa: str) -> bool:
    try:
        tflite_delegate.load_delegate(isa=isa)
    except ValueError:
        return False
    return True
