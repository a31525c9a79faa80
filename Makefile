# rxaudit: the two commands a new user needs are `make demo` and `make test`.
# Both create (or reuse) .venv and install the project into it.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP_FLAGS ?= -q
STAMP := $(VENV)/.installed
LINT_DIRS := $(wildcard audit tests benchmarks dags)

.DEFAULT_GOAL := help
.PHONY: help venv demo test test-fast lint format lock clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(PIP_FLAGS) --upgrade pip
	$(PY) -m pip install $(PIP_FLAGS) -c constraints.txt -e '.[dev,airflow]'
	touch $(STAMP)

venv: $(STAMP) ## create the virtual environment and install the project

demo: $(STAMP) ## run the Airflow DAGs on a synthetic cohort (embedded PostgreSQL unless DATABASE_URL is set)
	$(VENV)/bin/rxaudit demo --out reports

test: $(STAMP) ## run every test (DATABASE_URL, else an embedded PostgreSQL)
	$(PY) -m pytest

test-fast: $(STAMP) ## the tests without the slow ones
	$(PY) -m pytest -m "not slow"

lint: $(STAMP) ## ruff check and format check
	$(VENV)/bin/ruff check $(LINT_DIRS)
	$(VENV)/bin/ruff format --check $(LINT_DIRS)

format: $(STAMP) ## apply ruff formatting
	$(VENV)/bin/ruff format $(LINT_DIRS)
	$(VENV)/bin/ruff check --fix $(LINT_DIRS)

lock: $(STAMP) ## refresh constraints.txt from the environment
	$(PY) -m pip freeze --exclude-editable | grep -v '^rxaudit' > constraints.txt

clean: ## remove the environment, the embedded database and reports
	rm -rf $(VENV) .rxaudit reports .pytest_cache .ruff_cache
