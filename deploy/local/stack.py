#!/usr/bin/env python3
"""The four services on this machine, as subprocesses: intake, deadline, apology, metrics.

    python deploy/local/stack.py up [--kafka 127.0.0.1:9092] [--topic-prefix P] [--var DIR] [--port-base 8000]
    python deploy/local/stack.py status [--var DIR]
    python deploy/local/stack.py down [--var DIR]

Kafka must be running (`deploy/local/kafka.sh start`, or `make demo`, which starts it). Each service is
`.venv/bin/python -m tthc_<name>`, configured through its environment:

    KAFKA_BOOTSTRAP_SERVERS, TTHC_TOPIC_PREFIX          shared
    <NAME>_DATABASE_URL   default sqlite:///<var>/<name>.db  (PostgreSQL when given a postgresql+psycopg:// URL)
    <NAME>_HTTP_PORT      intake 8001, deadline 8002, apology 8003, metrics 8004
    <NAME>_CONSUMER_GROUP <prefix>tthc-<name> when a topic prefix is set (stacks sharing a broker stay apart)
    INTAKE_SOURCE_KEYS    <source>=sha256:<digest of a key generated here>
    APOLOGY_OFFICER_KEYS  <agency code>=sha256:<digest>, one generated key per agency
    APOLOGY_DOCUMENTS_DIR <var>/apologies

Logs go to <var>/log/<name>.log, pid files to <var>/run/<name>.pid, and the generated keys (plain, for
the demo's client side; the services only ever see their SHA-256 digests) to <var>/run/keys.json
(mode 600). `up` waits until every /readyz answers 200, or prints the log tail and fails.

From Python (end-to-end tests, demo, bench):

    stack = Stack(kafka_bootstrap="127.0.0.1:39300", topic_prefix="t-1a2b.", var_dir=tmp_path,
                  database_urls={"deadline": pg_url}, ports={...})
    stack.start(); stack.url("intake"); stack.intake_key; stack.restart("deadline"); stack.kill("apology"); stack.stop()
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from tthc_common.keys import hash_key

ROOT = Path(__file__).resolve().parents[2]
SERVICES: dict[str, int] = {"intake": 8001, "deadline": 8002, "apology": 8003, "metrics": 8004}
DEFAULT_SOURCE = "motcua-lang-son"
DEFAULT_KAFKA = "127.0.0.1:9092"


class StackError(RuntimeError):
    """A service did not start, did not become ready, or could not be stopped."""


# Intake takes events up to 15 minutes ahead of its clock (events.md, Bounds; INTAKE_MAX_EVENT_LEAD_S).
INTAKE_DEFAULT_LEAD_S = 15 * 60


def intake_lead_for(last_occurred_at: Any) -> dict[str, str]:
    """The intake setting that lets it take simulated events up to `last_occurred_at` (an aware datetime), or
    nothing when they all lie within the default lead of now (a simulated past day needs nothing)."""
    import datetime as dt

    ahead_s = (last_occurred_at - dt.datetime.now(dt.UTC)).total_seconds()
    if ahead_s <= INTAKE_DEFAULT_LEAD_S - 60:
        return {}
    return {"INTAKE_MAX_EVENT_LEAD_S": str(int(ahead_s) + 3600)}


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path.resolve()}"


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _module(name: str) -> str:
    return f"tthc_{name}"


def pid_is_service(pid: int, name: str) -> bool:
    """The pid is alive and still runs `-m tthc_<name>` (guards against a recycled pid)."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    cmd = _cmdline(pid)
    if not cmd:  # no /proc (not Linux): trust the pid file
        return True
    if f"-m {_module(name)}" not in cmd:
        return False
    try:  # a zombie (exited, not yet reaped by its parent) is not running
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][:1] != "Z"
    except (OSError, IndexError):
        return True


def free_ports(n: int) -> list[int]:
    """`n` distinct TCP ports free on 127.0.0.1 right now (held together while chosen)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def service_ports(port_base: int | None) -> dict[str, int]:
    """intake, deadline, apology, metrics on BASE+1..BASE+4, or on free ports chosen now (None)."""
    if port_base is None:
        return dict(zip(SERVICES, free_ports(len(SERVICES))))
    return {name: port_base + i for i, name in enumerate(SERVICES, start=1)}


def port_in_use(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def http_status(url: str, timeout: float = 2.0) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return None


@dataclass
class Keys:
    """The plain keys the stack generated: the intake source key and one officer key per agency."""

    source: str
    intake_key: str
    officer_keys: dict[str, str]

    @classmethod
    def generate(cls, source: str, agencies: Iterable[str]) -> Keys:
        return cls(source, "intake-" + secrets.token_urlsafe(24),
                   {code: "officer-" + secrets.token_urlsafe(24) for code in agencies})

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"source": self.source, "intake_key": self.intake_key, "officer_keys": self.officer_keys},
                      f, ensure_ascii=False, indent=2)

    @classmethod
    def load(cls, path: Path) -> Keys:
        d = json.loads(path.read_text(encoding="utf-8"))
        return cls(d["source"], d["intake_key"], d["officer_keys"])


def default_officer_agencies() -> list[str]:
    """Every agency the simulator names (tthc_sim's catalogue), so the demo can read all apologies."""
    try:
        from tthc_sim.catalogue import all_agencies
    except ImportError:  # the stack does not need the simulator; only the demo's officer keys do
        return ["000.00.12.H10"]
    return sorted(all_agencies())


class Stack:
    """Starts, watches and stops the services as subprocesses of this process (or, from the CLI, by pid file)."""

    def __init__(
        self,
        *,
        kafka_bootstrap: str | None = None,
        topic_prefix: str | None = None,
        var_dir: Path | str | None = None,
        database_urls: Mapping[str, str] | None = None,
        ports: Mapping[str, int] | None = None,
        services: Iterable[str] = tuple(SERVICES),
        source: str = DEFAULT_SOURCE,
        officer_agencies: Iterable[str] | None = None,
        extra_env: Mapping[str, str] | None = None,
        service_env: Mapping[str, Mapping[str, str]] | None = None,
        python: Path | str | None = None,
        ready_timeout_s: float = 90.0,
        stop_grace_s: float = 15.0,
        keys: Keys | None = None,
    ):
        self.root = ROOT
        self.kafka_bootstrap = kafka_bootstrap or os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or DEFAULT_KAFKA
        self.topic_prefix = topic_prefix if topic_prefix is not None else os.environ.get("TTHC_TOPIC_PREFIX", "")
        self.var_dir = Path(var_dir) if var_dir is not None else ROOT / "var"
        if not self.var_dir.is_absolute():
            self.var_dir = (Path.cwd() / self.var_dir).resolve()
        self.log_dir = self.var_dir / "log"
        self.run_dir = self.var_dir / "run"
        self.documents_dir = self.var_dir / "apologies"
        self.services = tuple(services)
        unknown = set(self.services) - set(SERVICES)
        if unknown:
            raise ValueError(f"unknown services {sorted(unknown)}; known: {list(SERVICES)}")
        self.ports = {name: int((ports or {}).get(name, SERVICES[name])) for name in SERVICES}
        # Given, else the caller's <NAME>_DATABASE_URL (`make up DB=postgres`), else SQLite under var_dir.
        self.database_urls = {
            name: (database_urls or {}).get(name) or os.environ.get(f"{name.upper()}_DATABASE_URL")
            or sqlite_url(self.var_dir / f"{name}.db") for name in SERVICES
        }
        self.extra_env = dict(extra_env or {})
        self.service_env = {k: dict(v) for k, v in (service_env or {}).items()}
        self.python = Path(python) if python else ROOT / ".venv" / "bin" / "python"
        self.ready_timeout_s = ready_timeout_s
        self.stop_grace_s = stop_grace_s
        self.keys = keys or Keys.generate(
            source, officer_agencies if officer_agencies is not None else default_officer_agencies())
        self._procs: dict[str, subprocess.Popen[bytes]] = {}

    # -- addresses and credentials --------------------------------------------------------------
    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    @property
    def intake_key(self) -> str:
        return self.keys.intake_key

    @property
    def source(self) -> str:
        return self.keys.source

    def officer_key(self, agency_code: str) -> str:
        return self.keys.officer_keys[agency_code]

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def log_tails(self, lines: int) -> str:
        """The last `lines` lines of every service's log, each under its path: what to show when a run fails."""
        return "\n".join(f"--- {self.log_path(name)}\n{log_tail(self.log_path(name), lines)}" for name in self.services)

    def pid_path(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    # -- environment ----------------------------------------------------------------------------
    def env_for(self, name: str) -> dict[str, str]:
        prefix = name.upper() + "_"
        # The caller's environment passes through (e.g. DEADLINE_CALENDAR_FILE); what we set wins.
        env = dict(os.environ)
        env.update({
            "PYTHONUNBUFFERED": "1",
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap,
            "TTHC_TOPIC_PREFIX": self.topic_prefix,
            prefix + "DATABASE_URL": self.database_urls[name],
            prefix + "HTTP_HOST": "127.0.0.1",
            prefix + "HTTP_PORT": str(self.ports[name]),
            prefix + "LOG_FORMAT": "text",
        })
        if self.topic_prefix:
            env[prefix + "CONSUMER_GROUP"] = f"{self.topic_prefix}tthc-{name}"
        if name == "intake":
            env["INTAKE_SOURCE_KEYS"] = f"{self.keys.source}={hash_key(self.keys.intake_key)}"
        if name == "apology":
            env["APOLOGY_OFFICER_KEYS"] = ",".join(
                f"{agency}={hash_key(key)}" for agency, key in sorted(self.keys.officer_keys.items()))
            env["APOLOGY_DOCUMENTS_DIR"] = str(self.documents_dir)
        env.update(self.extra_env)
        env.update(self.service_env.get(name, {}))
        return env

    # -- processes ------------------------------------------------------------------------------
    def _saved_pid(self, name: str) -> int | None:
        try:
            return int(self.pid_path(name).read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def pid(self, name: str) -> int | None:
        """The running service's pid, or None."""
        proc = self._procs.get(name)
        if proc is not None:
            return proc.pid if proc.poll() is None else None
        pid = self._saved_pid(name)
        return pid if pid is not None and pid_is_service(pid, name) else None

    def spawn(self, name: str) -> int:
        """Start one service process (without waiting for it to be ready)."""
        if self.pid(name) is not None:
            raise StackError(f"{name} is already running (pid {self.pid(name)}); stop it first")
        if not self.python.exists():
            raise StackError(f"{self.python} not found: run `uv sync --all-packages` first")
        for d in (self.log_dir, self.run_dir, self.documents_dir):
            d.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path(name), "ab")  # noqa: SIM115 - handed to the child, closed below
        try:
            log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting {_module(name)} "
                      f"on port {self.ports[name]} ===\n".encode())
            log.flush()
            proc = subprocess.Popen(
                [str(self.python), "-m", _module(name)],
                cwd=self.root, env=self.env_for(name), stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C in the caller's terminal does not reach the services
            )
        finally:
            log.close()
        self._procs[name] = proc
        self.pid_path(name).write_text(f"{proc.pid}\n")
        return proc.pid

    def wait_ready(self, name: str, timeout_s: float | None = None) -> None:
        """Poll GET /readyz until 200; on timeout or exit, raise with the log's tail."""
        deadline = time.monotonic() + (timeout_s or self.ready_timeout_s)
        url = self.url(name) + "/readyz"
        while True:
            if http_status(url, timeout=2.0) == 200:
                return
            if self.pid(name) is None:
                code = self._procs[name].returncode if name in self._procs else "?"
                raise StackError(f"{name} exited (code {code}) before it was ready; "
                                 f"last lines of {self.log_path(name)}:\n{log_tail(self.log_path(name))}")
            if time.monotonic() > deadline:
                raise StackError(f"{name} not ready at {url} after {timeout_s or self.ready_timeout_s:.0f}s; "
                                 f"last lines of {self.log_path(name)}:\n{log_tail(self.log_path(name))}")
            time.sleep(0.2)

    def start(self, names: Iterable[str] | None = None) -> None:
        """Start the services (all of this stack's by default) and wait until each is ready.

        If one fails, the ones started here are stopped again and StackError carries the log tail.
        """
        names = tuple(self.services if names is None else names)
        running = [f"{n} (pid {self.pid(n)})" for n in names if self.pid(n) is not None]
        if running:  # checked before anything is written: the running ones keep their keys and state
            raise StackError(f"already running: {', '.join(running)}; stop them first")
        taken = [f"{n} {self.ports[n]}" for n in names if port_in_use(self.ports[n])]
        if taken:  # else another program's /readyz could pass for ours
            raise StackError(f"ports already in use: {', '.join(taken)} (choose others: --port-base)")
        self.keys.save(self.run_dir / "keys.json")
        self._save_state()
        started: list[str] = []
        try:
            for name in names:
                self.spawn(name)
                started.append(name)
            for name in names:
                self.wait_ready(name)
        except BaseException:
            self.stop(started)
            raise

    def _signal(self, name: str, pid: int, sig: int) -> None:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass

    def _gone(self, name: str, pid: int) -> bool:
        proc = self._procs.get(name)
        if proc is not None and proc.pid == pid:
            return proc.poll() is not None
        return not pid_is_service(pid, name)

    def _wait_gone(self, name: str, pid: int, seconds: float) -> bool:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if self._gone(name, pid):
                return True
            time.sleep(0.1)
        return self._gone(name, pid)

    def stop_one(self, name: str, grace_s: float | None = None, *, signalled: bool = False) -> bool:
        """TERM, wait up to the grace period, then KILL. Only the pid this stack started. True if it ran."""
        pid = self.pid(name)
        if pid is None:
            self._forget(name)
            return False
        if not signalled:  # once only: a second TERM makes uvicorn skip its graceful shutdown
            self._signal(name, pid, signal.SIGTERM)
        if not self._wait_gone(name, pid, self.stop_grace_s if grace_s is None else grace_s):
            self._signal(name, pid, signal.SIGKILL)
            if not self._wait_gone(name, pid, 10):
                raise StackError(f"{name} (pid {pid}) survived SIGKILL")
        self._forget(name)
        return True

    def stop(self, names: Iterable[str] | None = None) -> None:
        """Stop the services (all by default), in reverse order, TERM first so they finish in-flight work."""
        names = list(self.services if names is None else names)
        pids = {n: self.pid(n) for n in names}
        for n in reversed(names):  # signal all first: they shut down in parallel
            if pids[n] is not None:
                self._signal(n, pids[n], signal.SIGTERM)
        for n in reversed(names):
            self.stop_one(n, signalled=pids[n] is not None)

    def kill(self, name: str) -> None:
        """SIGKILL at once: a crash, for recovery tests."""
        pid = self.pid(name)
        if pid is not None:
            self._signal(name, pid, signal.SIGKILL)
            self._wait_gone(name, pid, 10)
        self._forget(name)

    def restart(self, name: str) -> None:
        self.stop_one(name)
        self.spawn(name)
        self.wait_ready(name)

    def _forget(self, name: str) -> None:
        proc = self._procs.pop(name, None)
        if proc is not None:
            try:
                proc.wait(timeout=5)  # reap it: no zombie left behind
            except subprocess.TimeoutExpired:
                pass
        self.pid_path(name).unlink(missing_ok=True)

    # -- state for the CLI ----------------------------------------------------------------------
    def _save_state(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        state = {"kafka_bootstrap": self.kafka_bootstrap, "topic_prefix": self.topic_prefix,
                 "ports": self.ports, "services": list(self.services)}
        (self.run_dir / "stack.json").write_text(json.dumps(state, indent=2) + "\n")

    @classmethod
    def from_var(cls, var_dir: Path | str | None = None) -> Stack:
        """The stack an earlier `up` left in `var_dir` (ports, prefix, keys), to query or stop it."""
        var = Path(var_dir) if var_dir else ROOT / "var"
        state_file = var / "run" / "stack.json"
        state = json.loads(state_file.read_text()) if state_file.exists() else {}
        keys_file = var / "run" / "keys.json"
        keys = Keys.load(keys_file) if keys_file.exists() else None
        return cls(kafka_bootstrap=state.get("kafka_bootstrap"), topic_prefix=state.get("topic_prefix"),
                   var_dir=var, ports=state.get("ports"), services=state.get("services", SERVICES),
                   keys=keys, officer_agencies=[] if keys is None else None)

    def status(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for name in self.services:
            pid = self.pid(name)
            ready = http_status(self.url(name) + "/readyz", timeout=2.0) if pid is not None else None
            out[name] = {"pid": pid, "url": self.url(name), "ready": ready == 200, "readyz": ready}
        return out

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _print_status(stack: Stack) -> bool:
    all_ready = True
    for name, s in stack.status().items():
        if s["pid"] is None:
            state, all_ready = "stopped", False
        elif s["ready"]:
            state = "ready"
        else:
            state, all_ready = f"running, /readyz {s['readyz'] or 'no answer'}", False
        pid = f"pid {s['pid']}" if s["pid"] else ""
        print(f"  {name:<9} {s['url']:<24} {state:<28} {pid}")
    return all_ready


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="deploy/local/stack.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("up", "down", "status"))
    parser.add_argument("--var", default=str(ROOT / "var"), help="state dir: databases, logs, pids (default var/)")
    parser.add_argument("--kafka", help=f"bootstrap servers (default $KAFKA_BOOTSTRAP_SERVERS or {DEFAULT_KAFKA})")
    parser.add_argument("--topic-prefix", help="prefix of every topic name (default $TTHC_TOPIC_PREFIX or none)")
    parser.add_argument("--only", help="comma-separated services (default all four)")
    parser.add_argument("--timeout", type=float, default=90, help="seconds to wait for each /readyz (90)")
    parser.add_argument("--port-base", type=int, default=8000,
                        help="intake on BASE+1, deadline +2, apology +3, metrics +4 (default 8000)")
    args = parser.parse_args(argv)
    if args.command == "up":
        services = tuple(s.strip() for s in args.only.split(",")) if args.only else tuple(SERVICES)
        ports = {name: args.port_base + i for i, name in enumerate(SERVICES, start=1)}
        # The keys of an earlier `up` of this state dir stay valid: its data and its clients outlive a restart.
        keys_file = Path(args.var) / "run" / "keys.json"
        stack = Stack(kafka_bootstrap=args.kafka, topic_prefix=args.topic_prefix, var_dir=args.var,
                      services=services, ports=ports, ready_timeout_s=args.timeout,
                      keys=Keys.load(keys_file) if keys_file.exists() else None)
        print(f"starting {', '.join(services)} (Kafka {stack.kafka_bootstrap}, topic prefix "
              f"{stack.topic_prefix or '(none)'}, state in {stack.var_dir})")
        try:
            stack.start()
        except StackError as exc:
            print(f"FAILED: {exc}", file=sys.stderr)
            return 1
        _print_status(stack)
        print(f"logs: {stack.log_dir}/<name>.log   keys: {stack.run_dir / 'keys.json'}   "
              f"letters: {stack.documents_dir}")
        var_arg = "" if stack.var_dir == (ROOT / "var").resolve() else f" --var {stack.var_dir}"
        print(f"stop with: python deploy/local/stack.py down{var_arg}")
        return 0
    stack = Stack.from_var(args.var)
    if args.command == "status":
        return 0 if _print_status(stack) else 3
    running = [name for name in stack.services if stack.pid(name) is not None]
    stack.stop(running)
    print(f"stopped: {', '.join(running)}" if running else "nothing was running")
    return 0


if __name__ == "__main__":
    sys.exit(main())
