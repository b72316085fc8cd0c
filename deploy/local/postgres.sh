#!/usr/bin/env bash
# PostgreSQL on 127.0.0.1 without Docker: throwaway for tests (fsync off, trust auth, wiped at stop), or kept
# across stop/start with PG_KEEP_DATA=1 (`make up DB=postgres` keeps it under var/postgres, fsync on).
#
#   deploy/local/postgres.sh start|stop|status
#
# Environment (all optional):
#   PG_PORT       TCP port (default 55432)
#   PG_DATA_DIR   state dir (default .infra/postgres-$PG_PORT, or /tmp/tthc-postgres-$PG_PORT when the
#                 postgres user cannot reach .infra); wiped at every start, removed at stop
#   PG_BIN        directory holding initdb and pg_ctl (default: newest /usr/lib/postgresql/*/bin, else
#                 PATH); when none is found and we are root on Debian, `apt-get install postgresql` runs
#   PG_KEEP_DATA  1: keep the databases across stop and start (durable: fsync on); 0 (default): throwaway
#   PG_INIT_SQL   SQL file run once after start as user postgres (e.g. deploy/postgres/init.sql)
#
# start prints the SQLAlchemy URL postgresql+psycopg://postgres@127.0.0.1:$PG_PORT/postgres on stdout.
set -euo pipefail
LOG_TAG=postgres
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PG_PORT="${PG_PORT:-55432}"
if [[ -z "${PG_DATA_DIR:-}" ]]; then
  PG_DATA_DIR="$TTHC_INFRA_DIR/postgres-$PG_PORT"
  # As root the server runs as `postgres`, which may not be able to reach a checkout under /root.
  mkdir -p "$TTHC_INFRA_DIR"
  if [[ $EUID -eq 0 ]] && id postgres >/dev/null 2>&1 && ! runuser -u postgres -- test -x "$TTHC_INFRA_DIR"; then
    PG_DATA_DIR="${TMPDIR:-/tmp}/tthc-postgres-$PG_PORT"
  fi
fi
MARKER=.tthc-postgres
PG_KEEP_DATA="${PG_KEEP_DATA:-0}"
URL="postgresql+psycopg://postgres@127.0.0.1:$PG_PORT/postgres"

find_bin() {
  if [[ -n "${PG_BIN:-}" ]]; then echo "$PG_BIN"; return; fi
  local d
  d="$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
  if [[ -n "$d" && -x "$d/initdb" ]]; then echo "$d"; return; fi
  if command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then dirname "$(command -v initdb)"; fi
}

ensure_bin() {
  BIN="$(find_bin)"
  if [[ -z "$BIN" ]]; then
    # Do not let the package create and start its default cluster on 5432: we only want the binaries.
    # (a drop-in read through the include_dir of postgresql-common's createcluster.conf)
    if [[ $EUID -eq 0 ]]; then
      mkdir -p /etc/postgresql-common/createcluster.d
      echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.d/tthc-no-main-cluster.conf
    fi
    apt_install postgresql
    BIN="$(find_bin)"
  fi
  [[ -n "$BIN" && -x "$BIN/pg_ctl" ]] || die "PostgreSQL binaries not found (set PG_BIN)"
}

# initdb refuses to run as root: run the server tools as the postgres user then.
as_owner() {
  if [[ $EUID -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start() {
  ensure_bin
  if [[ -f "$PG_DATA_DIR/data/postmaster.pid" ]] && as_owner "$BIN/pg_ctl" -D "$PG_DATA_DIR/data" status >/dev/null 2>&1; then
    die "already running on 127.0.0.1:$PG_PORT ($PG_DATA_DIR); stop it first"
  fi
  port_in_use "$PG_PORT" && die "port $PG_PORT is already taken by another process"
  local t0 fresh=1 durability="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  t0="$(now)"
  if [[ "$PG_KEEP_DATA" == 1 ]]; then
    durability=""
    [[ -f "$PG_DATA_DIR/data/PG_VERSION" ]] && fresh=0
  fi
  if ((fresh)); then
    safe_rm_dir "$PG_DATA_DIR" "$MARKER"
    mkdir -p "$PG_DATA_DIR"
    touch "$PG_DATA_DIR/$MARKER"
    if [[ $EUID -eq 0 ]]; then
      id postgres >/dev/null 2>&1 || die "no postgres user (is the Debian postgresql package installed?)"
      chown postgres: "$PG_DATA_DIR"
    fi
    as_owner "$BIN/initdb" -D "$PG_DATA_DIR/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-sync \
      >"$PG_DATA_DIR/initdb.log" 2>&1 || { cat "$PG_DATA_DIR/initdb.log" >&2; die "initdb failed"; }
  else
    log "reusing the databases kept in $PG_DATA_DIR"
  fi
  # Interrupted before it is ready: do not leave the server behind (it runs in a session of its own).
  trap 'log "interrupted: stopping the server"; stop; exit 130' INT TERM
  # TCP only (no Unix socket: its path length is limited and nobody here needs it).
  as_owner "$BIN/pg_ctl" -D "$PG_DATA_DIR/data" -l "$PG_DATA_DIR/postgres.log" -w -t 60 \
    -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories= $durability \
        -c max_connections=200" \
    start >/dev/null || { tail -n 30 "$PG_DATA_DIR/postgres.log" >&2 || true; die "pg_ctl start failed"; }
  if [[ -n "${PG_INIT_SQL:-}" ]] && ((fresh)); then
    "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -f "$PG_INIT_SQL" \
      >"$PG_DATA_DIR/init-sql.log" 2>&1 || { cat "$PG_DATA_DIR/init-sql.log" >&2; stop; die "$PG_INIT_SQL failed"; }
  fi
  trap - INT TERM
  log "PostgreSQL $("$BIN/pg_ctl" --version | awk '{print $3}') ready on 127.0.0.1:$PG_PORT in $(elapsed "$t0" "$(now)")s"
  echo "$URL"
}

stop() {
  ensure_bin
  if [[ -f "$PG_DATA_DIR/data/postmaster.pid" ]]; then
    # Throwaway data: no need for a clean shutdown. Kept data: a clean one (a checkpoint, no recovery).
    local mode=immediate
    [[ "$PG_KEEP_DATA" == 1 ]] && mode=fast
    if ! as_owner "$BIN/pg_ctl" -D "$PG_DATA_DIR/data" -m "$mode" -w -t 30 stop >/dev/null 2>&1; then
      # pg_ctl failed (e.g. binaries changed): fall back to the postmaster's own pid.
      local pid
      pid="$(head -n 1 "$PG_DATA_DIR/data/postmaster.pid" 2>/dev/null || true)"
      stop_pid "$pid" "postgres" 10
    fi
    log "stopped 127.0.0.1:$PG_PORT"
  else
    log "not running on 127.0.0.1:$PG_PORT"
  fi
  if [[ "$PG_KEEP_DATA" != 1 ]]; then safe_rm_dir "$PG_DATA_DIR" "$MARKER"; fi
}

status() {
  ensure_bin
  if [[ -f "$PG_DATA_DIR/data/postmaster.pid" ]] && as_owner "$BIN/pg_ctl" -D "$PG_DATA_DIR/data" status >/dev/null 2>&1; then
    echo "running: $URL"
  else
    echo "stopped (127.0.0.1:$PG_PORT)"; return 3
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
