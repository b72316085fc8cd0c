"""Intake's settings (env prefix `INTAKE_`), including the source keys it accepts."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import ClassVar

from pydantic import Field, model_validator
from tthc_common.settings import ServiceSettings, service_settings_config

MiB = 1024 * 1024
# What intake's own Kafka producer sends in one request at most (aiokafka's default, Kafka's default
# `message.max.bytes` is about the same): no event may come near it.
PRODUCER_MAX_REQUEST_BYTES = 1 * MiB


class IntakeSettings(ServiceSettings):
    model_config = service_settings_config("INTAKE_")
    service_name: ClassVar[str] = "intake"

    http_port: int = 8001
    # `INTAKE_SOURCE_KEYS`: which key may post for which source, `source=sha256:<64 hex>,...` (the digest
    # printed by `python -m tthc_intake hash-key KEY`; one source may have several keys). Read by
    # `tthc_common.keys.Keys.parse` when the app is built: a plain key, or no key at all, and intake
    # refuses to start.
    source_keys: str = ""
    max_body_bytes: int = Field(default=5 * MiB, gt=0)
    max_events_per_request: int = Field(default=1000, gt=0)
    # events.md, Bounds: an event at most 64 KiB of JSON (as published), nesting at most 32 deep.
    max_event_bytes: int = Field(default=64 * 1024, gt=0, le=PRODUCER_MAX_REQUEST_BYTES - 1024)
    # `INTAKE_DVCQG_CATALOGUE`: the procedure catalogue of `POST /v1/dvcqg` (dvcqg.md: MaTTHC -> statutory
    # duration, agency names). Read once at start-up; a file that does not load stops intake with its line
    # and reason. Unset: `POST /v1/dvcqg` answers 501 (the national portal's bodies are not taken).
    dvcqg_catalogue: Path | None = None
    # `occurred_at` may lie at most this far after intake's clock (clocks of one-stop desks drift). A stack
    # that replays simulated days ahead of today raises it (tests/support/stack.py).
    max_event_lead_s: float = Field(default=15 * 60, ge=0)

    # One Kafka transaction per request. The id is stable across restarts of one instance, so a restarted
    # intake fences its predecessor and aborts a transaction it left open; empty means
    # `tthc-intake-<topic prefix><host>:<port>`, distinct for every instance on a host.
    transactional_id: str = ""
    kafka_transaction_timeout_s: float = Field(default=30.0, gt=0)
    # While the broker is known to be unreachable, a publish gets this long before intake answers 503.
    kafka_down_publish_timeout_s: float = Field(default=0.5, gt=0)
    # How often the broker's reachability is probed (each probe waits at most this long too).
    broker_watch_interval_s: float = Field(default=1.0, gt=0)
    # `Retry-After` of a 503.
    retry_after_s: int = Field(default=5, ge=1)

    @model_validator(mode="after")
    def _default_transactional_id(self) -> IntakeSettings:
        if not self.transactional_id:
            self.transactional_id = f"tthc-intake-{self.topic_prefix}{socket.gethostname()}:{self.http_port}"
        return self
