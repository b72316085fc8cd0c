# Local Kafka + PostgreSQL without Docker. Included by the root Makefile (`include deploy/local/infra.mk`).
#
#   make infra-up        Kafka on 127.0.0.1:$(KAFKA_PORT) and PostgreSQL on 127.0.0.1:$(PG_PORT), with the
#                        four service databases of deploy/postgres/init.sql; writes $(INFRA_ENV_FILE)
#   make infra-down      stops both and wipes their data; removes $(INFRA_ENV_FILE)
#   make infra-status
#   make kafka-up / kafka-down / pg-up / pg-down       one of the two
#
# The -up targets do nothing when the service already runs on that port. Data is throwaway: every start
# is fresh and every stop deletes it (state under .infra/, downloaded jars under .cache/).
#
# Make variables (override on the command line or in the environment):
#   KAFKA_PORT (9092), PG_PORT (55432), KAFKA_VERSION (4.1.2), KAFKA_NUM_PARTITIONS (4),
#   INFRA_ENV_FILE (.infra/env)
#
# $(INFRA_ENV_FILE), for `source .infra/env` in a shell (also readable by python-dotenv), exports:
#   KAFKA_BOOTSTRAP_SERVERS = 127.0.0.1:$(KAFKA_PORT)
#   DATABASE_URL, TTHC_TEST_DATABASE_URL = postgresql+psycopg://postgres@127.0.0.1:$(PG_PORT)/postgres
#   INTAKE_DATABASE_URL, DEADLINE_DATABASE_URL, APOLOGY_DATABASE_URL, METRICS_DATABASE_URL
#                         = postgresql+psycopg://<name>:<name>@127.0.0.1:$(PG_PORT)/<name>
# The same assignments are in the make variable $(INFRA_ENV), to prefix a recipe's command:
#   run-deadline: ; $(INFRA_ENV) .venv/bin/python -m tthc_deadline
#
# For tests prefer $(WITH_INFRA) CMD: it starts its own Kafka (39092) and PostgreSQL (55432) just for CMD,
# exports KAFKA_BOOTSTRAP_SERVERS, TTHC_TEST_DATABASE_URL and DATABASE_URL, stops both whatever CMD's
# exit code, and exits with it:
#   test: ; $(WITH_INFRA) .venv/bin/pytest
# (its ports: TTHC_TEST_KAFKA_PORT, TTHC_TEST_PG_PORT). Note its PostgreSQL port equals the default
# PG_PORT: stop `make infra-up`'s server first, or run it with another PG_PORT.

INFRA_MK_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
INFRA_ROOT := $(abspath $(INFRA_MK_DIR)/../..)

KAFKA_PORT ?= 9092
PG_PORT ?= 55432
KAFKA_VERSION ?= 4.1.2
KAFKA_NUM_PARTITIONS ?= 4
INFRA_ENV_FILE ?= $(INFRA_ROOT)/.infra/env

WITH_INFRA := $(INFRA_MK_DIR)/with-infra.sh
INFRA_KAFKA := KAFKA_PORT=$(KAFKA_PORT) KAFKA_VERSION=$(KAFKA_VERSION) KAFKA_NUM_PARTITIONS=$(KAFKA_NUM_PARTITIONS) $(INFRA_MK_DIR)/kafka.sh
INFRA_PG := PG_PORT=$(PG_PORT) PG_INIT_SQL=$(INFRA_ROOT)/deploy/postgres/init.sql $(INFRA_MK_DIR)/postgres.sh

infra_pg_url = postgresql+psycopg://$(1)@127.0.0.1:$(PG_PORT)/$(2)
INFRA_ENV := KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$(KAFKA_PORT) \
	DATABASE_URL=$(call infra_pg_url,postgres,postgres) \
	TTHC_TEST_DATABASE_URL=$(call infra_pg_url,postgres,postgres) \
	INTAKE_DATABASE_URL=$(call infra_pg_url,intake:intake,intake) \
	DEADLINE_DATABASE_URL=$(call infra_pg_url,deadline:deadline,deadline) \
	APOLOGY_DATABASE_URL=$(call infra_pg_url,apology:apology,apology) \
	METRICS_DATABASE_URL=$(call infra_pg_url,metrics:metrics,metrics)

.PHONY: infra-up infra-down infra-status infra-env kafka-up kafka-down pg-up pg-down

infra-up: pg-up kafka-up infra-env
	@echo "infra up: source $(INFRA_ENV_FILE)"

infra-down: kafka-down pg-down
	@rm -f $(INFRA_ENV_FILE)

infra-status:
	-@$(INFRA_KAFKA) status
	-@$(INFRA_PG) status

infra-env:
	@mkdir -p $(dir $(INFRA_ENV_FILE))
	@printf 'export %s\n' $(INFRA_ENV) > $(INFRA_ENV_FILE)

kafka-up:
	@$(INFRA_KAFKA) status >/dev/null 2>&1 || $(INFRA_KAFKA) start >/dev/null

kafka-down:
	@$(INFRA_KAFKA) stop

pg-up:
	@$(INFRA_PG) status >/dev/null 2>&1 || $(INFRA_PG) start >/dev/null

pg-down:
	@$(INFRA_PG) stop
