# dpmia: two commands do everything.
#   make book   sets up .venv, builds the Jupyter Book of the paper's grid from its records
#               published with the repository (published/paper/, no training), checks it in
#               headless Chromium, then recomputes one run from scratch on the real yeast data
#               as a spot check; PROFILE=quick computes a reduced grid instead (any profile
#               not published is computed, resuming)
#   make test   sets up .venv, checks style, runs the fast test suite on all cores (under 10 min on 2 cores)
# Re-running is a no-op for the parts that have not changed.

SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROFILE ?= paper
WORKERS ?= 2
PYTEST_ARGS ?=
# make test's pytest workers (pytest-xdist; 0 runs the tests in one process).
TEST_WORKERS ?= auto

.PHONY: setup book results test test-slow lint format clean-book browser-deps check-book

setup: $(STAMP)

# The venv is rebuilt only when the pins change. constraints.txt freezes the transitive
# dependencies that were tested together, so a fresh machine gets the same stack.
$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), \
	  f"dpmia needs Python 3.11 (tensorflow-privacy 0.9.0 does not support {sys.version.split()[0]}); set PYTHON=/path/to/python3.11"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

# Published with the repository (published/<profile>/): the book needs no training.
# SOURCE=compute computes such a profile anyway.
PUBLISHED := $(if $(filter compute,$(SOURCE)),,$(wildcard published/$(PROFILE)/summary.csv))

# Recomputes what is missing (resumable); then names any published run it changed.
results: setup
	$(BIN)/python -m dpmia_utils run parameters/$(PROFILE).yml --workers $(WORKERS) --recompute-published
	@if [ -f published/$(PROFILE)/summary.csv ]; then \
	  $(BIN)/python -m dpmia_utils compare parameters/$(PROFILE).yml; fi

# The built book is then checked as a reader sees it (headless Chromium, offline: console
# errors, broken images and internal links), where Chromium is installed or installable.
CHECK_BOOK = @if $(BIN)/python -c 'from dpmia_utils.publish.browser_check import find_chromium as f; raise SystemExit(f() is None)'; then \
	  $(BIN)/python -m dpmia_utils.publish.browser_check _build/html; \
	else echo "chromium not found: the browser check of the book is skipped (make browser-deps as root installs it)"; fi

check-book: setup
	$(CHECK_BOOK)

ifeq ($(PUBLISHED),)
book: results browser-deps
	$(BIN)/python -m dpmia_utils book --profile $(PROFILE)
	$(CHECK_BOOK)
else
book: setup browser-deps
	$(BIN)/python -m dpmia_utils book --profile $(PROFILE) --published --allow-partial
	$(CHECK_BOOK)
	$(BIN)/python -m dpmia_utils spotcheck parameters/$(PROFILE).yml --stamp results/.spotcheck-$(PROFILE).json
endif

test: setup browser-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	MPLBACKEND=Agg $(BIN)/python -m pytest -m "not slow" -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

test-slow: setup browser-deps
	MPLBACKEND=Agg $(BIN)/python -m pytest -m slow $(PYTEST_ARGS)

# Headless Chromium for the browser check of the rendered book (Debian's package). Installed
# only where we may (root, apt available); elsewhere the browser test says why it skipped.
browser-deps:
	@if ! command -v chromium >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian chromium for the browser test"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "could not install chromium: the browser test will skip"; \
	  else echo "chromium not found and not root: the browser test will skip"; fi; \
	fi

lint:
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format:
	$(BIN)/ruff check --fix . && $(BIN)/ruff format .

# environment.yml (conda/Binder) is generated from pyproject.toml's and constraints.txt's pins.
environment.yml: pyproject.toml constraints.txt
	$(BIN)/python tools/sync_environment.py

clean-book:
	rm -rf _build
