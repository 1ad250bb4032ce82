# vmray-operator: `make demo` runs the main job, `make test` runs the tests (see README.md).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help venv tools lint test test-unit test-integration test-e2e bench generate demo demo-down local-up local-down clean

help:
	@echo "make demo       local cloud + operator + the sample Ray cluster (make demo-down stops it)"
	@echo "make test       lint, unit and integration tests (builds the pinned tools on first use)"
	@echo "make lint       ruff and mypy --strict"
	@echo "make test-e2e   only the end-to-end tests (real Ray in every simulated VM)"
	@echo "make bench      benchmark of the core reconcile (prints figures)"
	@echo "make generate   regenerate crds/ from the API models"
	@echo "make tools      build the pinned tools into ~/.cache/vmray-dev"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip==25.3
	$(BIN)/pip install --quiet -e '.[dev,ray]'
	@rm -f $(VENV)/.installed-*; touch $@

venv: $(STAMP)

tools:
	bash ci/scripts/install-tools.sh

lint: venv
	$(BIN)/ruff check operator tests
	$(BIN)/ruff format --check operator tests
	$(BIN)/mypy

test-unit: venv
	$(BIN)/pytest -q tests/unit

test-integration: venv tools
	$(BIN)/pytest -q tests/integration

test-e2e: venv tools
	$(BIN)/pytest -q tests/e2e

# e2e runs in its own pytest session: its simulator runs real Ray, the integration suite's does not.
test: venv tools lint
	$(BIN)/pytest -q tests/unit tests/integration
	VMRAY_TEST_VMOP_VERSION=v1alpha2 $(BIN)/pytest -q tests/integration/test_cluster_lifecycle.py
	$(BIN)/pytest -q tests/e2e

bench: venv tools
	$(BIN)/python -m tests.bench.core --clusters 50 --workers 4 --idle 120
	$(BIN)/python -m tests.bench.ray_floor

generate: venv
	$(BIN)/python -m vmray_operator.api.crd crds

local-up: venv tools
	$(BIN)/vmray-operator local up

local-down: venv
	$(BIN)/vmray-operator local down

demo: venv tools
	$(BIN)/vmray-operator demo up

demo-down: venv
	$(BIN)/vmray-operator demo down

clean: local-down
	rm -rf $(VENV) .local-cloud
