"""The Kafka side of a service: one FastStream `KafkaRouter` (FastAPI integration) per app.

    router = make_kafka_router(settings, registry=registry)
    @router.subscriber(settings.topics.dossier_events, **batch_options(settings))
    async def on_dossier_events(msg: KafkaMessage) -> None:
        await runner.run(msg.raw_message)        # tthc_common.batches.BatchRunner

Subscribers commit offsets by hand (ack = commit after success, nack = seek back and read again), read
committed data only (intake publishes a request's events in one Kafka transaction), and take batches.
A handler that raises (only the infrastructure's errors get that far: see `tthc_common.batches`) is
read again after a growing pause, with one log line a minute and a counter, never skipped.
"""

from __future__ import annotations

import asyncio
import logging
import time
import warnings
from typing import TYPE_CHECKING, Any

from aiokafka.errors import KafkaTimeoutError
from faststream import AckPolicy
from faststream.exceptions import IgnoredException
from faststream.middlewares import BaseMiddleware

with warnings.catch_warnings():
    # FastStream 0.7 announces that the FastAPI integration moves to a separate package in 1.0;
    # we pin <0.8 (see packages/common/pyproject.toml), so the notice is only noise in every test run.
    warnings.simplefilter("ignore", DeprecationWarning)
    from faststream.kafka.fastapi import KafkaMessage, KafkaRouter

from faststream.kafka.prometheus import KafkaPrometheusMiddleware

from .asyncapi import undecoded

logger = logging.getLogger("tthc.broker")

if TYPE_CHECKING:
    from faststream._internal.context.repository import ContextRepo
    from prometheus_client import CollectorRegistry

    from .settings import ServiceSettings

__all__ = ["AckPolicy", "KafkaMessage", "KafkaRouter", "batch_options", "make_kafka_router"]

# Manual offset commits: ack = commit after success (or after dead-lettering), nack = seek back.
CONSUMER_ACK_POLICY = AckPolicy.NACK_ON_ERROR


class RetryLater:
    """Broker middleware factory: a handler that raised is read again (nack) after a pause that doubles
    from `first_delay_s` up to `max_delay_s` while the failures go on, with a warning at most once a
    minute and the counter `tthc_consumer_stalls_total`. A success resets the pause."""

    def __init__(self, *, first_delay_s: float, max_delay_s: float, registry: CollectorRegistry | None) -> None:
        self.first_delay_s = first_delay_s
        self.max_delay_s = max(first_delay_s, max_delay_s)
        self.failures = 0
        self._last_log = float("-inf")
        self.counter = None
        if registry is not None:
            from prometheus_client import Counter

            self.counter = Counter("tthc_consumer_stalls", "Batches read again because processing could not "
                                   "finish (database or broker unreachable)", ["error"], registry=registry)

    def __call__(self, msg: Any, /, *, context: ContextRepo) -> _RetryScope:
        return _RetryScope(msg, context=context, config=self)

    def delay_s(self) -> float:
        return min(self.max_delay_s, self.first_delay_s * 2 ** max(0, self.failures - 1))


class _RetryScope(BaseMiddleware):
    __slots__ = ("config",)

    def __init__(self, msg: Any, /, *, context: ContextRepo, config: RetryLater) -> None:
        super().__init__(msg, context=context)
        self.config = config

    async def after_processed(self, exc_type: type[BaseException] | None = None,
                              exc_val: BaseException | None = None, exc_tb: Any = None) -> bool | None:
        config = self.config
        if exc_val is None:
            config.failures = 0
            return False
        if not isinstance(exc_val, Exception) or isinstance(exc_val, IgnoredException):
            return False  # cancellation, or FastStream's own Ack/Nack signals: not ours
        config.failures += 1
        if config.counter is not None:
            config.counter.labels(type(exc_val).__name__).inc()
        now = time.monotonic()
        if now - config._last_log >= 60:
            config._last_log = now
            logger.warning("processing stalled, the batch will be read again",
                           extra={"error": type(exc_val).__name__, "count": config.failures})
        await asyncio.sleep(config.delay_s())
        return False  # not suppressed: FastStream nacks, the records are read again


def make_kafka_router(settings: ServiceSettings, *, registry: CollectorRegistry,
                      **router_kwargs: Any) -> KafkaRouter:
    """A KafkaRouter with an idempotent producer (acks=all), FastStream's Prometheus metrics in `registry`,
    `RetryLater`, and NACK_ON_ERROR as every subscriber's default ack policy.

    Include it in the FastAPI app (`app.include_router(router)`): its lifespan connects the broker.
    """
    retry = RetryLater(first_delay_s=settings.retry_delay_s, max_delay_s=settings.retry_max_delay_s,
                       registry=registry)

    router = KafkaRouter(
        settings.kafka_bootstrap_servers,
        client_id=f"tthc-{settings.service_name}",
        enable_idempotence=True,
        acks="all",
        middlewares=(
            retry,
            KafkaPrometheusMiddleware(registry=registry, app_name=f"tthc-{settings.service_name}",
                                      metrics_prefix="faststream"),
        ),
        logger=logging.getLogger(f"tthc.{settings.service_name}.kafka"),
        # The AsyncAPI document is served by `tthc_common.asyncapi.asyncapi_router`, not by FastStream's docs
        # router (which would also mount an unauthenticated `POST /asyncapi/try` publishing to any topic).
        schema_url=None,
        include_in_schema=True,
        **router_kwargs,
    )
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


def batch_options(settings: ServiceSettings, *, group_suffix: str = "", **extra: Any) -> dict[str, Any]:
    """Keyword arguments for `router.subscriber(topic, **batch_options(settings))`: batches of at most
    `batch_max_records`, waiting at most `batch_linger_ms` for more, committed data only.

    `earliest`: a new consumer group starts from the beginning of the topic, so a service deployed
    after intake still sees every event.
    """
    return {
        "group_id": settings.consumer_group + group_suffix,
        "ack_policy": CONSUMER_ACK_POLICY,
        "auto_offset_reset": "earliest",
        "batch": True,
        "max_records": settings.batch_max_records,
        "batch_timeout_ms": settings.batch_linger_ms,
        "isolation_level": "read_committed",
        "decoder": undecoded,  # the handler's BatchRunner parses each record (tthc_common.asyncapi)
        **extra,
    }

