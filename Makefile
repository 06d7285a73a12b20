# creditmesh — `make run` brings the platform up locally; `make test` runs everything that must pass.
SHELL := /bin/bash
.DEFAULT_GOAL := help
UV_RUN := uv run --frozen --no-sync

.PHONY: help setup compile run test lint unit

help:
	@echo "make run    set up, compile, start three anvil devnets, deploy, start the simulated lenders, KYC/MLA and the API"
	@echo "make test   set up and run ruff, mypy --strict and the whole test suite"
	@echo "make unit   the unit tests only (seconds)"
	@echo "make chaos  three API processes on one PostgreSQL and Redis under load, outages and a killed process"
	@echo "make bench  the benchmarks against their baselines: tables, JSON and PNG plots in bench/results/"
	@echo "make reset  forget the local platform's chains, database and keys (make run keeps them across runs)"

setup:
	@bash scripts/setup.sh

.PHONY: setup-tests
setup-tests: setup  ## the set-up, then Debian's chromium, which only the tests open (after: one apt-get at a time)
	@bash scripts/setup.sh browser

compile: setup

run: setup  ## keeps the chains, the database and the keys of the last run (in .creditmesh/)
	$(UV_RUN) creditmesh run

.PHONY: reset
reset:  ## forget the local platform's chains, database, deployments and keys: the next `make run` starts fresh
	$(UV_RUN) creditmesh reset

.PHONY: python-env lint-checks
python-env:  ## the Python environment alone (uv.lock): what ruff and mypy need
	@bash scripts/setup.sh python

lint: python-env
	@$(MAKE) --no-print-directory lint-checks

lint-checks:
	$(UV_RUN) ruff check .
	$(UV_RUN) ruff format --check .
	$(UV_RUN) mypy

# ruff and mypy run beside the rest of the set-up (the contracts' compile, a core for about a minute; mypy ~50 s on
# a fresh clone), so both cores work. Each one's output is printed whole when it ends (--output-sync); either
# failing stops the tests from running. pytest then runs on two workers (pytest-xdist), each taking one test file at a
# time (--dist loadfile: a module's fixtures are set up once) with PostgreSQL, Redis and devnets of its own.
# TEST_WORKERS=0 runs the suite in one process.
TEST_WORKERS ?= 2
test: python-env
	@$(MAKE) --no-print-directory -j 2 --output-sync=target setup-tests lint-checks
	$(UV_RUN) pytest -n $(TEST_WORKERS) --dist loadfile

unit: setup
	$(UV_RUN) pytest -m unit -q

.PHONY: contracts-fuzz
contracts-fuzz: setup  ## the long contract property run (>= 10,000 operations)
	CREDITMESH_FUZZ_OPS=10000 $(UV_RUN) pytest tests/contracts/test_properties.py -q -s --timeout 3600

.PHONY: slow
slow: setup  ## the long tests kept out of the default run (@pytest.mark.slow), e.g. `ape run governance`
	$(UV_RUN) pytest -m slow -q

FUZZ_SEED ?= 17

.PHONY: fuzz-api
fuzz-api: setup  ## schemathesis over the whole OpenAPI document: every role, hundreds of examples per operation
	CREDITMESH_FUZZ_SEED=$(FUZZ_SEED) $(UV_RUN) pytest tests/e2e/test_openapi_fuzz.py -m slow -q

# Short settings for a busy machine, e.g.: make bench SCALE_ARGS="--seconds 5 --loans 20" QUOTE_PATH_ARGS="--seconds 5"
SCALE_ARGS ?=
QUOTE_PATH_ARGS ?=
CHAIN_THROUGHPUT_ARGS ?=
SCALE_LOANS_ARGS ?=

.PHONY: bench
bench: setup  ## the benchmarks, each against its baseline measured in the same run (docs/performance.md)
	$(UV_RUN) python -m bench.scale $(SCALE_ARGS)
	$(UV_RUN) python -m bench.scale_loans $(SCALE_LOANS_ARGS)
	$(UV_RUN) python -m bench.quote_path $(QUOTE_PATH_ARGS)
	$(UV_RUN) python -m bench.chain_throughput $(CHAIN_THROUGHPUT_ARGS)

.PHONY: chaos
chaos: setup  ## tests/chaos, slow scenarios included: three API processes on one PostgreSQL and Redis under load and outages
	$(UV_RUN) pytest tests/chaos -m "slow or not slow" -q
