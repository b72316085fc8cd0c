"""`GET /healthz` (the process answers), `GET /readyz` (Kafka and the database answer), `GET /metrics`.

One `CollectorRegistry` per app (made in `create_app`), so a test can build many apps in one process
without "Duplicated timeseries" errors.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import anyio.to_thread
from typing import Literal

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import BaseModel
from sqlalchemy.engine import Engine

from .db import check_database

logger = logging.getLogger("tthc.health")


async def kafka_ready(broker: Any, timeout_s: float) -> bool:
    """True when the broker answers a metadata request (FastStream's `ping`: DescribeCluster)."""
    try:
        return bool(await broker.ping(timeout=timeout_s))
    except Exception:  # noqa: BLE001 - not connected yet, connection lost, ...
        return False


async def database_ready(engine: Engine, timeout_s: float) -> bool:
    try:
        async with asyncio.timeout(timeout_s):
            await anyio.to_thread.run_sync(check_database, engine, abandon_on_cancel=True)
        return True
    except Exception:  # noqa: BLE001
        return False


class Readiness(BaseModel):
    status: Literal["ready", "not ready"]
    checks: dict[str, Literal["ok", "unavailable"]]


_READINESS = {"model": Readiness}
_METRICS = {"description": "Prometheus text exposition format",
            "content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}}}


def health_router(*, broker: Any, engine: Engine, registry: CollectorRegistry,
                  readiness_timeout_s: float = 2.0) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz", response_model=Readiness, summary="Ready when Kafka and the database answer",
                responses={200: _READINESS, 503: {**_READINESS, "description": "Kafka or the database does not answer"}})
    async def readyz() -> JSONResponse:
        kafka_ok, db_ok = await asyncio.gather(
            kafka_ready(broker, readiness_timeout_s), database_ready(engine, readiness_timeout_s)
        )
        checks = {"kafka": "ok" if kafka_ok else "unavailable", "database": "ok" if db_ok else "unavailable"}
        ready = kafka_ok and db_ok
        if not ready:
            logger.warning("not ready", extra={"reason": ",".join(k for k, v in checks.items() if v != "ok")})
        return JSONResponse({"status": "ready" if ready else "not ready", "checks": checks},
                            status_code=200 if ready else 503)

    @router.get("/metrics", response_class=Response, responses={200: _METRICS}, summary="Prometheus metrics")
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router
