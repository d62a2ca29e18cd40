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
URL ?=
CHROMIUM ?= /usr/bin/chromium
CHECKOV_VENV := .venv-checkov

# jsii prints a banner on Node 20; the CDK CLI sends no telemetry, notices or version checks.
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export CDK_DISABLE_CLI_TELEMETRY := true
CDK_FLAGS := --no-notices --no-version-reporting

.PHONY: help install browser static-tools bench-check synth test lint typecheck unit nag-doc deploy verify destroy demo load bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements.txt requirements-dev.txt services/agent/requirements.txt services/session_binding/requirements.txt services/demo_api/requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

install: $(VENV)/.installed node_modules/.installed ## Python venv and the pinned aws-cdk CLI

$(CHROMIUM):
	bash tools/install-chromium.sh $(CHROMIUM)

browser: $(CHROMIUM) ## Chromium from Debian for the browser tests

# checkov pins boto3 and networkx versions that conflict with the project's: it gets a venv of its own.
$(CHECKOV_VENV)/.installed: requirements-checkov.txt
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-checkov.txt
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

unit: install browser static-tools ## the pytest suite only (browser and static-analysis tests fail rather than skip here)
	REQUIRE_CHROMIUM=1 REQUIRE_NODE_IDP=1 CHROMIUM_PATH=$(CHROMIUM) REQUIRE_STATIC_TOOLS=1 CHECKOV=$(CHECKOV_VENV)/bin/checkov $(PY) -m pytest $(PYTEST_ARGS)

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

demo: install ## the whole 3-legged flow on this machine: open http://127.0.0.1:8000 (DEMO_PORT=8000), Ctrl-C stops it
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
