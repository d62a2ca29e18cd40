# Every target installs what it needs: a fresh machine needs Python 3.11, Node 20 and make.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CDK := node_modules/.bin/cdk
ARGS ?=
PYTEST_ARGS ?=
# pytest-xdist workers for `make unit`: one per CPU the OS reports, plus one (0 runs the suite in one process). Most tests
# are CPU-bound, but some wait (a timeout, a retry's back-off, a lease, a stack starting), and the extra worker uses the
# core a waiting one leaves: on 2 cores, 3 workers left 36 core-seconds idle in a run, 2 workers 113 (tests/README.md).
TEST_WORKERS ?= $(or $(shell python3 -c 'import os; print(len(os.sched_getaffinity(0)) + 1 if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1) + 1)' 2>/dev/null),logical)
URL ?=
CHROMIUM ?= /usr/bin/chromium
CHECKOV_VENV := .venv-checkov
# uv fills the venvs. tools/bootstrap-uv.sh brings it from PyPI with pip, once per user and version, into
# UV_BOOTSTRAP_DIR (beside uv's own cache, ~/.cache/uv or UV_CACHE_DIR, where the first install on a machine
# downloads the packages to); without a HOME, into the clone.
UV_VERSION := 0.13.9
UV_BOOTSTRAP_DIR ?= $(if $(HOME),$(or $(XDG_CACHE_HOME),$(HOME)/.cache)/agentcore-ecs-uv,.venv-uv)
UV := $(UV_BOOTSTRAP_DIR)/$(UV_VERSION)/bin/uv
UV_PIP_INSTALL := $(UV) pip install --quiet --no-progress
# `make test` and `make unit` need checkov too: it installs alongside the rest (see install).
INSTALL_PARTS := $(VENV)/.compiled node_modules/.installed $(if $(filter test unit,$(MAKECMDGOALS)),$(CHECKOV_VENV)/.installed)
DEMO_PARTS := $(VENV)/.installed node_modules/.installed
# The installs run as a parallel sub-make; under `make -jN` it shares that make's job slots instead.
INSTALL_MAKE = $(MAKE) --no-print-directory -s $(if $(findstring jobserver,$(MAKEFLAGS)),,-j3)

# jsii prints a banner on Node 20; the CDK CLI sends no telemetry, notices or version checks.
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export CDK_DISABLE_CLI_TELEMETRY := true
CDK_FLAGS := --no-notices --no-version-reporting

.PHONY: help install browser static-tools bench-check synth test lint typecheck unit nag-doc deploy verify destroy demo load bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(UV):
	@echo "  uv $(UV_VERSION), the Python package installer, from PyPI into $(UV_BOOTSTRAP_DIR)/ (once a machine; about 4 s)"
	@bash tools/bootstrap-uv.sh $(UV_BOOTSTRAP_DIR) $(UV_VERSION) $(PYTHON)

# No bytecode here (it would add about 35 s of CPU): `make demo` starts without it; install adds it.
$(VENV)/.installed: requirements.txt requirements-dev.txt services/agent/requirements.txt services/session_binding/requirements.txt services/demo_api/requirements.txt | $(UV)
	@echo "  Python packages into $(VENV)/ with uv (about 3 s; about 10 s the first time on a machine, when uv downloads them)"
	@test -x $(PY) || $(UV) venv --quiet --no-progress --python "$$(command -v $(PYTHON))" $(VENV)
	@$(UV_PIP_INSTALL) --python $(PY) -r requirements-dev.txt
	@touch $@

# The test suite starts many Python processes: compiled once here, they do not each compile what they import.
$(VENV)/.compiled: $(VENV)/.installed
	@echo "  Compiling $(VENV)/'s packages to bytecode for the tests (once; about 40 s)"
	@$(PY) -m compileall -q -j0 $$($(PY) -c 'import sysconfig; print(sysconfig.get_path("purelib"))') >/dev/null \
	  || echo '  warning: some packages did not compile to bytecode; the tests still run, each process compiling what it imports'
	@touch $@

node_modules/.installed: package.json package-lock.json
	@echo "  npm packages into node_modules/: the aws-cdk CLI, oidc-provider, dynalite (about 4 s)"
	@npm ci --prefer-offline --no-audit --no-fund --loglevel=error >/dev/null
	@touch $@

# What is missing is installed in parallel: uv and the venvs on one side, npm ci on the other.
install: ## Python venv (uv), the pinned aws-cdk CLI and the demo's npm packages (make test: checkov too)
	@$(MAKE) --no-print-directory -q $(INSTALL_PARTS) 2>/dev/null || { echo "Installing what is missing, in parallel:"; $(INSTALL_MAKE) $(INSTALL_PARTS); }

$(CHROMIUM):
	bash tools/install-chromium.sh $(CHROMIUM)

browser: $(CHROMIUM) ## Chromium from Debian for the browser tests

# checkov pins boto3 and networkx versions that conflict with the project's: it gets a venv of its own.
$(CHECKOV_VENV)/.installed: requirements-checkov.txt | $(UV)
	@echo "  checkov into $(CHECKOV_VENV)/ with uv, compiled to bytecode (about 10 s)"
	@test -x $(CHECKOV_VENV)/bin/python || $(UV) venv --quiet --no-progress --python "$$(command -v $(PYTHON))" $(CHECKOV_VENV)
	@$(UV_PIP_INSTALL) --compile-bytecode --python $(CHECKOV_VENV)/bin/python -r requirements-checkov.txt
	@touch $@

static-tools: $(CHECKOV_VENV)/.installed ## checkov in its own venv (cfn-lint is in the main one)

synth: install ## cdk synth offline with cdk-nag (ARGS='-c key=value ...'); templates in cdk.out/
	$(CDK) synth $(CDK_FLAGS) --quiet $(ARGS)
	@echo "Synthesized (cdk-nag AwsSolutions + NIST 800-53 R5: no unacknowledged findings):"
	@$(PY) -m deploy.synth_summary cdk.out

lint: install ## ruff (lint and format check)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install ## mypy --strict
	$(VENV)/bin/mypy .

unit: install browser ## the pytest suite only, on every core, then its 15 slowest tests (TEST_WORKERS=0: one process; browser and static-analysis tests fail rather than skip here)
	REQUIRE_CHROMIUM=1 REQUIRE_NODE_IDP=1 CHROMIUM_PATH=$(CHROMIUM) REQUIRE_STATIC_TOOLS=1 CHECKOV=$(CHECKOV_VENV)/bin/checkov $(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup --durations=15 $(PYTEST_ARGS)

test: lint typecheck unit ## every check: lint, types, infra assertions, cdk-nag, services

nag-doc: install ## regenerate docs/security/nag-acknowledgements.md
	$(PY) -m deploy.nag_report

deploy: install ## preflight, cdk deploy --all, then what to do next (ARGS='-c key=value ...')
	$(PY) -m deploy.preflight $(ARGS)
	$(CDK) deploy --all $(CDK_FLAGS) --require-approval broadening $(ARGS)
	$(PY) -m deploy.outputs $(ARGS)

verify: install browser ## check a deployed stack for what only AWS can answer (URL=https://… or the outputs; same ARGS as deploy)
	CHROMIUM_PATH=$(CHROMIUM) $(PY) -m deploy.verify $(if $(URL),--url '$(URL)') $(ARGS)

destroy: install ## cdk destroy --all, then list what is still tagged (same ARGS as deploy; prod: CONFIRM_DESTROY_PROD=<app>-prod)
	$(PY) -m deploy.teardown guard $(ARGS)
	$(CDK) destroy --all --force $(CDK_FLAGS) $(ARGS)
	$(PY) -m deploy.teardown leftovers $(ARGS)

# Only what the demo runs on: no bytecode compilation and no checkov, which are for the tests.
demo: ## the whole 3-legged flow on this machine: open http://127.0.0.1:8000 (DEMO_PORT=8000), Ctrl-C stops it
	@$(MAKE) --no-print-directory -q $(DEMO_PARTS) 2>/dev/null || { echo "Installing what make demo needs, once per clone (about 5 s; about 15 s the first time on a machine):"; $(INSTALL_MAKE) $(DEMO_PARTS); }
	$(PY) -m local.demo

load: install ## the load test alone, with its figures: 200 people consent while 50 attackers replay and swap (LOAD_USERS, LOAD_ATTACKERS)
	$(PY) -m pytest tests/load -q -s

bench: install ## benchmarks (~10 min): bench/results.json, bench/report.md, bench/latency.png (ARGS=--quick)
	$(PY) -m bench.run $(ARGS)

bench-check: install ## compare bench/results.json with the targets (informational; ARGS=--strict to fail)
	$(PY) -m bench.check $(ARGS)

clean: ## remove generated output (keeps the venv and node_modules)
	rm -rf cdk.out .cache .pytest_cache .mypy_cache .ruff_cache
	find . -name __pycache__ -type d -prune -not -path './.venv/*' -not -path './node_modules/*' -exec rm -rf {} +
