"""A service's ASGI app as schemathesis (or any ASGI client running the lifespan) sees it: its lifespan runs
on FastStream's in-memory Kafka broker, and an optional `seed(broker)` feeds its consumers before the first
request, so that reads find something."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from faststream.kafka import TestKafkaBroker

Seed = Callable[[Any], Awaitable[None]]


def in_memory_kafka(app: Any, seed: Seed | None = None) -> Any:
    """`app` whose lifespan runs with `TestKafkaBroker` around it (schemathesis runs the lifespan itself)."""

    async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await app(scope, receive, send)
            return
        await receive()  # lifespan.startup
        async with TestKafkaBroker(app.state.kafka_router.broker) as broker, app.router.lifespan_context(app):
            if seed is not None:
                await seed(broker)
            await send({"type": "lifespan.startup.complete"})
            await receive()  # lifespan.shutdown
        await send({"type": "lifespan.shutdown.complete"})

    return wrapped
