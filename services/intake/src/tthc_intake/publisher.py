"""Publishing a request's events all or nothing: one Kafka transaction per request, and a watch on the broker.

FastStream has no transactional publish, so intake keeps an aiokafka producer of its own
(`transactional_id`, idempotent, acks=all). The events of one request are sent inside one transaction
and committed together; if any of them fails, the transaction is aborted and consumers, which read
committed data only (`tthc_common.broker.batch_options`), never see any of them.

A producer that failed in a way it cannot abort cleanly (the broker went away mid-transaction) is
dropped and closed in the background; the next request starts a fresh one with the same
`transactional_id`, whose registration fences the old one and aborts what it left open.

The watch probes the broker every `watch_interval_s`. While the broker is known to be unreachable a
publish gets only `down_timeout_s`, and a publish under way when the watch notices the broker gone is
given up at once: the sender hears 503 within a second instead of after the full publish timeout.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError
from tthc_common.background import BackgroundLoop
from tthc_common.publish import JSON_HEADERS, OutgoingMessage

logger = logging.getLogger("tthc.intake.publisher")

_HEADERS = [(name, value.encode()) for name, value in JSON_HEADERS.items()]


class PublishRefused(Exception):
    """The broker will never take event `index` of the request (too large): a 4xx, never retried."""

    def __init__(self, index: int, reason: str) -> None:
        self.index = index
        self.reason = reason
        super().__init__(f"event {index}: {reason}")


class BrokerUnavailable(Exception):
    """Kafka did not take the request's events now (unreachable, slow, or failing): nothing of the request
    is readable; the sender may retry (503)."""


class EventPublisher(Protocol):
    """What intake's HTTP side needs from Kafka (the component tests give an in-memory one)."""

    @property
    def reachable(self) -> bool: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        """All `messages` durably in Kafka, or none readable: raises PublishRefused or BrokerUnavailable."""


class TransactionalPublisher:
    def __init__(self, *, bootstrap_servers: str, transactional_id: str, client_id: str, publish_timeout_s: float,
                 down_timeout_s: float, transaction_timeout_s: float, max_request_bytes: int,
                 watch_interval_s: float, probe: Callable[[float], Awaitable[bool]]) -> None:
        """`probe(timeout_s)`: does the broker answer (the FastStream broker's ping)?"""
        self.bootstrap_servers = bootstrap_servers
        self.transactional_id = transactional_id
        self.client_id = client_id
        self.publish_timeout_s = publish_timeout_s
        self.down_timeout_s = down_timeout_s
        self.transaction_timeout_s = transaction_timeout_s
        self.max_request_bytes = max_request_bytes
        self.probe = probe
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()
        self._reachable = True
        self._down = asyncio.Event()
        self._closing: set[asyncio.Task[None]] = set()
        self._watch = BackgroundLoop("intake-broker-watch", self._watch_step, interval_s=watch_interval_s,
                                     retry_delay_s=watch_interval_s, logger=logger)

    # -- reachability ---------------------------------------------------------------------------------
    @property
    def reachable(self) -> bool:
        return self._reachable

    def _set_reachable(self, reachable: bool) -> None:
        if reachable == self._reachable:
            return
        self._reachable = reachable
        if reachable:
            self._down.clear()
            logger.info("Kafka answers again: publishing resumes")
        else:
            self._down.set()
            logger.warning("Kafka is unreachable: requests are answered 503 until it answers again")

    async def _watch_step(self) -> bool:
        self._set_reachable(await self.probe(self._watch.interval_s))
        return False

    # -- lifecycle ------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the watch and, if Kafka answers, the producer (otherwise the first request retries it)."""
        self._watch.start()
        try:
            async with asyncio.timeout(self.publish_timeout_s), self._lock:
                await self._started_producer()
        except Exception as exc:  # noqa: BLE001 - intake still starts; requests answer 503 meanwhile
            logger.warning("Kafka producer not started yet", extra={"error": type(exc).__name__})
            self._set_reachable(False)

    async def stop(self) -> None:
        await self._watch.stop()
        producer, self._producer = self._producer, None
        if producer is not None:
            await self._close(producer)
        if self._closing:
            await asyncio.wait(self._closing, timeout=self.publish_timeout_s)

    # -- publishing -----------------------------------------------------------------------------------
    async def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        if not messages:
            return
        if not self._reachable:
            await self._publish_in_transaction(messages, self.down_timeout_s)
            return
        attempt = asyncio.create_task(self._publish_in_transaction(messages, self.publish_timeout_s))
        went_down = asyncio.create_task(self._down.wait())
        try:
            await asyncio.wait({attempt, went_down}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            went_down.cancel()
        if not attempt.done():
            attempt.cancel()  # the attempt drops its producer: what it sent is aborted by the next one
            raise BrokerUnavailable("Kafka became unreachable during the publish")
        await attempt

    async def _publish_in_transaction(self, messages: Sequence[OutgoingMessage], timeout_s: float) -> None:
        try:
            async with asyncio.timeout(timeout_s), self._lock:
                producer = await self._started_producer()
                await self._send_all(producer, messages)
        except PublishRefused:
            raise
        except BaseException as exc:
            # Timed out, cancelled, or a Kafka error: the transaction may be half-way, so this producer is
            # given up (not reused), and the watch is asked to look at the broker now.
            self._drop_producer()
            self._watch.wake()
            if isinstance(exc, TimeoutError):
                self._set_reachable(False)
                raise BrokerUnavailable(f"Kafka did not acknowledge within {timeout_s:g} s") from None
            if isinstance(exc, Exception):
                logger.warning("publish failed", extra={"error": type(exc).__name__})
                raise BrokerUnavailable(f"Kafka refused the publish: {type(exc).__name__}") from None
            raise

    async def _send_all(self, producer: AIOKafkaProducer, messages: Sequence[OutgoingMessage]) -> None:
        await producer.begin_transaction()
        futures = []
        for index, message in enumerate(messages):
            try:
                futures.append(await producer.send(
                    message.topic, message.value, key=None if message.key is None else message.key.encode("utf-8"),
                    headers=_HEADERS + [(k, v.encode()) for k, v in (message.headers or {}).items()]))
            except MessageSizeTooLargeError:
                await producer.abort_transaction()
                raise PublishRefused(index, "the event is larger than a Kafka request may be") from None
        results = await asyncio.gather(*futures, return_exceptions=True)
        failed = {index: result for index, result in enumerate(results) if isinstance(result, BaseException)}
        if not failed:
            await producer.commit_transaction()
            return
        await producer.abort_transaction()  # nothing of the request becomes readable
        too_large = [index for index, error in failed.items() if isinstance(error, MessageSizeTooLargeError)]
        if too_large:
            # Records are sent in batches: the broker refuses a whole batch for its largest record.
            index = max(too_large, key=lambda i: len(messages[i].value))
            raise PublishRefused(index, "the broker refused the event as too large for the topic")
        raise next(iter(failed.values()))

    # -- the producer ---------------------------------------------------------------------------------
    async def _started_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap_servers, client_id=self.client_id,
                transactional_id=self.transactional_id, enable_idempotence=True, acks="all",
                transaction_timeout_ms=int(self.transaction_timeout_s * 1000),
                request_timeout_ms=int(self.publish_timeout_s * 1000), max_request_size=self.max_request_bytes)
            try:
                await producer.start()
            except BaseException:
                self._close_in_background(producer)
                raise
            self._producer = producer
        return self._producer

    def _drop_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            self._close_in_background(producer)

    def _close_in_background(self, producer: AIOKafkaProducer) -> None:
        task = asyncio.create_task(self._close(producer), name="intake-producer-close")
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _close(self, producer: AIOKafkaProducer) -> None:
        """Stop `producer`, giving up on what it still holds after the publish timeout (the broker may be
        gone: aiokafka would otherwise retry its batches for ever)."""
        try:
            await asyncio.wait_for(producer.stop(), timeout=self.publish_timeout_s)
            return
        except Exception:  # noqa: BLE001
            pass
        # Stop the sender first, then fail what is left (failing batches under a live sender fails them twice).
        sender_task = producer._sender.sender_task  # noqa: SLF001 - aiokafka has no public way to give up
        if sender_task is not None and not sender_task.done():
            sender_task.cancel()
            await asyncio.wait({sender_task}, timeout=self.publish_timeout_s)
        producer._message_accumulator.fail_all(KafkaTimeoutError("intake gave this producer up"))  # noqa: SLF001
        try:
            await asyncio.wait_for(producer.client.close(), timeout=self.publish_timeout_s)
        except Exception:  # noqa: BLE001
            logger.warning("Kafka producer did not close cleanly")
