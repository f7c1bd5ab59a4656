# Two entry points for a fresh machine: `make demo` and `make test`. Each sets everything up first.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.melinterp-installed
# pip takes torch's CPU build from this machine's disk when asked for exactly this version.
TORCH_VERSION ?= 2.13.0

.PHONY: setup demo lint test bench docs clean

$(STAMP): pyproject.toml setup.cfg
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q "setuptools<81" wheel
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q torch==$(TORCH_VERSION)
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(PY) examples/demo.py --out examples/output

lint: setup  # flake8, configured in setup.cfg (lines of 120)
	$(PY) -m flake8 src tests examples docs/conf.py docs/figures.py

test: setup lint
	$(PY) -m pytest

docs: setup
	$(PY) -m pip install -q "sphinx>=7"  # the `docs` extra
	$(PY) docs/figures.py docs/_generated
	$(PY) -m sphinx -W --keep-going -b html -q docs docs/_build/html
	@echo "docs: docs/_build/html/index.html"

bench: setup
	$(PY) examples/benchmarks/bench.py --json examples/output/bench.json

clean:
	rm -rf $(VENV) examples/output .pytest_cache src/*.egg-info docs/_build docs/_generated
