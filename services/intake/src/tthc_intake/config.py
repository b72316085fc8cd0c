"""Intake's settings (env prefix `INTAKE_`), including the source keys it accepts."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import Field, field_validator
from pydantic_settings import NoDecode
from tthc_common.settings import ServiceSettings, service_settings_config

from .auth import parse_source_keys

MiB = 1024 * 1024


class IntakeSettings(ServiceSettings):
    model_config = service_settings_config("INTAKE_")
    service_name: ClassVar[str] = "intake"

    http_port: int = 8001
    # `INTAKE_SOURCE_KEYS`: which key may post for which source, as `source=sha256:<hex>,...`
    # (digest printed by `python -m tthc_intake hash-key KEY`), `source=<key>`, or a JSON object
    # `{"source": "sha256:<hex>" | "<key>" | [...]}`. Held here as {sha256 hex digest: source} only:
    # a plain key is hashed while the settings are read and not kept.
    source_keys: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    max_body_bytes: int = 5 * MiB
    max_events_per_request: int = 1000

    @field_validator("source_keys", mode="before")
    @classmethod
    def _digest_source_keys(cls, value: Any) -> dict[str, str]:
        return parse_source_keys(value)
