# vmray-operator: `make demo` runs the main job, `make test` runs the tests (see README.md).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help venv tools lint test test-unit test-integration test-e2e test-carvel bench bench-scale generate demo demo-down
.PHONY: local-up local-down clean carvel carvel-push test-reliability test-reliability-long

help:
	@echo "make demo       local cloud + operator + the sample Ray cluster (make demo-down stops it)"
	@echo "make test       lint, unit and integration tests (builds the pinned tools on first use)"
	@echo "make lint       ruff and mypy --strict"
	@echo "make test-e2e   only the end-to-end tests (real Ray in every simulated VM)"
	@echo "make test-reliability-long  crash, fault and bad-input tests at full size (prints figures)"
	@echo "make bench      benchmarks: 100 clusters, operator overhead, Ray floor (prints figures)"
	@echo "make bench-scale  1,000 clusters of 1 head + 4 workers against the fake simulator (prints figures)"
	@echo "make carvel     the Supervisor Service package (build/carvel/); make carvel-push REGISTRY=... pushes it"
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

test-carvel: venv tools
	$(BIN)/pytest -q tests/carvel

test-reliability: venv tools
	$(BIN)/pytest -q tests/reliability

# Long variants: 200 SIGKILLs, 300 create/delete cycles, 10,000 generated specs; figures at the end.
test-reliability-long: venv tools
	VMRAY_RELIABILITY_LONG=1 $(BIN)/pytest -q tests/reliability

# tests/integration runs the seed sample at every supported VM Operator version (test_cluster_lifecycle.py).
# e2e runs in its own pytest session: its simulator runs real Ray, the integration suite's does not.
# carvel and reliability too: their operators (the packaged ServiceAccount's; a process killed and
# restarted) never run beside the integration suite's.
test: venv tools lint
	$(BIN)/pytest -q tests/unit tests/integration
	$(BIN)/pytest -q tests/carvel
	$(BIN)/pytest -q tests/reliability
	$(BIN)/pytest -q tests/e2e

bench: venv tools
	$(BIN)/python -m tests.bench.core --clusters 100 --workers 4 --idle 120
	$(BIN)/python -m tests.bench.overhead --workers 200
	$(BIN)/python -m tests.bench.ray_floor

# The size of a large Supervisor: 5,000 VMs.
bench-scale: venv tools
	$(BIN)/python -m tests.bench.core --clusters 1000 --workers 4 --idle 60 --timeout 3600

generate: venv
	$(BIN)/python -m vmray_operator.api.generated crds

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

# The Supervisor Service (README: VI admin). `make carvel` writes build/carvel/: the imgpkg bundle, the
# file to upload in vSphere Client (PackageMetadata + Package, the bundle pinned by digest) and sample
# values. CARVEL_REGISTRY is where the Package says the bundle lives; OPERATOR_IMAGE is the image built
# from the Dockerfile (default $(CARVEL_REGISTRY)/vmray-operator:<version>, resolved to its digest; a
# reference with @sha256: needs no registry). `make carvel-push REGISTRY=<registry>/<path>` also pushes
# the bundle there (credentials as for docker push) and checks its digest.
CARVEL_REGISTRY ?= ghcr.io/vmray-operator
CARVEL_OUT ?= build/carvel
OPERATOR_IMAGE ?=

carvel: tools
	CARVEL_REGISTRY='$(CARVEL_REGISTRY)' OPERATOR_IMAGE='$(OPERATOR_IMAGE)' bash ci/scripts/build-carvel.sh '$(CARVEL_OUT)'

carvel-push: tools
	@test -n '$(REGISTRY)' || { echo 'usage: make carvel-push REGISTRY=<registry>/<path> [OPERATOR_IMAGE=...]' >&2; exit 2; }
	PUSH=1 CARVEL_REGISTRY='$(REGISTRY)' OPERATOR_IMAGE='$(OPERATOR_IMAGE)' bash ci/scripts/build-carvel.sh '$(CARVEL_OUT)'
