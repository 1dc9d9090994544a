# The two entry points the README opens with:
#   make demo   - offline: generate images on the sandbox and save them under pic/
#   make test   - install the dev tools into .venv and run every quality gate
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SOURCES := jimeng tests examples $(wildcard benchmarks)

.PHONY: demo test lint typecheck unit docs bench clean

$(PY):
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "Python 3.10+ needed"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.runtime: $(PY) pyproject.toml
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.dev: $(PY) pyproject.toml
	$(PY) -m pip install -q -e '.[dev]'
	touch $@ $(VENV)/.runtime

demo: $(VENV)/.runtime
	$(PY) examples/demo.py

lint: $(VENV)/.dev
	$(PY) -m ruff check $(SOURCES)
	$(PY) -m ruff format --check $(SOURCES)

typecheck: $(VENV)/.dev
	$(PY) -m mypy --strict jimeng

unit: $(VENV)/.dev
	$(PY) -m pytest -q

docs: $(VENV)/.dev
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --site-dir site

test: lint typecheck unit docs

bench: $(VENV)/.runtime
	$(PY) benchmarks/overhead.py

clean:
	rm -rf $(VENV) site .mypy_cache .ruff_cache .pytest_cache .hypothesis
