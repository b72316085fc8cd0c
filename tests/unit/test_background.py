"""tthc_common.background.BackgroundLoop: the task plumbing of the relay, sweeper, ticker and refresher."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest

from tthc_common.background import BackgroundLoop


async def until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.005)


async def test_runs_at_start_then_on_wake_or_interval_and_stops() -> None:
    runs: list[int] = []

    async def step() -> None:
        runs.append(len(runs))

    loop = BackgroundLoop("test-loop", step, interval_s=60.0)
    loop.start()
    loop.start()  # a second start does not start a second task
    await until(lambda: len(runs) == 1 and not loop.busy)
    loop.wake()
    await until(lambda: len(runs) == 2)
    await loop.stop()
    await loop.stop()  # stopping twice is harmless
    loop.wake()
    await asyncio.sleep(0.02)
    assert runs == [0, 1]

    short = BackgroundLoop("test-interval", step, interval_s=0.01)
    short.start()
    await until(lambda: len(runs) >= 5)  # never woken: the interval alone runs it again
    await short.stop()
    after_stop = len(runs)
    await asyncio.sleep(0.05)  # five intervals
    assert len(runs) == after_stop >= 5  # it ran on the interval, and not once after it stopped


async def test_a_step_that_says_more_runs_again_at_once() -> None:
    pending = [3]
    rounds: list[int] = []

    async def step() -> bool:
        rounds.append(pending[0])
        pending[0] -= 1
        return pending[0] > 0

    loop = BackgroundLoop("test-more", step, interval_s=60.0)
    loop.start()
    # three rounds back to back, long before the 60 s interval; then it waits (no fourth round)
    await until(lambda: pending[0] == 0, timeout_s=2.0)
    await asyncio.sleep(0.05)
    await loop.stop()
    assert rounds == [3, 2, 1]


async def test_a_failure_is_reported_without_its_message_and_retried(caplog: pytest.LogCaptureFixture) -> None:
    attempts: list[int] = []
    seen: list[Exception] = []
    busy_while_pausing: list[bool] = []

    async def step() -> None:
        attempts.append(1)
        if len(attempts) < 3:
            raise RuntimeError("secret applicant data")

    async def on_error(exc: Exception) -> None:
        seen.append(exc)

    loop = BackgroundLoop("test-retry", step, interval_s=60.0, retry_delay_s=0.05, on_error=on_error,
                          logger=logging.getLogger("tthc.test.background"), failure_message="step failed")

    def record_busy() -> bool:
        if seen and len(attempts) < 3:
            busy_while_pausing.append(loop.busy)
        return len(attempts) == 3

    with caplog.at_level(logging.WARNING, logger="tthc.test.background"):
        loop.start()
        await until(record_busy)
        await loop.stop()
    assert len(seen) == 2 and all(isinstance(e, RuntimeError) for e in seen)
    warnings = [r for r in caplog.records if r.name == "tthc.test.background"]
    assert [(r.getMessage(), getattr(r, "error", None)) for r in warnings] == [("step failed", "RuntimeError")] * 2
    assert "secret" not in caplog.text
    assert busy_while_pausing and all(busy_while_pausing)


async def test_no_failure_message_leaves_the_reporting_to_on_error(caplog: pytest.LogCaptureFixture) -> None:
    failed = asyncio.Event()

    async def step() -> None:
        raise ValueError("boom")

    loop = BackgroundLoop("test-quiet", step, interval_s=60.0, retry_delay_s=60.0, failure_message=None,
                          on_error=lambda exc: failed.set())
    with caplog.at_level(logging.DEBUG):
        loop.start()
        async with asyncio.timeout(5):
            await failed.wait()
        await loop.stop()
    assert [r for r in caplog.records if r.name.startswith("tthc.")] == []


async def test_a_minimum_interval_folds_many_wakes_into_one_round() -> None:
    runs: list[float] = []

    async def step() -> None:
        runs.append(asyncio.get_running_loop().time())

    loop = BackgroundLoop("test-min", step, interval_s=60.0, min_interval_s=0.2)
    loop.start()
    await until(lambda: len(runs) == 1)
    for _ in range(20):  # woken by every batch of a burst (all within the minimum interval, however loaded
        loop.wake()      # the machine: a burst spread over more than 0.2 s would rightly take two rounds)
        await asyncio.sleep(0)
    await until(lambda: len(runs) == 2, timeout_s=2.0)
    await asyncio.sleep(0.3)
    await loop.stop()
    assert len(runs) == 2  # one more round for the whole burst
    assert runs[1] - runs[0] >= 0.2
