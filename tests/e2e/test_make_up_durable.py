"""`make up` keeps its data (issue 11.6): post half a simulated day, `make down`, `make up`, post the rest,
and every dossier, draft and figure equals `tthc replay` of the whole day.

The stack runs exactly as `make up` runs it (Kafka with its topics kept under VAR/kafka, the services'
SQLite databases under VAR), in a temporary VAR, on a free Kafka port and free service ports.
"""

from __future__ import annotations

import os
import subprocess
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
from tthc_contracts import parse_ts
from tthc_sim import generate_day

from tests.support.infra import ROOT, free_ports
from tests.support.stack import SERVICES, replay_check, stack_module

DAY = date.today() - timedelta(days=75)  # intake takes no event dated in the future


def consecutive_free_ports(n: int) -> int:
    """A base such that base+1..base+n are free now."""
    for _ in range(200):
        base = free_ports(1)[0]
        if base + n < 65536 and not any(stack_module.port_in_use(base + i) for i in range(1, n + 1)):
            return base
    raise AssertionError("no run of free ports")


def make(target: str, env: dict[str, str]) -> None:
    done = subprocess.run(["make", "--no-print-directory", target], check=False, cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"make {target}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


def post(client: httpx.Client, stack: Any, key: str, events: list[dict[str, Any]]) -> None:
    for i in range(0, len(events), 200):
        r = client.post(stack.url("intake") + "/v1/events", json=events[i:i + 200],
                        headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 202, r.text


def settled(client: httpx.Client, stack: Any, events: list[dict[str, Any]], timeout_s: float = 180) -> list[str]:
    first, last = DAY, max(parse_ts(e["occurred_at"]) for e in events).date()
    return replay_check.compare_when_settled(client, stack, events, first, last, timeout_s=timeout_s, poll_s=1.5)


def test_make_down_and_up_keep_every_dossier_and_figure(tmp_path: Path, kafka_bootstrap: str) -> None:
    # (`kafka_bootstrap` only marks the test as needing Kafka: `make up` starts a broker of its own.)
    var = tmp_path / "var"
    port_base = consecutive_free_ports(4)
    env = {**os.environ, "VAR": str(var), "PORT_BASE": str(port_base), "KAFKA_PORT": str(free_ports(1)[0]),
           # time follows the events (no wall-clock ticks), so the comparison with replay is exact
           "DEADLINE_PUBLISH_TICKS": "false"}
    for name in ("KAFKA_BOOTSTRAP_SERVERS", "TTHC_TOPIC_PREFIX", *(f"{s.upper()}_DATABASE_URL" for s in SERVICES)):
        env.pop(name, None)
    events = generate_day(DAY, dossiers=40, seed=21)
    half = len(events) // 2
    try:
        make("up", env)
        stack = stack_module.Stack.from_var(var)  # its ports and the keys it generated
        intake_key = stack.intake_key
        with httpx.Client(timeout=60) as client:
            post(client, stack, intake_key, events[:half])
            assert settled(client, stack, events[:half]) == []

            make("down", env)
            assert all(v["pid"] is None for v in stack.status().values())
            assert (var / "kafka" / "data" / "meta.properties").exists()  # the topics stayed
            make("up", env)

            post(client, stack, intake_key, events[half:])
            assert settled(client, stack, events) == []
    finally:
        make("down", env)
