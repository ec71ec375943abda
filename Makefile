# The two commands a new user needs: `make run` and `make test`. Everything else is a building block.
SHELL := /bin/bash
PY := .venv/bin/python
STAMP := .venv/.installed

export APP_ENV ?= dev
export PG_PORT ?= 5433
export KAFKA_PORT ?= 9092
export KAFKA_CONTROLLER_PORT ?= 9093
export API_PORT ?= 8080
export DATABASE_URL ?= postgresql://postgres:ingest@127.0.0.1:$(PG_PORT)/ingestion
export KAFKA_BOOTSTRAP_SERVERS ?= 127.0.0.1:$(KAFKA_PORT)
export BOOTSTRAP_API_KEY ?= dev-admin-key
# SQLite and DuckDB integrations may only name files under this directory.
export FILE_SOURCES_ROOT ?= $(CURDIR)/.local/files

# Tests get their own broker, server and ports, so they never touch a running `make run`
# (override TEST_*_PORT to run two suites side by side, e.g. from two checkouts).
TEST_PG_PORT ?= 15433
TEST_KAFKA_PORT ?= 19092
# $(call servers,state dir,PostgreSQL port,Kafka port): the environment of a local PostgreSQL and Kafka of their own.
# The broker's controller listens on the port after Kafka's, and a SASL_PLAINTEXT listener on the one after that, so
# the suite connects the way a managed Kafka is reached.
servers = STATE_DIR=$(1) PG_PORT=$(2) KAFKA_PORT=$(3) KAFKA_CONTROLLER_PORT=$(shell expr $(3) + 1) \
	KAFKA_SASL_PORT=$(shell expr $(3) + 2) KAFKA_SASL_USERS=sasl-test:sasl-test-secret \
	DATABASE_URL=postgresql://postgres:ingest@127.0.0.1:$(2)/ingestion_test \
	KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$(3) APP_ENV=test
# The source engines the platform tests crawl (infra/engines.sh), on ports of their own (TEST_*_PORT as above).
TEST_MARIADB_PORT ?= 13306
TEST_TRINO_PORT ?= 18080
TEST_TRINO_HTTPS_PORT ?= 18443
TEST_FAKESNOW_PORT ?= 18085
TEST_BQEMULATOR_PORT ?= 19050
TEST_MOTO_PORT ?= 15000
TEST_ENGINES := MARIADB_PORT=$(TEST_MARIADB_PORT) TRINO_PORT=$(TEST_TRINO_PORT) \
	TRINO_HTTPS_PORT=$(TEST_TRINO_HTTPS_PORT) FAKESNOW_PORT=$(TEST_FAKESNOW_PORT) \
	BQEMULATOR_PORT=$(TEST_BQEMULATOR_PORT) MOTO_PORT=$(TEST_MOTO_PORT)
TEST_ENV := $(call servers,.local/test,$(TEST_PG_PORT),$(TEST_KAFKA_PORT)) $(TEST_ENGINES) \
	FILE_SOURCES_ROOT=$(CURDIR)/.local/test/files

.PHONY: install run stop infra-up infra-down migrate rebuild test test-unit lint bench clean

install: $(STAMP)
$(STAMP): pyproject.toml
	@command -v python3 >/dev/null || { echo "python3 (3.11+) is required"; exit 1; }
	@test -d .venv || python3 -m venv .venv
	@$(PY) -m pip install -q --upgrade pip
	@$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

infra-up: install
	@STATE_DIR=.local/dev bash infra/local.sh up

infra-down:
	@STATE_DIR=.local/dev bash infra/local.sh down

migrate: infra-up
	@.venv/bin/icp migrate

## run: install, start Kafka + Postgres, migrate, start api/scheduler/connector/projector (Ctrl-C stops all)
run: migrate
	@mkdir -p "$(FILE_SOURCES_ROOT)"
	@bash infra/run_services.sh

## stop: stop the services and the local Kafka and Postgres
stop:
	@bash infra/run_services.sh stop || true
	@STATE_DIR=.local/dev bash infra/local.sh down

## rebuild: recompute the read models (runs, assets) from the run log
rebuild: install
	@.venv/bin/icp rebuild

## test: the whole suite (unit, integration, e2e) against a real Kafka broker and PostgreSQL server
test: install
	@$(TEST_ENV) bash infra/local.sh up
	@$(TEST_ENV) bash infra/engines.sh up
	@$(TEST_ENV) $(PY) -m pytest -q $(PYTEST_ARGS); status=$$?; \
	  $(TEST_ENV) bash infra/engines.sh down; $(TEST_ENV) bash infra/local.sh down; exit $$status

test-unit: install
	@$(PY) -m pytest -q tests/unit

lint: install
	@$(PY) -m ruff check . && $(PY) -m ruff format --check . && $(PY) -m mypy

# What `make bench` measures (e.g. `make bench TABLES=2000` for one catalog size; BENCH_MODULES picks scenarios,
# run in this order by `python -m tests.bench`, each in its own process, with a summary of every figure at the end).
TABLES ?= 2000 20000
FLEET ?= 200x100
LOAD_RATE ?= 500
LOAD_SECONDS ?= 60
BENCH_MODULES ?= catalog_bench platform_bench fleet_bench load_bench import_bench rebuild_bench
REBUILD_EVENTS ?= 1000000
# Benchmarks get servers of their own: the gigabytes of their crawls must not slow down the suite's topics.
BENCH_PG_PORT ?= 16433
BENCH_KAFKA_PORT ?= 19192
# platform_bench crawls MariaDB and Trino (infra/engines.sh), on ports of their own too.
BENCH_MARIADB_PORT ?= 13307
BENCH_TRINO_PORT ?= 18081
BENCH_TRINO_HTTPS_PORT ?= 18444
BENCH_SERVERS := $(call servers,.local/bench,$(BENCH_PG_PORT),$(BENCH_KAFKA_PORT)) ENGINES="mariadb trino" \
	MARIADB_PORT=$(BENCH_MARIADB_PORT) TRINO_PORT=$(BENCH_TRINO_PORT) TRINO_HTTPS_PORT=$(BENCH_TRINO_HTTPS_PORT)
BENCH_ENGINES := $(if $(filter platform_bench,$(BENCH_MODULES)),yes)
BENCH_ENV := BENCH_TABLES="$(TABLES)" BENCH_FLEET=$(FLEET) BENCH_LOAD_RATE=$(LOAD_RATE) BENCH_LOAD_SECONDS=$(LOAD_SECONDS) \
	BENCH_REBUILD_EVENTS=$(REBUILD_EVENTS)

## bench: figures vs their targets: catalogs of TABLES tables (time, RSS), MariaDB and Trino at 2,000 tables, FLEET runs at once, the API at LOAD_RATE/s during a crawl, a JSONL import, rebuild of REBUILD_EVENTS
bench: install
	@$(BENCH_SERVERS) bash infra/local.sh up
	@if [ -n "$(BENCH_ENGINES)" ]; then $(BENCH_SERVERS) bash infra/engines.sh up; fi
	@$(BENCH_SERVERS) $(BENCH_ENV) $(PY) -m tests.bench $(BENCH_MODULES); status=$$?; \
	  if [ -n "$(BENCH_ENGINES)" ]; then $(BENCH_SERVERS) bash infra/engines.sh down; fi; \
	  $(BENCH_SERVERS) bash infra/local.sh down; exit $$status

clean: stop
	rm -rf .local
