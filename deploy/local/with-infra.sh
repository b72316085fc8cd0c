#!/usr/bin/env bash
# Run a command against a throwaway Kafka broker and PostgreSQL server, then stop both whatever happens.
#
#   deploy/local/with-infra.sh CMD [ARGS...]      e.g. deploy/local/with-infra.sh .venv/bin/pytest tests
#
# Starts PostgreSQL on 127.0.0.1:$TTHC_TEST_PG_PORT (default 55432) and Kafka on
# 127.0.0.1:$TTHC_TEST_KAFKA_PORT (default 39092), exports for CMD
#   KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:39092
#   TTHC_TEST_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:55432/postgres   (and DATABASE_URL, same)
# runs CMD, stops both (trap on EXIT, INT, TERM) and exits with CMD's exit code (1 if the services
# could not be started, in which case CMD does not run).
#
# A service whose variable is already set in the environment (KAFKA_BOOTSTRAP_SERVERS,
# TTHC_TEST_DATABASE_URL) is used as given and not started: handy on CI systems that provide them.
set -euo pipefail
LOG_TAG=with-infra
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$HERE/lib.sh"

[[ $# -gt 0 ]] || { echo "usage: $0 CMD [ARGS...]" >&2; exit 2; }

kafka_port="${TTHC_TEST_KAFKA_PORT:-39092}"
pg_port="${TTHC_TEST_PG_PORT:-55432}"
# Data dirs follow the ports; never inherit a developer's KAFKA_DATA_DIR / PG_DATA_DIR here.
unset KAFKA_DATA_DIR PG_DATA_DIR KAFKA_CONTROLLER_PORT
kafka() { KAFKA_PORT="$kafka_port" "$HERE/kafka.sh" "$@"; }
postgres() { PG_PORT="$pg_port" "$HERE/postgres.sh" "$@"; }

started_kafka=0
started_pg=0
# shellcheck disable=SC2317  # called through the trap
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if ((started_kafka)); then kafka stop || rc=$((rc ? rc : 1)); fi
  if ((started_pg)); then postgres stop || rc=$((rc ? rc : 1)); fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ -z "${TTHC_TEST_DATABASE_URL:-}" ]]; then
  TTHC_TEST_DATABASE_URL="$(postgres start)"
  started_pg=1
else
  log "using TTHC_TEST_DATABASE_URL from the environment"
fi
if [[ -z "${KAFKA_BOOTSTRAP_SERVERS:-}" ]]; then
  KAFKA_BOOTSTRAP_SERVERS="$(kafka start)"
  started_kafka=1
else
  log "using KAFKA_BOOTSTRAP_SERVERS from the environment"
fi
export KAFKA_BOOTSTRAP_SERVERS TTHC_TEST_DATABASE_URL
export DATABASE_URL="$TTHC_TEST_DATABASE_URL"
log "KAFKA_BOOTSTRAP_SERVERS=$KAFKA_BOOTSTRAP_SERVERS TTHC_TEST_DATABASE_URL=$TTHC_TEST_DATABASE_URL"
log "running: $*"

# CMD runs in the foreground: it keeps the terminal, standard input and Ctrl-C. (A background child of
# a non-interactive shell would ignore SIGINT.) A signal sent to this script alone takes effect when CMD
# ends; the services are stopped then.
set +e
"$@"
cmd_rc=$?
set -e
log "command exited with $cmd_rc"
exit "$cmd_rc"
