"""Chaos: a few hundred dossiers stream through the four real services while every service is killed
(SIGKILL) twice and the broker is killed and restarted once. Afterwards every dossier field, every apology
draft and every index figure must equal `tthc replay` of the same events: nothing lost, nothing counted
twice, no draft made twice. And through all of it, no applicant's name, phone or address in any service's
log or `/metrics`.

The services run on PostgreSQL (one database each) and on a broker of this test's own, whose topics
survive its crash (deploy/local/kafka.sh with KAFKA_KEEP_DATA=1). Their time follows the events only.
"""

from __future__ import annotations

import random
import threading
import time
from datetime import date
from pathlib import Path
from typing import Any

import httpx
from tthc_contracts import parse_ts
from tthc_sim import generate_day

from tests.support.infra import KeptBroker
from tests.support.stack import SERVICES, event_time_stack, replay_check

DAY = date(2026, 3, 2)
BATCH = 40


def post_until_accepted(client: httpx.Client, stack: Any, batch: list[dict[str, Any]], stop_at: float) -> None:
    """What one-stop software does: send again until intake answers 202 (the same events: duplicates are
    recognised), through intake restarts and broker outages."""
    while True:
        try:
            r = client.post(stack.url("intake") + "/v1/events", json=batch,
                            headers={"Authorization": f"Bearer {stack.intake_key}"})
            if r.status_code == 202:
                return
            assert r.status_code in (502, 503), r.text  # never a refusal of valid events
        except httpx.TransportError:
            pass  # intake is being killed or restarted
        assert time.monotonic() < stop_at, "intake never took the batch"
        time.sleep(0.3)


def test_kills_and_a_broker_crash_change_nothing(postgres_url: str, service_databases: dict[str, str],
                                                   topic_prefix: str, tmp_path: Path) -> None:
    events = generate_day(DAY, dossiers=200, seed=11, resends=0.02)
    # every agency that may hold a dossier, so the comparison can read each one's letters
    agencies = sorted({e["data"]["handling_agency"]["code"] for e in events if e["type"] == "dossier.received"}
                      | {e["data"]["to_agency"]["code"] for e in events if e["type"] == "dossier.transferred"})
    batches = [events[i:i + BATCH] for i in range(0, len(events), BATCH)]
    chaos_log: list[str] = []
    rng = random.Random(3)

    with KeptBroker(tmp_path / "kafka") as broker, event_time_stack(
            kafka_bootstrap=broker.bootstrap, topic_prefix=topic_prefix, service_databases=service_databases,
            var_dir=tmp_path / "var", officer_agencies=agencies) as stack, httpx.Client(timeout=30) as client:
        stop_at = time.monotonic() + 400
        posted = threading.Event()

        def post_all() -> None:
            for batch in batches:
                post_until_accepted(client, stack, batch, stop_at)
                time.sleep(0.05)  # a steady stream, so that the crashes land in the middle of it
            posted.set()

        poster = threading.Thread(target=post_all, name="one-stop-software")
        poster.start()
        # Each service killed twice, in a shuffled order; the broker crashes once, in the middle.
        victims = [*SERVICES, *SERVICES]
        rng.shuffle(victims)
        victims.insert(len(victims) // 2, "broker")
        try:
            for victim in victims:
                time.sleep(rng.uniform(0.3, 1.2))
                if victim == "broker":
                    broker.kill()
                    time.sleep(1.0)
                    broker.start()
                else:
                    stack.kill(victim)
                    stack.restart(victim)
                chaos_log.append(victim)
        finally:
            poster.join()
        assert posted.is_set()
        assert sorted(chaos_log) == sorted(victims)

        first = DAY
        last = max(parse_ts(e["occurred_at"]) for e in events).date()
        problems = replay_check.compare_when_settled(client, stack, events, first, last, timeout_s=240)
        assert problems == [], "\n".join(problems[:40]) + "\n" + stack.log_tails(20)

        # Personal data: the logs of every run of every service (the files are appended to across the kills,
        # and hold the error lines of the outages) and what each one exposes to Prometheus.
        personal = {value for e in events if e["type"] == "dossier.received"
                    for value in (e["data"]["applicant"].get(k) for k in ("name", "phone", "address")) if value}
        assert len(personal) > 300
        exposed = {name: stack.log_path(name).read_text(encoding="utf-8", errors="replace") for name in SERVICES}
        exposed |= {f"{name} /metrics": client.get(stack.url(name) + "/metrics").text for name in SERVICES}
        assert all(len(text) > 1000 for text in exposed.values())
        leaks = sorted(f"{where}: {value}" for where, text in exposed.items() for value in personal if value in text)
        assert leaks == [], leaks[:20]
