"""Settings every service shares. A service subclasses `ServiceSettings` and sets its env prefix.

    class DeadlineSettings(ServiceSettings):
        model_config = service_settings_config("DEADLINE_")
        service_name: ClassVar[str] = "deadline"
        http_port: int = 8002

Nothing is read at import time: `DeadlineSettings()` reads the environment when it is called.

Two variables are shared by all services and may be given without a prefix:
`KAFKA_BOOTSTRAP_SERVERS` and `TTHC_TOPIC_PREFIX`. A prefixed one (`DEADLINE_KAFKA_BOOTSTRAP_SERVERS`,
`DEADLINE_TOPIC_PREFIX`) wins over the shared one, so one service can be pointed elsewhere.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from tthc_contracts.topics import Topics

# field name -> unprefixed environment variable that every service reads as a fallback
SHARED_ENV: dict[str, str] = {
    "kafka_bootstrap_servers": "KAFKA_BOOTSTRAP_SERVERS",
    "topic_prefix": "TTHC_TOPIC_PREFIX",
}


def service_settings_config(env_prefix: str) -> SettingsConfigDict:
    # hide_input_in_errors: a malformed setting must not print a key or a password in the error.
    return SettingsConfigDict(env_prefix=env_prefix, extra="ignore", case_sensitive=False,
                              hide_input_in_errors=True)


class _SharedEnvSource(PydanticBaseSettingsSource):
    """Reads the unprefixed shared variables; sits below the prefixed environment in priority."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        env_name = SHARED_ENV.get(field_name)
        if env_name is None or env_name not in os.environ:
            return None, field_name, False
        return os.environ[env_name], field_name, False

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for field_name, field in self.settings_cls.model_fields.items():
            value, _, _ = self.get_field_value(field, field_name)
            if value is not None:
                values[field_name] = value
        return values


def supported_database_url(url: str) -> str:
    """`url` if it names SQLite or PostgreSQL (psycopg 3; `postgresql://` means it); else ValueError."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ValueError("not a database URL: use sqlite:///var/x.db or "
                         "postgresql+psycopg://user:password@host:5432/name") from None
    backend, driver = parsed.get_backend_name(), parsed.get_driver_name()
    if backend == "sqlite" and driver in ("pysqlite", "sqlite"):
        return url
    if backend == "postgresql":
        if driver == "psycopg":
            return url
        if "+" not in parsed.drivername:
            return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    raise ValueError(f"{parsed.drivername!r} is not supported: use sqlite:///var/x.db or "
                     "postgresql+psycopg://user:password@host:5432/name")


class ServiceSettings(BaseSettings):
    model_config = service_settings_config("TTHC_")

    # Subclasses set it; it names the default database file, consumer group and Kafka client id.
    service_name: ClassVar[str] = "service"

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    topic_prefix: str = ""
    # Empty means `sqlite:///var/<service_name>.db`, relative to the working directory. Validated as a field (not
    # by the model) so that a refusal names its variable: `DEADLINE_DATABASE_URL: 'mysql' is not supported...`.
    database_url: str = Field(default="", validate_default=True)
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    # Empty means `tthc-<service_name>`.
    consumer_group: str = ""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "json"

    # How long to wait for Kafka to acknowledge a publish before the caller gives up (503 / retry).
    kafka_publish_timeout_s: float = 10.0
    # At start-up, how long to wait for the database and Kafka to answer before refusing to start.
    startup_wait_s: float = Field(default=30.0, ge=0)
    # /readyz: how long the Kafka and database probes may take.
    readiness_timeout_s: float = 2.0
    # Consumers read batches of at most this many records, waiting at most this long for more.
    batch_max_records: int = Field(default=500, gt=0, le=10_000)
    batch_linger_ms: int = Field(default=100, ge=0, le=60_000)
    # A message whose processing fails (not the infrastructure) is tried this many times, the pause
    # doubling from `poison_backoff_s`, before it is set aside on the dead-letter topic.
    poison_attempts: int = Field(default=3, gt=0, le=20)
    poison_backoff_s: float = Field(default=0.2, ge=0)
    # While the database or the broker is unreachable, a batch is read again after a pause doubling
    # from `retry_delay_s` up to `retry_max_delay_s`, so an outage does not turn into a hot loop.
    retry_delay_s: float = Field(default=1.0, ge=0)
    retry_max_delay_s: float = Field(default=30.0, ge=0)
    # The outbox relay polls this often when nobody wakes it.
    outbox_poll_interval_s: float = 0.5

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, url: str) -> str:
        return supported_database_url(url or f"sqlite:///var/{cls.service_name}.db")

    @model_validator(mode="after")
    def _derive_defaults(self) -> ServiceSettings:
        if not self.consumer_group:
            self.consumer_group = f"tthc-{self.service_name}"
        return self

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_prefix)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, dotenv_settings, _SharedEnvSource(settings_cls),
                file_secret_settings)
