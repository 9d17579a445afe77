# Two commands on a fresh machine: `make run` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install browser run test lint bench bench-quick demo clean

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

# The page tests drive Debian's Chromium through Playwright (no browser download).
CHROMIUM ?= /usr/bin/chromium
browser:
	@test -x $(CHROMIUM) || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else \
	    echo "the page tests need Debian's chromium: sudo apt-get install chromium" >&2; exit 2; \
	  fi; }

test: lint browser
	CHROMIUM=$(CHROMIUM) $(VENV)/bin/pytest

bench: install
	$(PY) -m bench

bench-quick: install
	$(PY) -m bench --quick

demo: install
	$(PY) -m router demo

clean:
	rm -rf $(VENV) .data .hypothesis .mypy_cache .pytest_cache .ruff_cache bench/out
