"""Batch consumption (`tthc_common.batches`) on throwaway subscribers behind FastStream's in-memory Kafka,
with a real SQLite transaction per batch.

A message that cannot be parsed, or whose processing keeps failing, goes to the dead-letter topic with its
original bytes, key, origin and reason, and the rest of its batch is processed; an unreachable database is
not a reason to skip anything: the batch is read again.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest
from faststream.kafka import TestKafkaBroker
from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy import exc as sa_exc
from sqlmodel import Session

from tthc_common.batches import Received, is_infrastructure_error, make_runners, record_json
from tthc_common.broker import AckPolicy, KafkaMessage, KafkaRouter, batch_options, make_kafka_router
from tthc_common.db import make_engine
from tthc_common.dead_letter import (
    HEADER_CONSUMER,
    HEADER_ERROR,
    HEADER_OFFSET,
    HEADER_PARTITION,
    HEADER_REASON,
    HEADER_TOPIC,
    PermanentError,
)
from tthc_common.settings import ServiceSettings, service_settings_config
from tthc_contracts.events import parse_dossier_event

from tests.support.events import changed, event


class ToySettings(ServiceSettings):
    model_config = service_settings_config("TOY_")
    service_name: ClassVar[str] = "toy"


@dataclass
class Toy:
    router: KafkaRouter
    settings: ToySettings
    registry: CollectorRegistry
    transactions: list[list[int]] = field(default_factory=list)  # the numbers each committed unit handled
    attempts: dict[int, int] = field(default_factory=dict)
    dead: list[Any] = field(default_factory=list)
    database_down: bool = False

    @property
    def topic(self) -> str:
        return self.settings.topic_prefix + "toy-in"

    @property
    def handled(self) -> list[int]:
        return [n for t in self.transactions for n in t]


def parse_order(record: Any) -> int | None:
    body = record_json(record)
    if body.get("unreadable"):
        raise PermanentError(f"order {body['n']} can never be read")
    if body.get("ignore"):
        return None
    return int(body["n"])


@pytest.fixture
async def toy(tmp_path) -> AsyncIterator[Toy]:
    settings = ToySettings(topic_prefix="dl.", retry_delay_s=0, poison_backoff_s=0, poison_attempts=3,
                           database_url=f"sqlite:///{tmp_path}/toy.db")
    registry = CollectorRegistry()
    router = make_kafka_router(settings, registry=registry)
    toy = Toy(router=router, settings=settings, registry=registry)
    engine = make_engine(settings.database_url)
    runners = make_runners(settings, engine=engine, broker=router.broker, registry=registry)

    def unit(session: Session, items: list[Received[int]]) -> list[int]:
        numbers = [i.event for i in items]
        for n in numbers:
            toy.attempts[n] = toy.attempts.get(n, 0) + 1
        if toy.database_down:
            raise sa_exc.OperationalError("SELECT 1", {}, ConnectionError("database went away"))
        if 13 in numbers:
            raise OverflowError("date value out of range")
        toy.transactions.append(numbers)  # "committed" (the session commits after this returns)
        return numbers

    runner = runners("toy.orders", parse=parse_order, unit=unit)

    @router.subscriber(toy.topic, **batch_options(settings))
    async def on_orders(msg: KafkaMessage) -> None:
        await runner.run(msg.raw_message)

    @router.subscriber(settings.topics.dead_letter, group_id="dead-letter-reader")
    async def read_dead_letters(msg: KafkaMessage) -> None:
        toy.dead.append(msg)

    async with TestKafkaBroker(router.broker, connect_only=False):
        yield toy
    engine.dispose()


def headers_of(msg: KafkaMessage) -> dict[str, str]:
    return {k: v.decode() for k, v in msg.raw_message.headers}


async def publish_batch(toy: Toy, *bodies: Any) -> None:
    encoded = [b if isinstance(b, bytes) else json.dumps(b).encode() for b in bodies]
    await toy.router.broker.publish_batch(*encoded, topic=toy.topic)


async def test_a_batch_is_one_unit_of_work(toy: Toy) -> None:
    await publish_batch(toy, {"n": 1}, {"n": 2}, {"n": 3, "ignore": True}, {"n": 4})

    assert toy.transactions == [[1, 2, 4]]  # one transaction; the record it does not use is skipped
    assert toy.dead == []


async def test_an_unreadable_message_is_set_aside_and_the_rest_of_its_batch_processed(toy: Toy) -> None:
    await publish_batch(toy, {"n": 1}, {"n": 2, "unreadable": True}, b"{broken", {"n": 4})

    assert toy.transactions == [[1, 4]]
    assert [m.body for m in toy.dead] == [json.dumps({"n": 2, "unreadable": True}).encode(), b"{broken"]
    first, second = map(headers_of, toy.dead)
    assert first[HEADER_REASON] == "order 2 can never be read"
    assert first[HEADER_ERROR] == "PermanentError"
    assert first[HEADER_CONSUMER] == "toy.orders"
    assert first[HEADER_TOPIC] == toy.topic
    # where the original sits (the in-memory broker numbers every record of a batch 0; real Kafka is
    # checked in tests/integration)
    assert first[HEADER_PARTITION] == "0" and first[HEADER_OFFSET].isdigit()
    assert second[HEADER_ERROR] == "JSONDecodeError" and "line 1" in second[HEADER_REASON]
    assert second["content-type"] == "application/octet-stream"


async def test_a_message_the_domain_cannot_hold_is_retried_then_set_aside(toy: Toy) -> None:
    await publish_batch(toy, {"n": 11}, {"n": 13}, {"n": 14})

    # the batch failed; its messages were then processed one by one, and 13 failed every attempt
    assert toy.transactions == [[11], [14]]
    assert toy.attempts[13] == 1 + 3
    [dead] = toy.dead
    assert json.loads(dead.body) == {"n": 13}
    headers = headers_of(dead)
    assert headers[HEADER_ERROR] == "OverflowError"
    assert headers[HEADER_REASON] == "processing failed 3 times: OverflowError: date value out of range"


async def test_an_unreachable_database_is_never_a_reason_to_skip(toy: Toy) -> None:
    toy.database_down = True
    with pytest.raises(sa_exc.OperationalError):  # the in-memory broker surfaces the nack as the error
        await publish_batch(toy, {"n": 21}, {"n": 22})

    assert toy.dead == [] and toy.transactions == []
    assert toy.attempts == {21: 1, 22: 1}  # not retried one by one: the whole batch is read again later
    toy.database_down = False
    await publish_batch(toy, {"n": 21}, {"n": 22})
    assert toy.transactions == [[21, 22]]


async def test_dead_letters_and_stalls_are_counted(toy: Toy) -> None:
    await publish_batch(toy, {"n": 1, "unreadable": True})
    toy.database_down = True
    with pytest.raises(sa_exc.OperationalError):
        await publish_batch(toy, {"n": 2})

    metrics = generate_latest(toy.registry).decode()
    assert ('tthc_dead_lettered_messages_total{consumer="toy.orders",error="PermanentError",'
            'topic="dl.toy-in"} 1.0') in metrics
    assert 'tthc_consumer_stalls_total{error="OperationalError"} 1.0' in metrics
    assert 'tthc_consumer_retries_total{cause="infrastructure",consumer="toy.orders"} 1.0' in metrics


async def test_an_event_breaking_the_contract_is_set_aside_without_its_personal_data(toy: Toy) -> None:
    router = toy.router
    dead: list[Any] = []
    engine = make_engine("sqlite://")
    runners = make_runners(toy.settings, engine=engine, broker=router.broker, registry=CollectorRegistry())
    runner = runners("toy.dossiers", parse=lambda r: parse_dossier_event(record_json(r)),
                     unit=lambda session, items: None)
    applicant = {"kind": "citizen", "name": "Trần Thị Bí Mật"}
    receipt = event("dossier.received", "2026-02-13T10:00", {"applicant": applicant}, "D-1",
                    event_id="7d0c8a4e-31a5-4c0e-9d55-0a9b8f0f3a11", source="s")
    naive = changed(receipt, "occurred_at", "2026-02-13T10:00:00")  # no UTC offset (and no procedure)

    class Record:
        topic, partition, offset, key, headers = "dl.dossiers", 0, 7, b"D-1", []
        value = json.dumps(naive).encode()

    await runner.run([Record()])
    dead = toy.dead
    reason = headers_of(dead[0])[HEADER_REASON]
    assert "occurred_at" in reason and "Trần Thị Bí Mật" not in reason
    assert headers_of(dead[0])[HEADER_ERROR] == "EventValidationError"


def test_subscribers_take_committed_batches_and_commit_by_hand(toy: Toy) -> None:
    # Auto-commit would commit before the handler runs: a passing failure would lose the message.
    options = batch_options(ToySettings(batch_max_records=250, batch_linger_ms=20))
    assert options["batch"] is True and options["max_records"] == 250 and options["batch_timeout_ms"] == 20
    assert options["isolation_level"] == "read_committed"
    router = make_kafka_router(ToySettings(), registry=CollectorRegistry())
    subscriber = router.subscriber("anything", **options)
    assert subscriber.ack_policy is AckPolicy.NACK_ON_ERROR


def test_what_counts_as_the_infrastructure() -> None:
    assert is_infrastructure_error(sa_exc.OperationalError("x", {}, Exception("down")))
    assert is_infrastructure_error(ConnectionError("db"))
    assert not is_infrastructure_error(sa_exc.IntegrityError("x", {}, Exception("dup")))
    assert not is_infrastructure_error(OverflowError("date value out of range"))
    assert not is_infrastructure_error(ValueError("a bug"))
