# Two commands for users: `make demo` (the main job) and `make test` (the whole suite).
# Each does its own set-up: a .venv, the package installed editable with its test extras
# (which compiles the C++ delegate), and the full Fashion-MNIST where the machine allows.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALL_STAMP := $(VENV)/.install-stamp
DELEGATE_SOURCES := $(wildcard tflite_delegate/native/*/*.cc tflite_delegate/native/*/*.h tflite_delegate/native/*/*.lds) tools/build_delegate.py
BUILD_DELEGATE := $(PY) tools/build_delegate.py
FASHION_MNIST_DIR := /usr/share/datasets/fashion-mnist

.PHONY: install-tfmot demo test test-python test-native test-sanitizers lint data install bench bench-kernels bench-ceilings bench-delegate bench-peers bazel-build clean

install: $(INSTALL_STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(INSTALL_STAMP): $(PY) pyproject.toml setup.py $(DELEGATE_SOURCES)
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

# tfmot, for the unstructured-pruning baseline of `scripts/reproduce.py --table=subp`. Its absl-py~=1.2
# pin contradicts ours (absl-py>=2), so it goes in without its dependency pins, with the two
# packages it imports that nothing else brings (dm-tree, six); it runs fine with absl 2.
install-tfmot: install
	$(PY) -m pip install --quiet --no-deps "tensorflow-model-optimization>=0.8,<0.9" "tf_keras>=2.16,<2.22"
	$(PY) -m pip install --quiet "dm-tree>=0.1.8" "six>=1.16"
	$(PY) -c "import tensorflow_model_optimization as tfmot; print('tfmot', tfmot.__version__)"

# Full Fashion-MNIST from Debian's dataset-fashion-mnist, when we are root and apt works.
# Never required: the loaders fall back to other places and the tests use the committed sample.
data:
	@if [ -f $(FASHION_MNIST_DIR)/train-images-idx3-ubyte.gz ]; then \
	  echo "Fashion-MNIST found in $(FASHION_MNIST_DIR)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist) \
	    || echo "warning: could not install dataset-fashion-mnist; the demo will say which data it used"; \
	else \
	  echo "note: not root, Fashion-MNIST not installed; see README 'Full datasets'"; \
	fi

DEMO_FLAGS ?=
demo: install data
	$(PY) -m scripts.pipeline $(DEMO_FLAGS)

test: test-python test-native test-sanitizers

# C++ unit tests of the delegate's layers (packing, geometry, pattern detection, options,
# threading, every registered microkernel against a scalar reference, the operator), built from
# tests/tflite_delegate/native with the library's own objects. The run lists every variant it
# skipped because this CPU lacks its ISA.
NATIVE_TESTS := build/native/delegate_native_tests
test-native: install
	$(BUILD_DELEGATE) --tests $(NATIVE_TESTS) --build-temp build/native
	$(NATIVE_TESTS)

test-python: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest -q tests

# The whole delegate suite (correctness grid, properties, robustness, whole models) against an
# ASan+UBSan build of the delegate; any report aborts the run. libasan must come first in the
# process; libstdc++ is preloaded too because Python does not link it, and ASan resolves its
# __cxa_throw interceptor at start-up (LiteRT's own exceptions otherwise trip an ASan CHECK).
# Leak detection is off: the Python interpreter and LiteRT keep allocations alive at exit.
# --capture=sys leaves file descriptor 2 alone, so a report reaches the log before the abort.
SANITIZER_LIBRARY := build/sanitizers/libtflite_sparse_delegate.so
SANITIZER_NATIVE_TESTS := build/sanitizers/delegate_native_tests
test-sanitizers: install
	$(BUILD_DELEGATE) --sanitize --tests $(SANITIZER_NATIVE_TESTS) --build-temp build/sanitizers
	ASAN_OPTIONS=abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  $(SANITIZER_NATIVE_TESTS)
	$(BUILD_DELEGATE) --sanitize --output $(SANITIZER_LIBRARY) --build-temp build/sanitizers
	@ldd $(SANITIZER_LIBRARY) | grep -q libasan || (echo "$(SANITIZER_LIBRARY) is not linked with ASan" && exit 1)
	LD_PRELOAD="$$($(CXX) -print-file-name=libasan.so) $$($(CXX) -print-file-name=libstdc++.so)" \
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	TFLITE_SPARSE_DELEGATE_LIBRARY=$(CURDIR)/$(SANITIZER_LIBRARY) \
	  $(PY) -m pytest -q -p no:cacheprovider --capture=sys tests/tflite_delegate

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

bench: install
	$(PY) -m scripts.benchmark_subp_training
	$(PY) -m scripts.benchmark_delegate

# Layer grid (ResNet-18/50 and MobileNetV1 conv shapes x N x block sparsity x threads) and the
# SUBP model configurations, delegate against dense XNNPACK, interleaved (scripts/benchmark_delegate.py;
# about 20 minutes on an idle machine with the model cache filled). Flags with BENCH_FLAGS.
bench-delegate: install
	$(PY) -m scripts.benchmark_delegate $(BENCH_FLAGS)

# Peers on the same work: Debian's libxnnpack sparse NCHW operator (1x1 convs, 70-95 % sparsity)
# and onnxruntime on ResNet-50 "2.0G" (scripts/benchmark_peers.py). Not part of make test.
bench-peers: install
	@if [ ! -f /usr/include/xnnpack.h ] || [ ! -f /usr/include/pthreadpool.h ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libxnnpack-dev libpthreadpool-dev; \
	  else \
	    echo "error: bench-peers needs Debian's libxnnpack-dev and libpthreadpool-dev; as root run:" >&2; \
	    echo "  apt-get install libxnnpack-dev libpthreadpool-dev" >&2; \
	    exit 1; \
	  fi; \
	fi
	$(PY) -m pip install --quiet -e ".[peers]"
	$(PY) -m scripts.benchmark_peers $(BENCH_FLAGS)

# Microbenchmark of the microkernels and the conv operator (tools/bench_kernels.cc): by default
# ResNet-50's conv shapes at 224x224 input, 50 % 1x16 block sparsity, 1 and 2 threads. Pass
# flags with BENCH_FLAGS, e.g. make bench-kernels BENCH_FLAGS="--shapes 56x56x64x64x3 --threads 1".
BENCH_KERNELS := build/native/bench_kernels
BENCH_FLAGS ?=
bench-kernels: install
	$(BUILD_DELEGATE) --bench $(BENCH_KERNELS) --build-temp build/native
	$(BENCH_KERNELS) $(BENCH_FLAGS)

# What one core issues of each FMA form the microkernels use (benchmarks/ceilings/fma_ceilings.c):
# the ceiling of each microkernel family. Argument: milliseconds per sample, e.g.
# make bench-ceilings BENCH_FLAGS=500. Then how long the first two CPUs take to pass a cache
# line back and forth (benchmarks/ceilings/core_round_trip.c), and what two cores pay to write
# interleaved parts of one buffer (benchmarks/ceilings/interleaved_writes.c).
FMA_CEILINGS := build/native/fma_ceilings
CORE_ROUND_TRIP := build/native/core_round_trip
INTERLEAVED_WRITES := build/native/interleaved_writes
bench-ceilings:
	@mkdir -p build/native
	$(CC) -O2 -Wall -Wextra -Werror benchmarks/ceilings/fma_ceilings.c -o $(FMA_CEILINGS)
	$(FMA_CEILINGS) $(BENCH_FLAGS)
	$(CC) -O2 -Wall -Wextra -Werror -pthread benchmarks/ceilings/core_round_trip.c -o $(CORE_ROUND_TRIP)
	$(CORE_ROUND_TRIP)
	$(CC) -O2 -Wall -Wextra -Werror -pthread benchmarks/ceilings/interleaved_writes.c -o $(INTERLEAVED_WRITES)
	$(INTERLEAVED_WRITES)

# Self-contained Bazel build of the delegate (needs Debian's bazel-bootstrap; see README).
bazel-build: install
	@if ! command -v bazel >/dev/null || [ ! -f /usr/share/bazel/rules/java/WORKSPACE ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bazel-bootstrap bazel-rules-java; \
	  else \
	    echo "error: bazel-build needs Debian's bazel-bootstrap and bazel-rules-java; as root run:" >&2; \
	    echo "  apt-get install bazel-bootstrap bazel-rules-java" >&2; \
	    exit 1; \
	  fi; \
	fi
	bazel build --nosandbox_debug \
	  --override_repository=rules_cc=$(CURDIR)/third_party/bazel_rules_cc \
	  --override_repository=rules_java=/usr/share/bazel/rules/java \
	  //:libtflite_sparse_delegate.so
	mkdir -p build/bazel
	install -m 755 bazel-bin/libtflite_sparse_delegate.so build/bazel/libtflite_sparse_delegate.so
	nm -D --defined-only build/bazel/libtflite_sparse_delegate.so
	@nm -D --defined-only build/bazel/libtflite_sparse_delegate.so | awk '{print $$3}' | sort > build/bazel/exports.bazel
	@nm -D --defined-only tflite_delegate/libtflite_sparse_delegate.so | awk '{print $$3}' | sort > build/bazel/exports.setup_py
	@sed -n 's/^ *\([A-Za-z_][A-Za-z0-9_]*\);$$/\1/p' tflite_delegate/native/abi/exports.lds | sort > build/bazel/exports.lds_global
	@diff -u build/bazel/exports.lds_global build/bazel/exports.bazel \
	  && diff -u build/bazel/exports.setup_py build/bazel/exports.bazel \
	  && echo "exported symbols: the exports.lds entry points only, same as the setup.py build" \
	  || (echo "error: the Bazel library's exported symbols differ (see diff above)" >&2 && exit 1)
	TFLITE_SPARSE_DELEGATE_LIBRARY=$(CURDIR)/build/bazel/libtflite_sparse_delegate.so \
	  $(PY) -m scripts.check_bazel_delegate

clean:
	rm -rf build dist *.egg-info tflite_delegate/*.so bazel-*
