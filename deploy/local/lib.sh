# shellcheck shell=bash
# Helpers shared by kafka.sh, postgres.sh and with-infra.sh. Source it; do not run it.

TTHC_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TTHC_CACHE_DIR="${TTHC_CACHE_DIR:-$TTHC_ROOT/.cache}"
TTHC_INFRA_DIR="${TTHC_INFRA_DIR:-$TTHC_ROOT/.infra}"

log() { printf '[%s] %s\n' "${LOG_TAG:-infra}" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Seconds since the epoch with milliseconds, and the difference of two such stamps.
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# A Python 3 for the tiny stdlib helpers: the project's venv when it exists, else the system one.
python_bin() {
  if [[ -n "${PYTHON:-}" ]]; then echo "$PYTHON"
  elif [[ -x "$TTHC_ROOT/.venv/bin/python" ]]; then echo "$TTHC_ROOT/.venv/bin/python"
  elif command -v python3 >/dev/null; then command -v python3
  else die "python3 is needed"; fi
}

# True when something accepts TCP connections on 127.0.0.1:$1.
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A TCP port that is free right now on 127.0.0.1.
free_port() {
  "$(python_bin)" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Command line of a live process, or nothing.
proc_args() {
  if [[ -r "/proc/$1/cmdline" ]]; then tr '\0' ' ' <"/proc/$1/cmdline"
  else ps -p "$1" -o args= 2>/dev/null || true; fi
}

# pid_alive PID PATTERN: the process exists and its command line contains PATTERN (guards pid reuse).
pid_alive() {
  [[ -n "$1" ]] && kill -0 "$1" 2>/dev/null && [[ "$(proc_args "$1")" == *"$2"* ]]
}

# stop_pid PID PATTERN [GRACE_SECONDS]: TERM, wait, then KILL. Only ever the given pid.
stop_pid() {
  local pid="$1" pattern="$2" grace="${3:-15}" i
  pid_alive "$pid" "$pattern" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < grace * 10; i++)); do
    pid_alive "$pid" "$pattern" || return 0
    sleep 0.1
  done
  log "pid $pid still alive after ${grace}s: KILL"
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    pid_alive "$pid" "$pattern" || return 0
    sleep 0.1
  done
  die "pid $pid survived KILL"
}

# safe_rm_dir DIR MARKER: remove DIR when it is ours (holds MARKER) or empty; refuse anything else.
safe_rm_dir() {
  local dir="$1" marker="$2"
  [[ -n "$dir" && "$dir" != "/" ]] || die "refusing to remove '$dir'"
  [[ -e "$dir" ]] || return 0
  if [[ -e "$dir/$marker" ]] || [[ -z "$(ls -A "$dir" 2>/dev/null)" ]]; then
    rm -rf -- "$dir"
  else
    die "$dir exists and was not made by this script (no $marker): remove it yourself"
  fi
}

# Install Debian packages when running as root (or with sudo) on a Debian/Ubuntu machine.
apt_install() {
  local sudo=""
  [[ $EUID -eq 0 ]] || { command -v sudo >/dev/null && sudo="sudo -n"; } || die "need root to install: $*"
  command -v apt-get >/dev/null || die "no apt-get: install $* yourself"
  log "installing Debian packages: $*"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@" >&2
}
