# "Train it faster" — every target installs what it needs first, from nothing.
#   make venv     environment in $(VENV) with the exact pins of constraints.txt
#   make data     Fashion-MNIST on disk (already there / Debian package / download)
#   make test     ruff, unit tests, strict nbval, the portable run, book build (CI runs this)
#   make portable every notebook on the fallback data at COURSE_SCALE=4, offline (no comparison)
#   make book     the Jupyter Book in book/_build/html, offline, warnings as errors
#   make lab      JupyterLab on notebooks/
#   make execute  re-run every notebook top to bottom in place (regenerates stored outputs)
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
VENV ?= .venv
PYTHON ?= python3
BIN := $(abspath $(VENV))/bin
PY := $(BIN)/python
# An editable install points at one checkout, so the stamp is per checkout path too.
STAMP := $(VENV)/.installed-$(shell printf '%s' "$(CURDIR)" | sha1sum | cut -c1-12)
PIP := $(PY) -m pip --disable-pip-version-check
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))
export PATH := $(BIN):$(PATH)
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: venv data test lint unit envcheck nbval portable book lab execute doctor benchmark constraints clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade "pip>=23.2"
	$(PIP) install -q -c constraints.txt -e ".[dev,book]"
	@rm -f $(VENV)/.installed-*
	@touch $@

data: venv
	$(PY) -m course_utils data fashion_mnist

doctor: venv
	$(PY) -m course_utils doctor

test: venv data
	@$(MAKE) --no-print-directory lint unit nbval portable book

lint: venv
	$(BIN)/ruff check .

unit: venv
	$(PY) -m pytest tests -q

envcheck: venv
	$(PY) -m pytest tests/test_packaging.py -q

nbval: venv data
	$(PY) -m pytest --nbval --nbval-current-env -p no:cacheprovider -q $(NOTEBOOKS)

# Every notebook without the data, cache or network, at the GPU size setting (outputs not compared).
portable: venv
	$(PY) scripts/run_portable.py --scale 4

book: venv
	rm -rf book/_build
	$(BIN)/jupyter-book build book --warningiserror --keep-going
	@echo "Book: book/_build/html/index.html"

lab: venv data
	$(BIN)/jupyter lab --notebook-dir=notebooks

execute: venv data
	@for nb in $(NOTEBOOKS); do \
	  echo "== $$nb"; \
	  $(BIN)/jupyter nbconvert --to notebook --execute --inplace \
	    --ExecutePreprocessor.timeout=600 --ExecutePreprocessor.kernel_name=python3 "$$nb"; \
	done

benchmark: venv
	$(PY) benchmarks/train_overhead.py
	$(PY) benchmarks/loader_throughput.py

# Regenerate the exact pins from a fresh resolution of pyproject.toml (needs the registries).
constraints:
	rm -rf .venv-pins && $(PYTHON) -m venv .venv-pins
	.venv-pins/bin/pip install -q torch==2.14.1 torchvision==0.29.1 -e ".[dev,book]"
	{ sed -n '1,3p' constraints.txt; .venv-pins/bin/pip freeze --exclude-editable; } > constraints.new
	mv constraints.new constraints.txt && rm -rf .venv-pins

clean:
	rm -rf book/_build .pytest_cache .ruff_cache
