# The two set-up commands are `make demo` and `make test`; both install what is missing first.
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV_VERSION := 0.13.9
UV := .tools/bin/uv
PY := .venv/bin/python
export UV_PYTHON_DOWNLOADS := never
# Ports of the throwaway Kafka that `make demo` and `make bench` start for themselves.
DEMO_KAFKA_PORT ?= 39500
BENCH_KAFKA_PORT ?= 39600

include deploy/local/infra.mk
include deploy/local/tools.mk
include deploy/local/browser.mk
include deploy/local/office.mk

.PHONY: help install test demo bench up down status schemas replay-examples

help:
	@echo "make demo    install, start Kafka and the four services, post a day of dossiers, print the figures, stop"
	@echo "make test    install, start Kafka and PostgreSQL, run the whole test suite, stop them"
	@echo "make up      keep Kafka and the four services running (SQLite); make down stops them"
	@echo "make bench   events per second through the real pipeline vs a bare Kafka consumer"
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
	@KAFKA_PORT=$(DEMO_KAFKA_PORT) deploy/local/kafka.sh start && \
	trap 'KAFKA_PORT=$(DEMO_KAFKA_PORT) deploy/local/kafka.sh stop >/dev/null' EXIT && \
	KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$(DEMO_KAFKA_PORT) $(PY) deploy/local/demo.py

bench: install
	@KAFKA_PORT=$(BENCH_KAFKA_PORT) deploy/local/kafka.sh start && \
	trap 'KAFKA_PORT=$(BENCH_KAFKA_PORT) deploy/local/kafka.sh stop >/dev/null' EXIT && \
	KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$(BENCH_KAFKA_PORT) $(PY) deploy/local/bench.py && \
	$(PY) services/deadline/bench/bench_due_dates.py

up: install kafka-up
	KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$(KAFKA_PORT) $(PY) deploy/local/stack.py up

down:
	-$(PY) deploy/local/stack.py down
	$(MAKE) kafka-down

status:
	-$(PY) deploy/local/stack.py status
	-@$(MAKE) --no-print-directory infra-status

# The JSON Schema of every event, committed under packages/contracts/src/tthc_contracts/schemas/.
schemas: install
	$(PY) -m tthc_contracts.schema

# The spec's worked examples through `tthc replay`, outputs under out/examples/.
replay-examples: install
	@for d in ../shared/spec/examples/*/; do n=$$(basename $$d); \
	  args=$$(grep -o -- '--until [^ ]* --from [^ ]* --to [^ ]*' $$d/README.md); \
	  .venv/bin/tthc replay --events $$d/events.jsonl $$args --out out/examples/$$n; done
