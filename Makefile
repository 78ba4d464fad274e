# kubetasks: `make run` starts the whole stack locally, `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Installed editable beside the lock: the task SDK and the built-in tasks (workers find the
# built-ins by entry point) and the API's Python client.
EDITABLE := packages/kubetasks packages/kubetasks-builtins client
# A change to the editable packages (one more, a new entry point) makes a new stamp, so an
# existing .venv gets it.
STAMP := $(VENV)/.installed-$(shell cat requirements/dev.txt $(addsuffix /pyproject.toml,$(EDITABLE)) | sha256sum | cut -c1-12)
CHART_TEST_DEPS :=

-include mk/*.mk

.PHONY: help venv run test soak lint format lock clean

help:
	@echo "make run    start Redis, API (:8000), worker and Flower (:5555); Ctrl-C stops, twice kills"
	@echo "make test   lint, type-check and run the whole test suite"
	@echo "make lint   ruff and mypy only"
	@echo "make soak   20,000 tasks, workflows, a schedule; workers, scheduler, Redis killed (not in make test)"
	@echo "make bench  the benchmarks of docs/benchmarks.md"
	@echo "make lock   re-resolve requirements/*.in into the hash-pinned lock files"

$(STAMP): requirements/dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements/dev.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation $(addprefix -e ,$(EDITABLE))
	rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP)

run: venv
	$(BIN)/python -m devstack

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The record scripts' own tests take seconds: they run first, and a failure stops there. The
# rest runs in two processes, a test file in one of them: most tests wait on real processes
# (shutdowns, heartbeat ages, image builds) rather than use a core, and every stack has its own
# Redis and free ports; two processes halve the suite's time on two cores.
# The slowest tests are listed at the end, for whoever trims the suite's time next.
test: lint $(CHART_TEST_DEPS)
	$(BIN)/python -m pytest tests/scripts
	$(BIN)/python -m pytest -n 2 --dist loadfile --durations=15 --ignore=tests/scripts

# 20,000 mixed tasks with workers killed and Redis restarted (SOAK_TASKS=... to change).
soak: venv
	SOAK_REPORT=.run/soak.json $(BIN)/python -m pytest -m soak -s -p no:cacheprovider tests/soak

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

lock: venv
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip compile --quiet --python-version 3.11 --generate-hashes \
	  requirements/dev.in -o requirements/dev.txt
	for image in api worker build; do \
	  $(BIN)/uv pip compile --quiet --python-version 3.11 --generate-hashes \
	    -c requirements/dev.txt requirements/$$image.in -o requirements/$$image.txt; \
	done

clean:
	rm -rf .run .pytest_cache .mypy_cache .ruff_cache
