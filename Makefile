# stratopt: every target installs what it needs (Python venv, Go plugins, npm packages).
SHELL := /bin/bash
PY_VERSION ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PATH := $(CURDIR)/$(VENV)/bin:$(CURDIR)/.bin:$(PATH)

.PHONY: install serve test test-fast lint generate check-generated breaking bench bench-optimize bench-live clean js-deps fuzz web load

$(STAMP): pyproject.toml
	test -x $(PY) || $(PY_VERSION) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

js-deps:
	cd generated/js && npm ci --no-audit --no-fund --loglevel=error
	cd examples/js && npm ci --no-audit --no-fund --loglevel=error

## The web console (web/ -> web/dist, served at / by the gateway): rebuilt when its sources change.
WEB_SOURCES := $(shell find web/src -type f 2>/dev/null) web/index.html web/vite.config.ts web/tsconfig.json web/package-lock.json $(wildcard generated/js/src/*/*/*.js)
web/node_modules/.installed: web/package-lock.json generated/js/package.json
	cd web && npm ci --no-audit --no-fund --loglevel=error
	touch $@

web/dist/index.html: web/node_modules/.installed $(WEB_SOURCES)
	cd web && npm run --silent build

web: web/dist/index.html

## Start the service with embedded defaults: SQLite + sample data under ./var, Envoy REST/gRPC-Web gateway.
serve: install web
	$(VENV)/bin/stratopt serve --dev --gateway

## Regenerate the Envoy descriptor and the Python/Go/JS stubs from protos/.
generate: install
	bash scripts/generate.sh

## Fail when the committed stubs differ from what `make generate` writes.
check-generated: generate
	@git add -N generated deploy/envoy src/stratopt/server/envoy src/stratopt/server/docs third_party >/dev/null 2>&1 || true
	@git diff --exit-code --stat -- generated deploy/envoy src/stratopt/server/envoy src/stratopt/server/docs third_party || (echo "generated code is stale: run make generate" && exit 1)

## buf breaking against main (skipped until main has protos).
breaking: install
	@if git rev-parse --verify -q main:protos >/dev/null; then \
	  buf breaking protos --against '.git#branch=main,subdir=protos'; \
	else echo "main has no protos yet: skipping buf breaking"; fi

lint: install web/node_modules/.installed
	buf lint protos
	buf format -d --exit-code protos
	$(VENV)/bin/ruff check src tests bench examples/python
	$(VENV)/bin/ruff format --check src tests bench examples/python
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	cd web && npm run --silent check

## The whole suite: lint, contract drift, unit + integration + Go/JS client + Envoy e2e tests.
test: install check-generated lint js-deps web
	$(PY) -m pytest -q -p no:cacheprovider -n 2 --dist loadfile --durations=30

test-fast: install
	$(PY) -m pytest -q -m "not slow and not client and not e2e and not postgres"

bench: install
	$(PY) -m pip install -q -e '.[bench]' || echo "peers unavailable: benchmarking stratopt alone"
	$(PY) bench/bench_backtest.py
	$(PY) bench/bench_data.py
	$(PY) bench/bench_rules.py

bench-optimize: install
	$(PY) -m pip install -q -e '.[bench]' || echo "peers unavailable"
	$(PY) bench/bench_optimize.py

## Paper trading over gRPC: signal latency of 100 strategies on one replay, fan-out to 1,000 subscribers.
bench-live: install
	$(PY) bench/bench_live.py

## Load test of a real server (Go load generator, Envoy, 1/2/4 processes); not part of `make test`.
load: install
	$(PY) bench/load.py

## Long fuzzing of every RPC's request (a few examples per RPC already run in `make test`).
fuzz: install
	STRATOPT_FUZZ_EXAMPLES=300 STRATOPT_FUZZ_RANDOM=1 $(PY) -m pytest -q -p no:cacheprovider tests/integration/test_fuzz.py

clean:
	rm -rf build var web/dist .pytest_cache .mypy_cache .ruff_cache .import_linter_cache .grimp_cache
