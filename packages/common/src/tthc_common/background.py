"""One background task that runs a step over and over until stopped: the plumbing of the outbox relay,
the deadline service's sweeper and ticker, the metrics service's gauge refresher.

    loop = BackgroundLoop("deadline-sweeper", step, interval_s=5.0, retry_delay_s=1.0,
                          logger=logger, failure_message="due sweep failed, will retry")
    loop.start()   # in the app's startup; creates the task (once)
    loop.wake()    # run the step soon rather than at the next interval
    await loop.stop()   # at shutdown; cancels the task and waits for it

Each round clears the wake signal, then awaits `step()`:
- it returns true: there may be more to do, the next round starts at once;
- it returns false or None: the loop waits for `wake()` or `interval_s`, whichever comes first;
- it raises an `Exception`: the loop reports it (`on_error`, and a warning with `failure_message` naming
  only the exception's type, never its message, which may quote data), pauses `retry_delay_s`, then
  starts the next round at once. Cancellation (`stop()`) is never swallowed.

A wake() that arrives while a step runs is not lost: the signal is cleared before the step, not after.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable

Step = Callable[[], Awaitable[bool | None]]
ErrorHook = Callable[[Exception], Awaitable[None] | None]

_logger = logging.getLogger("tthc.background")


class BackgroundLoop:
    def __init__(self, name: str, step: Step, *, interval_s: float, retry_delay_s: float = 1.0,
                 logger: logging.Logger | None = None,
                 failure_message: str | None = "background step failed, will retry",
                 on_error: ErrorHook | None = None, min_interval_s: float = 0.0) -> None:
        """`name` names the asyncio task. `failure_message=None`: `on_error` does all the reporting.
        `min_interval_s`: after a round, at least this long before the next, however often it is woken (a
        refresh woken by every batch need not run for every batch)."""
        self.name = name
        self.min_interval_s = min_interval_s
        self.step = step
        self.interval_s = interval_s
        self.retry_delay_s = retry_delay_s
        self.logger = logger or _logger
        self.failure_message = failure_message
        self.on_error = on_error
        self._wake = asyncio.Event()
        self._busy = False
        self._task: asyncio.Task[None] | None = None

    @property
    def woken(self) -> bool:
        """A wake() is waiting for the next round."""
        return self._wake.is_set()

    @property
    def busy(self) -> bool:
        """A step, or the pause after a failed one, is under way."""
        return self._busy

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    async def _failed(self, exc: Exception) -> None:
        if self.on_error is not None:
            reported = self.on_error(exc)
            if inspect.isawaitable(reported):
                await reported
        if self.failure_message is not None:
            self.logger.warning(self.failure_message, extra={"error": type(exc).__name__})

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            self._busy = True
            try:
                more = await self.step()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - Kafka or the database away: keep the task alive
                await self._failed(exc)
                await asyncio.sleep(self.retry_delay_s)
                continue
            finally:
                self._busy = False
            if more:
                continue
            if self.min_interval_s:
                await asyncio.sleep(self.min_interval_s)
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.interval_s)
            except TimeoutError:
                pass
