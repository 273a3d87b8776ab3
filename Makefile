# bertbot: `make run` sets everything up and starts bertbot locally; `make test` runs the tests.
# Every target is safe to re-run: finished steps are skipped (stamp files in .venv/).

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install run test test-fast lint format lock clean help bench bench-peer

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --progress-bar on -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install bertbot with its dev tools

run: install  ## set up (encoder, data, first models), then serve: the local Slack emulator, or real Slack when SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET are set; FAST=1 for small models, PORT=3000
	$(BIN)/bertbot setup $(if $(FAST),--fast,)
	$(BIN)/bertbot doctor
	@if [ -n "$$SLACK_BOT_TOKEN" ] && [ -n "$$SLACK_SIGNING_SECRET" ]; then \
	  echo "bertbot: Slack credentials set: serving Slack at http://127.0.0.1:$(or $(PORT),3000)/slack/events"; \
	  exec $(BIN)/bertbot serve --http --port $(or $(PORT),3000); \
	else \
	  echo "bertbot: no SLACK_BOT_TOKEN/SLACK_SIGNING_SECRET: try bertbot in the local Slack emulator at http://127.0.0.1:$(or $(PORT),3000) (Ctrl-C stops it)"; \
	  exec $(BIN)/bertbot serve --emulator --port $(or $(PORT),3000); \
	fi

test: install  ## run the whole test suite (PostgreSQL tests need BERTBOT_TEST_POSTGRES_URL; .ci/run sets it)
	$(BIN)/python -m pytest

test-fast: install  ## the tests that need no downloads and no slow training
	$(BIN)/python -m pytest -m "not slow and not encoder and not data"

lint: install  ## ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install  ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

lock: install  ## rewrite constraints.txt from the installed environment
	{ echo '# Exact versions bertbot is tested with (make lock rewrites this file). make install uses it as pip constraints.'; \
	  $(BIN)/python -m pip freeze --all --exclude-editable --exclude bertbot --exclude pip; } > constraints.txt

PEER := .venv-peer
$(PEER)/.installed:
	$(PYTHON) -m venv $(PEER)
	$(PEER)/bin/python -m pip install --quiet 'torch==2.13.0' 'transformers==5.24.0' 'accelerate>=1.0' numpy
	touch $@

bench-peer: $(PEER)/.installed  ## the bench-only venv with PyTorch + transformers (never a product dependency)

bench: install bench-peer  ## every benchmark (~1.5-2 h); figures go to bench/results/ and bench/RESULTS.md (steps: python bench/run.py --list)
	bash -c 'source .ci/postgres.sh && $(BIN)/python bench/run.py'

clean:  ## remove the venvs and caches (keeps var/)
	rm -rf $(VENV) $(PEER) .pytest_cache .mypy_cache .ruff_cache
