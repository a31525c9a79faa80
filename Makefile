# rxaudit: the two commands a new user needs are `make demo` and `make test`.
# Both create (or reuse) .venv and install the project into it.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP_FLAGS ?= -q
STAMP := $(VENV)/.installed
LINT_DIRS := $(wildcard audit tests benchmarks dags scripts)

.DEFAULT_GOAL := help
.PHONY: help venv demo serve test test-fast lint format lock clean wheel-check crosscheck

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

serve: $(STAMP) ## the workspace on http://127.0.0.1:8080 (RXAUDIT_WEB_DATABASE_URL, else DATABASE_URL, else the embedded PostgreSQL)
	$(VENV)/bin/rxaudit serve --host 127.0.0.1 --port 8080

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund

test: $(STAMP) node_modules/.package-lock.json ## run every test (DATABASE_URL, else an embedded PostgreSQL), two at a time
	$(PY) -m pytest -n 2 --dist loadfile

test-fast: $(STAMP) ## the tests without the slow ones
	$(PY) -m pytest -m "not slow"

crosscheck: $(STAMP) node_modules/.package-lock.json ## CMS128 on fqm-execution against rxaudit's coverage (needs DATABASE_URL)
	$(PY) scripts/cms128_crosscheck.py --patients 1000

lint: $(STAMP) ## ruff check and format check
	$(VENV)/bin/ruff check $(LINT_DIRS)
	$(VENV)/bin/ruff format --check $(LINT_DIRS)

format: $(STAMP) ## apply ruff formatting
	$(VENV)/bin/ruff format $(LINT_DIRS)
	$(VENV)/bin/ruff check --fix $(LINT_DIRS)

wheel-check: $(STAMP) ## build the wheel, install it in a fresh venv, run the sample batch from another folder
	rm -rf build/wheel-check && mkdir -p build/wheel-check
	$(PY) -m pip wheel $(PIP_FLAGS) --no-deps -w build/wheel-check .
	$(PYTHON) -m venv build/wheel-check/venv
	build/wheel-check/venv/bin/pip install $(PIP_FLAGS) -c constraints.txt build/wheel-check/rxaudit-*.whl
	cd build/wheel-check && env -u DATABASE_URL RXAUDIT_HOME=$(CURDIR)/build/wheel-check/home \
	  venv/bin/rxaudit --quiet run $(CURDIR)/samples/demo-batch --out reports
	test -f build/wheel-check/reports/latest/dashboard.html

lock: $(STAMP) ## refresh constraints.txt from the environment
	$(PY) -m pip freeze --exclude-editable | grep -v '^rxaudit' > constraints.txt

clean: ## remove the environment, the embedded database and reports
	rm -rf $(VENV) .rxaudit reports .pytest_cache .ruff_cache node_modules
