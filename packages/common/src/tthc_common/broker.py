"""The Kafka side of a service: one FastStream `KafkaRouter` (FastAPI integration) per app.

    router = make_kafka_router(settings, registry=registry)
    @router.subscriber(settings.topics.dossier_events, **consumer_options(settings))
    async def on_dossier_event(msg: KafkaMessage) -> None: ...
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from typing import TYPE_CHECKING, Any

from aiokafka.errors import KafkaTimeoutError
from faststream import AckPolicy

with warnings.catch_warnings():
    # FastStream 0.7 announces that the FastAPI integration moves to a separate package in 1.0;
    # we pin <0.8 (see packages/common/pyproject.toml), so the notice is only noise in every test run.
    warnings.simplefilter("ignore", DeprecationWarning)
    from faststream.kafka.fastapi import KafkaMessage, KafkaRouter

from faststream.kafka.prometheus import KafkaPrometheusMiddleware

from .dead_letter import DeadLetterMiddleware

logger = logging.getLogger("tthc.broker")

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from .settings import ServiceSettings

__all__ = ["AckPolicy", "KafkaMessage", "KafkaRouter", "consumer_options", "make_kafka_router"]

# Manual offset commits: ack = commit after success (or after dead-lettering), nack = seek back.
CONSUMER_ACK_POLICY = AckPolicy.NACK_ON_ERROR


def make_kafka_router(settings: ServiceSettings, *, registry: CollectorRegistry,
                      **router_kwargs: Any) -> KafkaRouter:
    """A KafkaRouter with an idempotent producer (acks=all), the dead-letter middleware, FastStream's
    Prometheus metrics in `registry`, and NACK_ON_ERROR as every subscriber's default ack policy.

    Include it in the FastAPI app (`app.include_router(router)`): its lifespan connects the broker.
    """
    dead_letter = DeadLetterMiddleware(
        dead_letter_topic=settings.topics.dead_letter,
        default_consumer=settings.consumer_group,
        retry_delay_s=settings.retry_delay_s,
        publish_timeout_s=settings.kafka_publish_timeout_s,
        registry=registry,
    )
    router = KafkaRouter(
        settings.kafka_bootstrap_servers,
        client_id=f"tthc-{settings.service_name}",
        enable_idempotence=True,
        acks="all",
        # Dead-letter first (outermost of ours): Prometheus still sees the failure and counts it
        # before the dead-letter middleware suppresses it.
        middlewares=(
            dead_letter,
            KafkaPrometheusMiddleware(registry=registry, app_name=f"tthc-{settings.service_name}",
                                      metrics_prefix="faststream"),
        ),
        logger=logging.getLogger(f"tthc.{settings.service_name}.kafka"),
        schema_url="/asyncapi",
        include_in_schema=True,
        **router_kwargs,
    )
    dead_letter.broker = router.broker
    # Subscribers created from now on default to manual commits (KafkaSubscriberConfig reads the
    # broker-wide policy when it is created and turns auto-commit off accordingly).
    router.broker.config.broker_config.ack_policy = CONSUMER_ACK_POLICY
    return router


async def flush_producer_or_give_up(broker: Any, timeout_s: float) -> None:
    """Before the broker stops: wait up to `timeout_s` for unacknowledged sends, then fail them.

    aiokafka's `producer.stop()` flushes first, and an idempotent producer retries a batch forever
    while the partition's last known leader is down, so without this a service would never finish
    shutting down during a Kafka outage. Failing the sends is safe: their callers already gave up
    (intake answered 503; the outbox keeps its rows and publishes them after the restart).
    """
    state = getattr(getattr(getattr(broker, "config", None), "broker_config", None), "producer", None)
    producer = getattr(getattr(state, "_producer", None), "producer", None)
    accumulator = getattr(producer, "_message_accumulator", None)
    if accumulator is None:  # not connected, or the in-memory test broker
        return
    try:
        await asyncio.wait_for(producer.flush(), timeout=timeout_s)
    except TimeoutError:
        logger.warning("Kafka did not acknowledge pending messages before shutdown; dropping them")
        # Stop the sender first (it finishes its in-flight requests, which fail fast), then fail what
        # is left: failing batches under a live sender makes it fail them twice and crash.
        sender_task = getattr(getattr(producer, "_sender", None), "sender_task", None)
        if sender_task is not None and not sender_task.done():
            sender_task.cancel()
            await asyncio.wait({sender_task}, timeout=timeout_s)
        accumulator.fail_all(KafkaTimeoutError("service shutting down"))


def consumer_options(settings: ServiceSettings, *, group_suffix: str = "",
                     auto_offset_reset: str = "earliest", **extra: Any) -> dict[str, Any]:
    """Keyword arguments for `router.subscriber(topic, **consumer_options(settings))`.

    `earliest`: a new consumer group starts from the beginning of the topic, so a service deployed
    after intake still sees every event.
    """
    return {
        "group_id": settings.consumer_group + group_suffix,
        "ack_policy": CONSUMER_ACK_POLICY,
        "auto_offset_reset": auto_offset_reset,
        **extra,
    }
