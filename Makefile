# Two commands on a fresh machine: `make run` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install run test lint bench bench-quick demo clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test,bench]'
	touch $(STAMP)

run: install
	$(VENV)/bin/mango-router serve

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache

test: lint
	$(VENV)/bin/pytest

bench: install
	$(PY) -m bench

bench-quick: install
	$(PY) -m bench --quick

demo: install
	$(PY) -m router demo

clean:
	rm -rf $(VENV) .data .hypothesis .mypy_cache .pytest_cache .ruff_cache bench/out
