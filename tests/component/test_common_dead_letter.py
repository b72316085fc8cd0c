"""The dead-letter middleware, on throwaway subscribers behind FastStream's in-memory Kafka.

A poison message goes to the dead-letter topic with its original bytes, key, origin and reason, and
the consumer goes on with the next message; a passing failure is not dead-lettered (it propagates,
so FastStream nacks and Kafka delivers it again).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest
from faststream.kafka import TestKafkaBroker
from prometheus_client import CollectorRegistry, generate_latest
from pydantic import BaseModel
from tthc_common.broker import AckPolicy, KafkaMessage, KafkaRouter, consumer_options, make_kafka_router
from tthc_common.dead_letter import (
    HEADER_CONSUMER,
    HEADER_ERROR,
    HEADER_OFFSET,
    HEADER_PARTITION,
    HEADER_REASON,
    HEADER_TOPIC,
    PermanentError,
    failure_reason,
    is_permanent,
)
from tthc_common.settings import ServiceSettings, service_settings_config
from tthc_contracts.events import parse_dossier_event_json


class ToySettings(ServiceSettings):
    model_config = service_settings_config("TOY_")
    service_name: ClassVar[str] = "toy"


class Order(BaseModel):
    number: int


@dataclass
class Toy:
    router: KafkaRouter
    settings: ToySettings
    registry: CollectorRegistry
    handled: list[Any] = field(default_factory=list)
    dead: list[KafkaMessage] = field(default_factory=list)

    @property
    def topic(self) -> str:
        return self.settings.topic_prefix + "toy-in"


@pytest.fixture
async def toy() -> AsyncIterator[Toy]:
    settings = ToySettings(topic_prefix="dl.", retry_delay_s=0)
    registry = CollectorRegistry()
    router = make_kafka_router(settings, registry=registry)
    toy = Toy(router=router, settings=settings, registry=registry)

    @router.subscriber(toy.topic, **consumer_options(settings))
    async def handle(msg: KafkaMessage) -> None:
        body = json.loads(msg.body)
        if body.get("poison"):
            raise PermanentError(f"order {body['n']} can never be processed")
        if body.get("flaky"):
            raise ConnectionError("database went away")
        toy.handled.append(body["n"])

    @router.subscriber(settings.topic_prefix + "typed-in", **consumer_options(settings))
    async def typed(order: Order) -> None:
        toy.handled.append(order.number)

    @router.subscriber(settings.topic_prefix + "dossier-in", **consumer_options(settings))
    async def dossier(msg: KafkaMessage) -> None:
        toy.handled.append(parse_dossier_event_json(msg.body).event_id)

    @router.subscriber(settings.topics.dead_letter, group_id="dead-letter-reader")
    async def read_dead_letters(msg: KafkaMessage) -> None:
        toy.dead.append(msg)

    async with TestKafkaBroker(router.broker, connect_only=False):
        yield toy


def headers_of(msg: KafkaMessage) -> dict[str, str]:
    return {k: v.decode() for k, v in msg.raw_message.headers}


async def test_poison_goes_to_the_dead_letter_topic_and_the_next_message_is_processed(toy: Toy) -> None:
    poison = json.dumps({"n": 1, "poison": True}).encode()
    await toy.router.broker.publish(poison, toy.topic, key=b"dossier-7")
    await toy.router.broker.publish(json.dumps({"n": 2}).encode(), toy.topic, key=b"dossier-7")

    assert toy.handled == [2]
    assert len(toy.dead) == 1
    dead = toy.dead[0]
    assert dead.body == poison  # the original bytes, untouched
    assert dead.raw_message.key == b"dossier-7"
    assert dead.raw_message.topic == "dl.tthc.dead-letter.v1"
    headers = headers_of(dead)
    assert headers[HEADER_REASON] == "order 1 can never be processed"
    assert headers[HEADER_ERROR] == "PermanentError"
    assert headers[HEADER_CONSUMER] == "tthc-toy"
    assert headers[HEADER_TOPIC] == toy.topic
    assert headers[HEADER_PARTITION] == "0"
    assert headers[HEADER_OFFSET] == "0"


async def test_a_passing_failure_is_not_dead_lettered_but_raised_for_redelivery(toy: Toy) -> None:
    with pytest.raises(ConnectionError):
        await toy.router.broker.publish(json.dumps({"n": 3, "flaky": True}).encode(), toy.topic)

    assert toy.dead == []
    assert toy.handled == []


async def test_a_body_that_does_not_fit_the_handler_type_is_dead_lettered(toy: Toy) -> None:
    await toy.router.broker.publish({"number": "not a number"}, "dl.typed-in", key=b"k")
    await toy.router.broker.publish({"number": 5}, "dl.typed-in", key=b"k")

    assert toy.handled == [5]
    assert len(toy.dead) == 1
    assert "number" in headers_of(toy.dead[0])[HEADER_REASON]
    assert "not a number" not in headers_of(toy.dead[0])[HEADER_REASON]  # no input values echoed


async def test_undecodable_json_is_dead_lettered(toy: Toy) -> None:
    await toy.router.broker.publish(b"{broken", "dl.typed-in", headers={"content-type": "application/json"})

    assert len(toy.dead) == 1
    assert headers_of(toy.dead[0])[HEADER_ERROR] == "JSONDecodeError"
    assert toy.dead[0].body == b"{broken"


async def test_an_event_breaking_the_contract_is_dead_lettered_without_its_personal_data(toy: Toy) -> None:
    event = {"event_id": "7d0c8a4e-31a5-4c0e-9d55-0a9b8f0f3a11", "type": "dossier.received",
             "schema_version": 1, "occurred_at": "2026-02-13T10:00:00", "source": "s", "dossier_id": "D-1",
             "data": {"applicant": {"kind": "citizen", "name": "Trần Thị Bí Mật"}}}

    await toy.router.broker.publish(json.dumps(event).encode(), "dl.dossier-in", key=b"D-1")

    reason = headers_of(toy.dead[0])[HEADER_REASON]
    assert "occurred_at" in reason
    assert "Trần Thị Bí Mật" not in reason
    assert headers_of(toy.dead[0])[HEADER_ERROR] == "EventValidationError"


async def test_dead_letters_are_counted(toy: Toy) -> None:
    await toy.router.broker.publish(json.dumps({"n": 1, "poison": True}).encode(), toy.topic)

    metrics = generate_latest(toy.registry).decode()

    assert ('tthc_dead_lettered_messages_total{consumer="tthc-toy",error="PermanentError",'
            'topic="dl.toy-in"} 1.0') in metrics


def test_subscribers_default_to_manual_commits(toy: Toy) -> None:
    # Auto-commit would commit before the handler runs: a passing failure would lose the message.
    router = make_kafka_router(ToySettings(), registry=CollectorRegistry())
    subscriber = router.subscriber("anything", group_id="g")
    assert subscriber.ack_policy is AckPolicy.NACK_ON_ERROR
    assert subscriber._outer_config.ack_policy is AckPolicy.NACK_ON_ERROR


def test_what_counts_as_permanent() -> None:
    assert is_permanent(PermanentError("x"))
    assert is_permanent(json.JSONDecodeError("Expecting value", "doc", 0))
    assert is_permanent(UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"))
    assert not is_permanent(ConnectionError("db"))
    assert not is_permanent(ValueError("a bug is not a reason to skip a message"))
    assert "line 1" in failure_reason(json.JSONDecodeError("Expecting value", "secret", 0))


async def test_the_dead_letter_record_keeps_the_original_content_type_aside(toy: Toy) -> None:
    await toy.router.broker.publish(b"{broken", "dl.typed-in", headers={"content-type": "application/json"})

    headers = headers_of(toy.dead[0])
    assert headers["content-type"] == "application/octet-stream"
    assert headers["x-dead-letter-content-type"] == "application/json"


async def test_a_failing_dead_letter_reader_does_not_loop(toy: Toy) -> None:
    poisoned_reader = make_kafka_router(toy.settings, registry=CollectorRegistry())
    seen: list[bytes] = []

    @poisoned_reader.subscriber(toy.settings.topics.dead_letter, **consumer_options(toy.settings))
    async def reader(order: Order) -> None:  # a reader that cannot parse what it reads
        seen.append(b"")

    async with TestKafkaBroker(poisoned_reader.broker, connect_only=False):
        await poisoned_reader.broker.publish(b"not an order", toy.settings.topics.dead_letter)

    assert seen == []  # refused, logged, acked: not republished to itself
