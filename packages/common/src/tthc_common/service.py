"""Assembling a service: the FastAPI app, its start/stop order, and `python -m tthc_<name>`.

Start order: logging -> database migrations -> Kafka broker (and its consumers) -> outbox relay.
Stop order is the reverse, so the relay never publishes through a closed producer and no consumer
runs before its tables exist.

`service_main` is every service's `__main__`: a mistake in the settings, a configuration file that does
not load, an unsupported database URL, a database or a broker that does not answer at start-up: one line
on stderr that says what to fix, and exit code 2, never a traceback.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import logging
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio.to_thread
from fastapi import FastAPI
import prometheus_client
from prometheus_client import CollectorRegistry
from pydantic import ValidationError
from sqlalchemy.engine import Engine

from .asyncapi import asyncapi_router
from .broker import KafkaRouter, flush_producer_or_give_up
from .db import check_database, make_engine, run_migrations
from .errors import BodyLimit, install_error_handlers, plain_reason
from .health import health_router
from .keys import KeysError, hash_key
from .logging import configure_logging
from .outbox import OutboxRelay
from .settings import ServiceSettings

Hook = Callable[[], Awaitable[None]]


def build_service_app(
    settings: ServiceSettings,
    *,
    title: str,
    router: KafkaRouter,
    engine: Engine,
    registry: CollectorRegistry,
    migrations_dir: str | Path | None,
    relay: OutboxRelay | None = None,
    after_broker_start: Sequence[Hook] = (),
    before_broker_stop: Sequence[Hook] = (),
    max_body_bytes: int | None = None,
    **fastapi_kwargs: Any,
) -> FastAPI:
    """A FastAPI app with health/readiness/metrics, migrations at start and the broker's lifespan.

    `max_body_bytes`: request bodies over it are refused (413) before they are read whole.

    The service then adds its own routes: `app.include_router(my_routes)`.
    """
    configure_logging(settings.service_name, settings.log_level, settings.log_format)
    # `/metrics` without a `_created` series beside every counter and histogram (noise for Prometheus).
    prometheus_client.disable_created_metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if migrations_dir is not None:
            await anyio.to_thread.run_sync(run_migrations, settings.database_url, migrations_dir)
        try:
            yield  # the router's lifespan (broker start/stop) runs inside this one
        finally:
            engine.dispose()

    @router.after_startup
    async def _start_background(app: FastAPI) -> None:
        if relay is not None:
            relay.start()
        for hook in after_broker_start:
            await hook()
        # What is loaded by now (modules, the app, the holiday tables) lives as long as the process.
        # Frozen, the cyclic garbage collector's full passes skip it: they would otherwise walk some
        # 130,000 objects (about 90 ms on a small VM) in the middle of whatever handler triggered them.
        gc.freeze()

    @router.on_broker_shutdown
    async def _stop_background(app: FastAPI) -> None:
        gc.unfreeze()  # collectable again (several apps may start and stop in one process: tests)
        for hook in before_broker_stop:
            await hook()
        if relay is not None:
            await relay.stop()
        await flush_producer_or_give_up(router.broker, settings.kafka_publish_timeout_s)

    app = FastAPI(title=title, lifespan=lifespan, **fastapi_kwargs)
    install_error_handlers(app)
    if max_body_bytes is not None:
        app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    app.include_router(router)  # FastAPI merges the router's lifespan: the broker starts after ours
    app.include_router(health_router(broker=router.broker, engine=engine, registry=registry,
                                     readiness_timeout_s=settings.readiness_timeout_s))
    app.include_router(asyncapi_router(router.broker, title=title, version=app.version,
                                       description=fastapi_kwargs.get("description")))
    app.state.settings = settings
    app.state.engine = engine
    app.state.registry = registry
    app.state.kafka_router = router
    app.state.broker = router.broker
    app.state.relay = relay
    return app


def run_service(app: FastAPI, settings: ServiceSettings) -> None:
    """Serve `app` with uvicorn on the configured host and port (blocks until stopped)."""
    import uvicorn

    # log_config=None: keep the structured logging configured by build_service_app.
    uvicorn.run(app, host=settings.http_host, port=settings.http_port, log_config=None,
                lifespan="on", proxy_headers=True)


# -- python -m tthc_<service> ------------------------------------------------------------------------------
class StartupRefused(Exception):
    """The service must not start; the message says what to fix (one line, no secrets)."""


def _settings_problem(exc: ValidationError, env_prefix: str) -> str:
    """`DEADLINE_HTTP_PORT: Input should be a valid integer...; ...`: each problem after the variable to fix.
    (A problem of the whole model, without a field, says in its message what to set.)"""
    problems = []
    for err in exc.errors(include_url=False, include_input=False):
        message = plain_reason(err["msg"])
        name = ".".join(str(p) for p in err["loc"])
        problems.append(f"{env_prefix}{name}".upper() + f": {message}" if name else message)
    return "; ".join(problems)


def wait_for_database(url: str, timeout_s: float, *, setting: str = "DATABASE_URL") -> None:
    """Raises StartupRefused when the database does not answer within `timeout_s` (naming `setting`, never the
    URL: it may hold a password)."""
    import time

    engine = make_engine(url)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                check_database(engine)
                return
            except Exception as exc:  # noqa: BLE001 - any failure to connect is "not reachable"
                if time.monotonic() >= deadline:
                    raise StartupRefused(
                        f"the database did not answer within {timeout_s:g} s ({type(exc).__name__}): start it or "
                        f"fix {setting}") from None
                time.sleep(0.5)
    finally:
        engine.dispose()


async def _kafka_answers(bootstrap_servers: str, timeout_s: float) -> str | None:
    from aiokafka import AIOKafkaClient

    loop_deadline = asyncio.get_running_loop().time() + timeout_s
    last = "no answer"
    while True:
        client = AIOKafkaClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=5000)
        try:
            async with asyncio.timeout(max(0.1, min(5.0, loop_deadline - asyncio.get_running_loop().time()))):
                await client.bootstrap()
            return None
        except Exception as exc:  # noqa: BLE001
            last = type(exc).__name__
        finally:
            await client.close()
        if asyncio.get_running_loop().time() >= loop_deadline:
            return last
        await asyncio.sleep(0.5)


def wait_for_kafka(bootstrap_servers: str, timeout_s: float) -> None:
    """Raises StartupRefused when no broker of `bootstrap_servers` answers within `timeout_s`."""
    # aiokafka logs every failed connection at ERROR: the one line below says it all.
    aiokafka_logger = logging.getLogger("aiokafka")
    level = aiokafka_logger.level
    aiokafka_logger.setLevel(logging.CRITICAL)
    try:
        problem = asyncio.run(_kafka_answers(bootstrap_servers, timeout_s))
    finally:
        aiokafka_logger.setLevel(level)
    if problem is not None:
        raise StartupRefused(f"Kafka at {bootstrap_servers} did not answer within {timeout_s:g} s ({problem}): "
                             "start it or fix KAFKA_BOOTSTRAP_SERVERS")


S = Any


# glibc's M_ARENA_MAX (malloc.h). Each thread that allocates gets a malloc arena of its own, up to eight per
# core, and keeps the memory freed in it: the worker threads that run the units of work then hold several
# heaps' worth of freed batches. Two arenas cut the services' peak RSS by 3-9% in `make bench-scale`
# (100,000 dossiers: metrics 277 -> 252 MiB, deadline 235 -> 216, intake 174 -> 158) at the same throughput.
_M_ARENA_MAX = -8
MALLOC_ARENAS = 2


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> None:
    """Before any thread starts; unless the operator set MALLOC_ARENA_MAX, or this is not glibc."""
    if "MALLOC_ARENA_MAX" in os.environ or not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL("libc.so.6").mallopt(_M_ARENA_MAX, arenas)
    except (OSError, AttributeError):  # musl (Alpine) and others: no such library or function
        pass


def service_main(name: str, argv: list[str] | None, *, settings: Callable[[], S],
                 create_app: Callable[[S], FastAPI],
                 refuse_on: Sequence[type[Exception]] | Mapping[type[Exception], str] = (),
                 hash_keys: bool = False, warm_up: Callable[[FastAPI], None] | None = None) -> int:
    """`python -m tthc_<name> [hash-key KEY]`: serve, or print the digest of a key to configure.

    `refuse_on`: the service's own configuration errors (a calendar file, letter templates...), reported
    as one line like the settings' own; given as a mapping, each to the setting to fix (`{CalendarFileError:
    "calendar_file"}` reads `DEADLINE_CALENDAR_FILE: <the error>`). Returns the exit code; 2 for every user
    mistake.
    """
    prog = f"tthc_{name}"
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["hash-key"] and hash_keys:
        if len(args) != 2:
            print(f"usage: python -m {prog} hash-key KEY", file=sys.stderr)
            return 2
        print(hash_key(args[1]))
        return 0
    if args:
        print(f"usage: python -m {prog}" + (" [hash-key KEY]" if hash_keys else ""), file=sys.stderr)
        return 2
    limit_malloc_arenas()

    def refuse(reason: str) -> int:
        print(f"{name}: refusing to start: {reason}", file=sys.stderr)
        return 2

    prefix = _env_prefix(settings)
    settings_named = dict(refuse_on) if isinstance(refuse_on, Mapping) else dict.fromkeys(refuse_on, "")
    try:
        loaded = settings()
    except ValidationError as exc:
        return refuse(_settings_problem(exc, prefix))
    try:
        app = create_app(loaded)
    except ValidationError as exc:
        return refuse(_settings_problem(exc, prefix))
    except (StartupRefused, KeysError, *settings_named) as exc:
        setting = next((f"{prefix}{field}".upper() for kind, field in settings_named.items()
                        if field and isinstance(exc, kind)), None)
        message = str(exc).replace("\n", " ")
        return refuse(f"{setting}: {message}" if setting else message)
    try:
        wait_for_database(loaded.database_url, loaded.startup_wait_s, setting=f"{prefix}DATABASE_URL")
        wait_for_kafka(loaded.kafka_bootstrap_servers, loaded.startup_wait_s)
    except StartupRefused as exc:
        return refuse(str(exc))
    if warm_up is not None:
        warm_up(app)
    run_service(app, loaded)
    return 0


def _env_prefix(settings: Callable[[], Any]) -> str:
    config = getattr(settings, "model_config", None) or {}
    return str(config.get("env_prefix", ""))
