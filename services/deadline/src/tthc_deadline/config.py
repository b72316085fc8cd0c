"""The deadline service's settings (env prefix `DEADLINE_`)."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import ClassVar

from pydantic import Field

from tthc_common.settings import ServiceSettings, service_settings_config


def _default_instance() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class DeadlineSettings(ServiceSettings):
    model_config = service_settings_config("DEADLINE_")
    service_name: ClassVar[str] = "deadline"

    http_port: int = 8002
    # `DEADLINE_CALENDAR_FILE`: the deployment's calendar (deadlines.md §1). Read once at start-up; a
    # file that does not load stops the service with its line and reason. Unset: holidays.VN only.
    calendar_file: Path | None = None
    # interfaces.md, Time: a tick of wall time is published this often (the only wall-clock read).
    tick_interval_s: float = Field(default=30.0, gt=0)
    # Off in a replay-like deployment (and in tests): the watermark then follows the events only.
    publish_ticks: bool = True
    # One event may move the service's time at most this far past the latest tick (None: no limit),
    # so a mistyped year cannot make every open dossier overdue. Without ticks there is no limit.
    max_event_lead_s: float | None = Field(default=3600.0, gt=0)
    # Names this instance in its ticks (debugging several replicas); default host-pid.
    instance_name: str = Field(default_factory=_default_instance)
    # Dossiers advanced per transaction when the watermark passes their next moment.
    due_batch_size: int = Field(default=200, gt=0)
    # The state gauges are re-read after batches, ticks and sweeps, at most this often.
    state_gauges_min_interval_s: float = Field(default=1.0, ge=0)
