# "Train it faster" — every target installs what it needs first, from nothing.
#   make venv     environment in $(VENV) with the exact pins of constraints.txt
#   make data     Fashion-MNIST on disk (already there / Debian package / download)
#   make test     ruff, unit tests, strict nbval, the portable run, book build, browser tests (CI)
#   make portable every notebook on the fallback data at COURSE_SCALE=4 and 0.5, offline (no comparison)
#   make postgres PostgreSQL's server programs for the tests of scripts/tune.py (apt, where allowed)
#   make book     the Jupyter Book in book/_build/html, offline, warnings as errors
#   make browser  the built book and JupyterLab in a real browser (Debian chromium + Playwright)
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

.PHONY: venv data test lint unit envcheck nbval portable book book-assets chromium postgres browser lab execute doctor benchmark constraints clean

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
	@$(MAKE) --no-print-directory lint unit nbval portable book browser

lint: venv
	$(BIN)/ruff check .

unit: venv postgres
	$(PY) -m pytest tests -q --ignore=tests/browser

envcheck: venv
	$(PY) -m pytest tests/test_packaging.py -q

nbval: venv data
	$(PY) -m pytest --nbval --nbval-current-env -p no:cacheprovider -q $(NOTEBOOKS)

# Every notebook without the data, cache or network, at the GPU size setting and at the slow-laptop
# setting (outputs not compared).
portable: venv
	$(PY) scripts/run_portable.py --scale 4
	$(PY) scripts/run_portable.py --scale 0.5

# The ledger and instructor pages are generated from the records first (book/generate_pages.py).
book: venv book-assets
	rm -rf book/_build
	$(PY) book/generate_pages.py
	$(BIN)/jupyter-book build book --warningiserror --keep-going
	@echo "Book: book/_build/html/index.html"

# MathJax, served by the book itself: from the npm registry at the pin of book/package-lock.json.
book-assets: book/node_modules/.installed
book/node_modules/.installed: book/package.json book/package-lock.json
	@command -v npm >/dev/null 2>&1 || scripts/apt_install.sh npm
	npm ci --prefix book --no-audit --no-fund
	@touch $@

# PostgreSQL's server programs (Debian's postgresql) for the study-storage tests of scripts/tune.py,
# which start a throwaway server in a temporary folder; they fail, naming this target, without it.
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 \
	  || scripts/apt_install.sh postgresql

# Debian's chromium for the browser tests (Playwright's own download is not used).
chromium:
	@test -x /usr/bin/chromium || scripts/apt_install.sh chromium \
	  || echo "chromium could not be installed: the browser tests will be skipped"

# Needs the built book (make book); starts its own web server and JupyterLab on loopback ports.
browser: venv chromium
	$(PY) -m pytest tests/browser -q -p no:cacheprovider

lab: venv data
	$(BIN)/jupyter lab --notebook-dir=notebooks $(if $(filter 0,$(shell id -u)),--allow-root)

execute: venv data
	@for nb in $(NOTEBOOKS); do \
	  echo "== $$nb"; start=$$SECONDS; \
	  $(PY) -c 'import sys, nbformat; nb = nbformat.read(sys.argv[1], 4); nb.metadata.pop("widgets", None); nbformat.write(nb, sys.argv[1])' "$$nb"; \
	  $(BIN)/jupyter nbconvert --to notebook --execute --inplace \
	    --ExecutePreprocessor.timeout=600 --ExecutePreprocessor.kernel_name=python3 \
	    --ExecutePreprocessor.store_widget_state=False "$$nb"; \
	  echo "   $$nb: $$((SECONDS - start)) s (kernel start included)"; \
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
