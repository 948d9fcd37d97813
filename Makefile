# Two commands do all set-up on a fresh machine (Python 3.11):
#   make demo   — the main job end to end on Fashion-MNIST
#   make test   — the default test suite (< 10 min on 2 cores; CI's first stage, via .ci/run)
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
FMNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz

.PHONY: setup data demo lint test test-e2e test-slow bench clean

setup: $(STAMP)

$(STAMP): setup.cfg pyproject.toml constraints.txt
	command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --constraint constraints.txt --editable '.[test]'
	touch $@

# Offline copy of Fashion-MNIST from Debian (best effort: without it Keras downloads).
data:
	@if [ ! -e $(FMNIST) ] && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 || \
	  { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1; } || \
	  echo "note: dataset-fashion-mnist not installed; Keras will try to download Fashion-MNIST"; \
	fi

demo: setup data
	$(BIN)/python -m examples.demo

# Two pytest workers (pytest-xdist) share the 2-core machine: each test file runs
# whole on one worker (--dist loadfile), so a file's module fixtures are built
# once. PYTEST_WORKERS=0 runs in one process.
PYTEST_WORKERS ?= 2
XDIST := -n $(PYTEST_WORKERS) --dist loadfile

test: setup data lint
	$(BIN)/python -m pytest $(XDIST) $(PYTEST_ARGS)

# Lint and formatting check (ruff, configured in pyproject.toml).
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The end-to-end tier: subprocess runs of the command lines, the demo, the
# experiments' --quick runs, 2 replicas and several workers (CI's second stage).
# pytest's exit status 5 ("no tests collected") is not a failure here: a
# selection such as `make test-e2e PYTEST_ARGS=tests/models` may hold none.
test-e2e: setup data
	$(BIN)/python -m pytest $(XDIST) -m "e2e and not slow" $(PYTEST_ARGS) || [ $$? -eq 5 ]

# Long real-data runs (not run by CI).
test-slow: setup data
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS) || [ $$? -eq 5 ]

bench: setup data
	$(BIN)/python -m benchmarks.train_throughput
	$(BIN)/python -m benchmarks.inference_latency
	$(BIN)/python -m benchmarks.compression

clean:
	rm -rf $(VENV) demo_output artifacts .pytest_cache
