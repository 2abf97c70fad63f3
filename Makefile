# transferlens: build, test and serve the executable tutorial site.
#   make test    create .venv if missing, run the unit tests and execute every page (nbmake)
#   make site    build site/ from the executed pages (executes only stale pages)
#   make serve   make site, then serve site/ on http://127.0.0.1:8000
# See README.md for the rest (test-pages, test-colab, mutants, test-browser, bench, lint, clean).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# pip prints one "Location ... is ignored" line per package for this machine's local indexes.
PIP_QUIET := grep -v -e 'is ignored: it is neither a file nor a directory' || true
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
PORT ?= 8000

.PHONY: venv test test-pages test-colab mutants site serve test-browser bench lint clean help

help:
	@sed -n '2,6p' Makefile | sed 's/^# //'

venv: $(VENV)/.installed

# Reinstall when the dependencies or their pinned versions change. Python 3.11 and pip: torch
# and torchvision come from local wheels on these machines (uv and poetry would download ~3 GB
# instead). CONSTRAINTS: the exact versions (constraints/dev.txt, see its header); the test
# workflow's oldest row passes a file with its own pins instead (pip refuses two pins of one name).
# `{ ...; }` around the filter keeps pip's exit status, so a failed install fails make.
CONSTRAINTS ?= constraints/dev.txt
$(VENV)/.installed: pyproject.toml $(CONSTRAINTS)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -c $(CONSTRAINTS) --upgrade pip 2>&1 | { $(PIP_QUIET); }
	$(PY) -m pip install -q -c $(CONSTRAINTS) -e ".[test,docs,browser]" 2>&1 | { $(PIP_QUIET); }
	@touch $@

# Unit tests and every page, in parallel across the cores.
test: venv
	$(PY) -m pytest -n $(JOBS) --dist load

# Only the pages, each compared with a run of identical inputs (the copy `make test` published
# under the same key, else a second execution): fails if any output differs.
test-pages: venv
	$(PY) -m pytest -n $(JOBS) --dist load --check-determinism docs

# Every page as a Colab user meets it: a fresh venv with only torch, torchvision, fastai, timm,
# matplotlib and ipykernel; each page's own first cell installs transferlens (from this checkout).
test-colab: venv
	$(PY) tools/colab_check.py

# Each page against fastai (or torch) changed in the one behaviour it explains: every page must
# fail under its mutants (tools/mutants.py lists them).
mutants: venv
	$(PY) tools/mutants.py --jobs $(JOBS)

site: venv
	$(PY) tools/build_site.py --jobs $(JOBS)

serve: site
	@echo "serving site/ on http://127.0.0.1:$(PORT) (Ctrl-C to stop)"
	$(PY) -m http.server $(PORT) --bind 127.0.0.1 --directory site

# Real-browser tests of the built site (Debian's chromium + Playwright from PyPI).
test-browser: site
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "chromium is not installed. Install Debian's package: sudo apt-get install -y chromium" >&2; \
	  exit 1; }
	$(PY) -m pytest --browser tests/browser

bench: venv
	$(PY) tools/bench.py

lint: venv
	$(PY) -m ruff check src tests tools

clean:
	rm -rf build site site.tmp site.old .transferlens-cache
