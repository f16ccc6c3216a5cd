# toolwire — `make help` lists the targets. `make run` and `make test` set everything up themselves.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV      := .venv
PYTHON    := $(VENV)/bin/python
BUF       := tools/node_modules/.bin/buf
LISTEN    ?= 127.0.0.1:50051
STAMP     := $(VENV)/.installed
GENERATED := clients/python/src/toolwire/v1

.PHONY: help setup run demo test test-python lint proto check-generated coverage clean

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  \033[1m%-16s\033[0m %s\n", $$1, $$2}'

setup: $(STAMP) $(BUF) ## Create .venv with the server, the Python client and the dev tools; install buf

$(STAMP): pyproject.toml clients/python/pyproject.toml
	@command -v python3 >/dev/null || { apt-get update && apt-get install -y python3; }
	@python3 -m venv $(VENV) 2>/dev/null || { apt-get update && apt-get install -y python3-venv && python3 -m venv $(VENV); }
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -e clients/python -e '.[dev]'
	@touch $@

$(BUF): tools/package.json tools/package-lock.json
	@command -v npm >/dev/null || { apt-get update && apt-get install -y nodejs npm; }
	cd tools && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

run: $(STAMP) ## Start the server with the built-in scripted models (LISTEN=127.0.0.1:50051)
	@echo "toolwire: try  grpcurl -plaintext $(LISTEN) list   or   make demo   (Ctrl-C stops)"
	$(VENV)/bin/toolwire serve --listen $(LISTEN)

demo: $(STAMP) ## Run the weather example end to end against a fresh server
	$(PYTHON) examples/python/weather/run_demo.py

test: setup lint check-generated test-python ## Every check and every test suite

test-python: $(STAMP) ## The Python suites (server and client), with the server coverage gate
	$(VENV)/bin/pytest --cov --cov-report=term

lint: $(STAMP) $(BUF) ## ruff, mypy and buf lint
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(BUF) lint

proto: $(STAMP) $(BUF) ## Regenerate the code from proto/ (buf.gen.yaml)
	$(BUF) generate

check-generated: $(STAMP) $(BUF) ## Fail if the committed generated code is stale
	@tmp=$$(mktemp -d) && $(BUF) generate --output $$tmp && \
	  if diff -r $$tmp/$(GENERATED) $(GENERATED) -x __pycache__ >/dev/null; then \
	    echo "generated code is up to date"; rm -rf $$tmp; \
	  else diff -r $$tmp/$(GENERATED) $(GENERATED) -x __pycache__ | head -20; rm -rf $$tmp; \
	    echo "generated code is stale: run 'make proto' and commit the result"; exit 1; fi

clean: ## Remove the virtualenv, tool installs and caches
	rm -rf $(VENV) tools/node_modules .pytest_cache .mypy_cache .ruff_cache .coverage .hypothesis
