# toolwire — `make help` lists the targets. `make run` and `make test` set everything up themselves.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV      := .venv
PYTHON    := $(VENV)/bin/python
BUF       := tools/node_modules/.bin/buf
GOTOOLS   := tools/bin/.installed
# Go: the machine's when it is new enough for the go.mod files, else the pinned toolchain that
# tools/install_go.py puts here (first on PATH, so every recipe and the scripts they start use it).
GO_TOOLCHAIN := tools/go-toolchain
export PATH  := $(CURDIR)/$(GO_TOOLCHAIN)/bin:$(PATH)
LISTEN    ?= 127.0.0.1:50051
STAMP     := $(VENV)/.installed
TS_STAMP  := clients/typescript/node_modules/.installed
# Where `make proto` writes, one folder per language (checked by `make check-generated`).
GENERATED := clients/python/src/toolwire/v1 clients/go/toolwire/v1 clients/typescript/src/gen
# The Go and TypeScript suites start this server themselves, on a free port.
export TOOLWIRE_BIN     := $(CURDIR)/$(VENV)/bin/toolwire
export TOOLWIRE_SCRIPTS := $(CURDIR)/tests/scripts

.PHONY: go-toolchain help setup run demo demo-go demo-typescript bench bench-instructions test test-python test-go test-typescript lint proto check-generated clean image test-container container-tools

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  \033[1m%-19s\033[0m %s\n", $$1, $$2}'

setup: $(STAMP) $(BUF) $(GOTOOLS) ## Create .venv (server, Python client, dev tools); install buf, the generators, grpcurl, grpc-health-probe (and Go 1.26 if the machine has none)

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

# Go for the go.mod files (Debian's golang-go is too old: bookworm's is 1.19).
go-toolchain:
	@command -v python3 >/dev/null || { apt-get update && apt-get install -y python3; }
	@python3 tools/install_go.py $(GO_TOOLCHAIN)

# The tools pinned in tools/go.mod (`tool` directives): protoc-gen-go(-grpc), grpcurl, grpc-health-probe.
$(GOTOOLS): tools/go.mod tools/go.sum | go-toolchain
	cd tools && GOBIN=$(CURDIR)/tools/bin go install tool
	@touch $@

$(TS_STAMP): clients/typescript/package.json clients/typescript/package-lock.json
	@command -v npm >/dev/null || { apt-get update && apt-get install -y nodejs npm; }
	cd clients/typescript && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

run: $(STAMP) ## Start the server with the built-in scripted models (LISTEN=127.0.0.1:50051)
	@test -f $(GOTOOLS) || echo "toolwire: installing grpcurl and the other tools of tools/go.mod into tools/bin (once)"
	@$(MAKE) --no-print-directory $(GOTOOLS) >/dev/null 2>&1 || \
	  echo "toolwire: the tools of tools/go.mod did not install (make setup shows why); the server runs without them"
	@echo "toolwire: from another terminal try  tools/bin/grpcurl -plaintext $(LISTEN) list"
	@echo "          or  .venv/bin/toolwire chat --target $(LISTEN) scripted/weather \"Weather in Paris?\"   (Ctrl-C stops)"
	$(VENV)/bin/toolwire serve --listen $(LISTEN)

demo: $(STAMP) ## Run the Python weather example against a fresh server
	$(PYTHON) examples/with_server.py $(PYTHON) examples/python/weather/weather.py

demo-go: $(STAMP) go-toolchain ## Run the Go weather example against a fresh server
	cd examples/go/weather && $(CURDIR)/$(PYTHON) $(CURDIR)/examples/with_server.py go run .

demo-typescript: $(STAMP) ## Run the TypeScript weather example against a fresh server
	cd examples/typescript/weather && $(CURDIR)/$(PYTHON) $(CURDIR)/examples/with_server.py npm start

# LiteLLM's proxy, the peer gateway compared with, gets a virtualenv of its own (its dependencies must
# not mix with ours); the benchmark runs without it when it does not install.
bench: $(STAMP) $(GOTOOLS) ## The relay benchmark against a fake provider: docs/performance.md (BENCH_QUICK=1: a smoke run of a few minutes; BENCH_WORKERS=1,2,4: toolwire's process counts)
	$(PYTHON) -m pip install --quiet -e '.[bench]'
	@test -x bench/.venv-litellm/bin/litellm || { python3 -m venv bench/.venv-litellm && \
	  timeout 900 bench/.venv-litellm/bin/pip install --quiet 'litellm[proxy]'; } || \
	  echo "bench: LiteLLM's proxy did not install; running without it"
	$(PYTHON) -m bench.run

bench-instructions: $(STAMP) $(GOTOOLS) ## Instructions per relayed chunk and per chat, toolwire and the floor, counted by valgrind: the same on every run, for the A/B of a change
	@command -v valgrind >/dev/null || { apt-get update && apt-get install -y valgrind; }
	$(PYTHON) -m pip install --quiet -e '.[bench]'
	$(PYTHON) -m bench.instructions

test: setup lint check-generated test-python test-go test-typescript test-container ## Every check and every test suite, all languages, and the container build

test-python: $(STAMP) go-toolchain ## The Python suites (server and client), with the server coverage gate
	$(VENV)/bin/pytest --cov --cov-report=term

test-go: $(STAMP) go-toolchain ## The Go client: go vet, then its tests with the race detector against a real server (and the bench's Go load generator)
	cd clients/go && go vet ./... && go test -race -count=1 ./...
	cd examples/go/weather && go vet ./... && go test -race -count=1 ./...
	cd bench/loadgen && go vet ./... && go test -race -count=1 ./...

test-typescript: $(STAMP) $(TS_STAMP) ## The TypeScript client: tsc --strict, then its tests against a real server
	cd clients/typescript && npm test
	cd examples/typescript/weather && npm test

.PHONY: soak
soak: $(STAMP) ## Hundreds of concurrent chats with tool rounds, cancels, provider faults, slow readers against a real server; then memory, fds and tasks back at the baseline (SOAK_SECONDS=180, SOAK_CONCURRENCY=300)
	$(PYTHON) soak/run.py

lint: $(STAMP) $(BUF) ## ruff, mypy, buf lint, and buf breaking against main's proto
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(BUF) lint
	@if git rev-parse --verify --quiet main >/dev/null; then \
	  $(BUF) breaking --against '.git#branch=main,subdir=proto' && echo "buf breaking: no breaking change against main"; \
	else echo "buf breaking: no local main branch to compare with"; fi

proto: $(STAMP) $(BUF) $(GOTOOLS) ## Regenerate the Python, Go and TypeScript code from proto/ (buf.gen.yaml)
	$(BUF) generate

check-generated: $(STAMP) $(BUF) $(GOTOOLS) ## Fail if the committed generated code is stale
	@tmp=$$(mktemp -d) && $(BUF) generate --output $$tmp && stale=0 && \
	  for folder in $(GENERATED); do \
	    diff -r $$tmp/$$folder $$folder -x __pycache__ >/dev/null || { diff -r $$tmp/$$folder $$folder -x __pycache__ | head -20; stale=1; }; \
	  done; rm -rf $$tmp; \
	  if [ $$stale = 0 ]; then echo "generated code is up to date"; \
	  else echo "generated code is stale: run 'make proto' and commit the result"; exit 1; fi

# podman (vfs storage, chroot isolation) and debootstrap from Debian: no Docker engine and no registry
# here, so the image builds on a bookworm base made with debootstrap (tools/container.py). Needs root.
container-tools:
	@command -v podman >/dev/null && command -v debootstrap >/dev/null || \
	  { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y podman debootstrap; }

image: $(STAMP) $(GOTOOLS) container-tools ## Build the container image localhost/toolwire:latest with podman (the base once, by debootstrap)
	$(PYTHON) tools/container.py image

test-container: $(STAMP) $(GOTOOLS) container-tools ## hadolint, the Kubernetes manifests, and the image built, started and checked
	$(VENV)/bin/pytest -m container tests/container

clean: ## Remove the virtualenv, tool installs and caches
	rm -rf $(VENV) tools/node_modules tools/bin $(GO_TOOLCHAIN) clients/typescript/node_modules .pytest_cache .mypy_cache .ruff_cache .coverage .hypothesis
