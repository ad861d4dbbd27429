# make run   – set up .venv and start the server on the embedded local backend
# make test  – set up .venv (with test tools) and run the tests in a loopback-only network namespace
# make bench – run the relay benchmark (see docs/performance.md)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Root can make a network namespace directly; other users map themselves to root in a user namespace.
NETNS  := $(if $(filter 0,$(shell id -u)),unshare -n,unshare -rn)
# llama-cpp-python (the offline assistant's language model) builds from source: a compiler and cmake.
BUILD_COMMANDS := g++:g++ make:make cmake:cmake

.PHONY: run test lint bench build-deps system-deps clean

run: $(VENV)/.installed-run
	$(BIN)/voice-relay serve

test: system-deps $(VENV)/.installed-dev
	$(NETNS) sh -c 'ip link set lo up && exec $(BIN)/pytest $(PYTEST_ARGS)'

# The relay benchmark re-runs itself in a loopback-only namespace (docs/performance.md).
bench: $(VENV)/.installed-dev
	$(BIN)/python -m benchmarks.relay_bench $(BENCH_ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check protocol relay localmodel web tests benchmarks
	$(BIN)/mypy

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed-run: pyproject.toml | $(VENV)/bin/python build-deps
	CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(BIN)/pip install -q -e ".[assistant]"
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(VENV)/bin/python build-deps
	CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(BIN)/pip install -q -e ".[dev]"
	touch $@ $(VENV)/.installed-run

build-deps:
	@missing=""; \
	for pair in $(BUILD_COMMANDS); do \
	  command -v $${pair%%:*} >/dev/null || missing="$$missing $${pair#*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -q && apt-get install -y -q build-essential cmake; \
	  else echo "please install: build-essential cmake (apt-get install build-essential cmake)"; exit 1; fi; \
	fi

# Tests need espeak-ng and flite (test speech), Chromium (browser tests), iproute2 (loopback
# namespace), redis-server and nginx (shared state and the load balancer in front of instances);
# as root also coturn, nftables and certutil (tests/test_connectivity.py's network; it skips otherwise).
system-deps:
	@missing=""; \
	command -v espeak-ng >/dev/null || missing="$$missing espeak-ng"; \
	command -v flite >/dev/null || missing="$$missing flite"; \
	command -v nginx >/dev/null || missing="$$missing nginx"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v ip >/dev/null || missing="$$missing iproute2"; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	if [ "$$(id -u)" = 0 ]; then \
	  command -v turnserver >/dev/null || missing="$$missing coturn"; \
	  command -v nft >/dev/null || missing="$$missing nftables"; \
	  command -v certutil >/dev/null || missing="$$missing libnss3-tools"; \
	fi; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -q && apt-get install -y -q $$missing; \
	  else echo "please install:$$missing (apt-get install$$missing)"; exit 1; fi; \
	fi

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
