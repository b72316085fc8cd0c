"""The wall-clock tick (interfaces.md, Time): the ONLY place the deadline service reads the clock.

Every `tick_interval_s` it publishes `deadline.tick` with the current instant to its own topic; the
service consumes that topic like any other input, so time advances by messages, as in a replay.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from tthc_common.background import BackgroundLoop
from tthc_common.publish import JSON_HEADERS
from tthc_contracts.derived import Tick
from tthc_contracts.timefmt import now_vn

from .metrics import DeadlineMetrics

logger = logging.getLogger("tthc.deadline.ticker")


class Ticker:
    def __init__(self, broker: Any, *, topic: str, interval_s: float, instance: str, metrics: DeadlineMetrics,
                 publish_timeout_s: float = 10.0, clock: Callable[[], datetime] = now_vn) -> None:
        self.broker = broker
        self.topic = topic
        self.interval_s = interval_s
        self.instance = instance
        self.metrics = metrics
        self.publish_timeout_s = publish_timeout_s
        self.clock = clock
        # Kafka away: the next tick carries a later instant anyway, so a failed one waits its interval too.
        self._loop = BackgroundLoop("deadline-ticker", self._step, interval_s=interval_s, retry_delay_s=interval_s,
                                    logger=logger, failure_message="tick not published")

    async def tick_once(self) -> Tick:
        tick = Tick(at=self.clock(), instance=self.instance)
        async with asyncio.timeout(self.publish_timeout_s):
            await self.broker.publish(tick.model_dump_json().encode("utf-8"), self.topic,
                                      key=self.instance.encode("utf-8"), headers=JSON_HEADERS)
        self.metrics.ticks_published.inc()
        return tick

    async def _step(self) -> None:
        await self.tick_once()

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()
