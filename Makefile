# The map of what can be done with vectorlake. Every target sets up what it needs first.
#   make setup   install everything (idempotent, cached): .venv, JVM jars, OpenSearch + k-NN
#   make demo    set up, start the local stack and run the main job on it
#   make test    set up, lint, start the local stack, run every test, stop the stack (also on failure)
#   make lint    ruff + mypy + import contracts (lint-imports) + sqlfluff (the dbt models)
#   make bench   run the benchmarks in bench/ (results under bench/results/)
#   make notebook  run notebooks/search_walkthrough.ipynb against the local stack and check its results
.DEFAULT_GOAL := help
SHELL := /bin/bash
BIN := .venv/bin

.PHONY: help setup demo test lint bench notebook up down status lock clean

help:
	@sed -n 's/^#   //p' Makefile

setup:
	@bash scripts/setup.sh

demo: setup
	@bash scripts/demo.sh

test: setup lint
	@bash scripts/test.sh

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache --no-logo
	$(BIN)/sqlfluff lint dbt

bench: setup
	@bash scripts/bench.sh

notebook: up
	$(BIN)/pytest -q -p no:cacheprovider tests/notebooks

up: setup
	$(BIN)/vectorlake stack up

down:
	$(BIN)/vectorlake stack down

status:
	$(BIN)/vectorlake stack status

# Re-resolve constraints.txt from requirements.in (needs the package registry).
lock:
	UV_NATIVE_TLS=1 $(BIN)/uv pip compile -q requirements.in -o constraints.txt --python-version 3.11 \
		--python-platform x86_64-manylinux_2_28

# Stop the servers and delete all local state (data, logs, the lake); the venv and Maven's cache stay.
clean:
	-$(BIN)/vectorlake stack down
	rm -rf .vectorlake
