# The two set-up commands are `make demo` and `make test`; both install what is missing first.
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV_VERSION := 0.13.9
UV := .tools/bin/uv
PY := .venv/bin/python
export UV_PYTHON_DOWNLOADS := never
# `make demo` and `make bench` start a throwaway Kafka of their own on a port free at the time (and their
# services on free ports too): they never take a port something else is using.
FREE_PORT = $$($(PY) -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

include deploy/local/infra.mk
include deploy/local/tools.mk
include deploy/local/browser.mk
include deploy/local/office.mk

.PHONY: help install test demo bench bench-scale up down status wipe schemas replay-examples

help:
	@echo "make demo    install, start Kafka and the four services, post a day of dossiers, print the figures, stop"
	@echo "make test    install, start Kafka and PostgreSQL, run the whole test suite, stop them"
	@echo "make up      keep Kafka and the four services running, data kept under var/ (DB=postgres for"
	@echo "             PostgreSQL); make down stops them, make status shows them, make wipe deletes var/"
	@echo "make bench   events per second through the real pipeline vs a bare Kafka consumer"
	@echo "make bench-scale  a province's year (BENCH_DOSSIERS, 100000) through the services, SQLite and PostgreSQL"
	@echo "make dashboards  rebuild the Grafana dashboards and recording rules; make rules-test runs promtool"

$(UV):
	python3 -m venv .tools
	.tools/bin/pip install -q "uv==$(UV_VERSION)"

# The workspace environment at .venv/ (so .venv/bin/tthc exists), exactly as uv.lock says.
install: $(UV)
	$(UV) sync --all-packages --locked --quiet

# `tools` (promtool, prometheus), `browser` (Debian's chromium, fonts) and `office` (LibreOffice Writer,
# pdftotext: the letters' PDF) install only what is missing.
test: install tools browser office
	$(WITH_INFRA) $(PY) -m pytest

demo: install
	@port=$(FREE_PORT) && KAFKA_PORT=$$port deploy/local/kafka.sh start >/dev/null && \
	trap "KAFKA_PORT=$$port deploy/local/kafka.sh stop >/dev/null 2>&1" EXIT && \
	KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$$port $(PY) deploy/local/demo.py

bench: install
	@port=$(FREE_PORT) && KAFKA_PORT=$$port deploy/local/kafka.sh start >/dev/null && \
	trap "KAFKA_PORT=$$port deploy/local/kafka.sh stop >/dev/null 2>&1" EXIT && \
	KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$$port $(PY) deploy/local/bench.py && \
	$(PY) services/deadline/bench/bench_due_dates.py

# `make up` keeps its data under var/ (Kafka's topics in var/kafka, the services' SQLite databases, or
# PostgreSQL in var/postgres with DB=postgres) across `make down` / `make up` and broker restarts.
# `make wipe` deletes it. Tests, `make demo` and `make bench` use throwaway data of their own.
# (VAR and PORT_BASE move all of it elsewhere: services on PORT_BASE+1..+4.)
DB ?= sqlite
VAR ?= $(CURDIR)/var
PORT_BASE ?= 8000
UP_KAFKA := KAFKA_PORT=$(KAFKA_PORT) KAFKA_DATA_DIR=$(VAR)/kafka KAFKA_KEEP_DATA=1 deploy/local/kafka.sh
UP_PG := PG_PORT=$(PG_PORT) PG_DATA_DIR=$(VAR)/postgres PG_KEEP_DATA=1 \
	PG_INIT_SQL=$(CURDIR)/deploy/postgres/init.sql deploy/local/postgres.sh
UP_ENV := KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$(KAFKA_PORT) $(if $(filter postgres,$(DB)),$(INFRA_ENV))

# A province's year through the running services: BACKFILL / REFRESH / REPORT / RSS lines, on SQLite and on
# PostgreSQL (BENCH_DOSSIERS, default 100000; BENCH_SCALE_ARGS for more, e.g. --check).
bench-scale: install
	@kport=$(FREE_PORT) && pport=$(FREE_PORT) && KAFKA_PORT=$$kport deploy/local/kafka.sh start >/dev/null && \
	trap "KAFKA_PORT=$$kport deploy/local/kafka.sh stop >/dev/null 2>&1; PG_PORT=$$pport deploy/local/postgres.sh stop >/dev/null 2>&1" EXIT && \
	pg=$$(PG_PORT=$$pport deploy/local/postgres.sh start) && \
	KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$$kport TTHC_TEST_DATABASE_URL=$$pg $(PY) deploy/local/bench_scale.py $(BENCH_SCALE_ARGS)

up: install
	@$(UP_KAFKA) status >/dev/null 2>&1 || $(UP_KAFKA) start >/dev/null
	@$(if $(filter postgres,$(DB)),$(UP_PG) status >/dev/null 2>&1 || $(UP_PG) start >/dev/null)
	$(UP_ENV) $(PY) deploy/local/stack.py up --var $(VAR) --port-base $(PORT_BASE)

down:
	@$(PY) deploy/local/stack.py down --var $(VAR)
	@$(UP_KAFKA) stop
	@if [ -d $(VAR)/postgres ]; then $(UP_PG) stop; fi

status:
	@$(PY) deploy/local/stack.py status --var $(VAR) || true
	@$(UP_KAFKA) status || true
	@if [ -d $(VAR)/postgres ]; then $(UP_PG) status || true; fi

wipe: down
	rm -rf $(VAR)

# The JSON Schema of every event, committed under packages/contracts/src/tthc_contracts/schemas/.
schemas: install
	$(PY) -m tthc_contracts.schema

# The spec's worked examples through `tthc replay`, outputs under out/examples/.
replay-examples: install
	@for d in ../shared/spec/examples/*/; do n=$$(basename $$d); \
	  args=$$(grep -o -- '--until [^ ]* --from [^ ]* --to [^ ]*' $$d/README.md); \
	  .venv/bin/tthc replay --events $$d/events.jsonl $$args --out out/examples/$$n; done
