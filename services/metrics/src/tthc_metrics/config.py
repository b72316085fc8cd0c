"""Settings of the metrics service, from `METRICS_*` environment variables (read when instantiated).

    METRICS_DATABASE_URL            SQLAlchemy URL (default sqlite:///var/metrics.db)
    METRICS_CALENDAR_FILE           the deployment's calendar file (deadlines.md §1); unset: the
                                    national calendar only. A file that does not parse stops the start.
    METRICS_GAUGE_REFRESH_INTERVAL_S how often the Prometheus gauges are recomputed (default 30 s)
    METRICS_HTTP_PORT               8004
plus the shared ones of `tthc_common.settings.ServiceSettings` (KAFKA_BOOTSTRAP_SERVERS,
TTHC_TOPIC_PREFIX, METRICS_CONSUMER_GROUP, METRICS_BATCH_MAX_RECORDS, METRICS_BATCH_LINGER_MS, ...).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field

from tthc_common.settings import ServiceSettings, service_settings_config


class MetricsSettings(ServiceSettings):
    model_config = service_settings_config("METRICS_")
    service_name: ClassVar[str] = "metrics"

    http_port: int = 8004
    calendar_file: Path | None = None
    gauge_refresh_interval_s: float = Field(default=30.0, gt=0)
