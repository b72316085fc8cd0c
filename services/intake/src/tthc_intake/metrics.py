"""Intake's own Prometheus metrics. Labels are bounded: event type and a fixed reason class, never a
dossier, a source's data or an applicant."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class RejectReason(StrEnum):
    UNAUTHORIZED = "unauthorized"  # 401
    WRONG_SOURCE = "wrong_source"  # 403
    TOO_LARGE = "too_large"  # 413: the body, the number of events, or one event over its limit
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"  # 415
    MALFORMED = "malformed"  # 422: not JSON, too deeply nested, not an object or array
    INVALID = "invalid"  # 422: an event broke the contract or its bounds (or a national-portal item its rules)
    NOT_CONFIGURED = "not_configured"  # 501: POST /v1/dvcqg without a procedure catalogue
    KAFKA_UNAVAILABLE = "kafka_unavailable"  # 503
    DATABASE_UNAVAILABLE = "database_unavailable"  # 503


class IntakeMetrics:
    def __init__(self, registry: CollectorRegistry, *, kafka_reachable: Callable[[], bool]) -> None:
        self.accepted = Counter("tthc_intake_events_accepted", "Events published to Kafka, by type",
                                ["type"], registry=registry)
        self.duplicates = Counter("tthc_intake_events_duplicate",
                                  "Events already accepted before (or earlier in the request), not republished",
                                  ["type"], registry=registry)
        self.rejected = Counter("tthc_intake_requests_rejected", "Requests refused, by reason class",
                                ["reason"], registry=registry)
        self.invalid_events = Counter("tthc_intake_events_invalid", "Events refused as invalid (422)",
                                      registry=registry)
        self.batch_size = Histogram("tthc_intake_request_events", "Events per accepted request",
                                    buckets=(1, 2, 5, 10, 50, 100, 250, 500, 1000), registry=registry)
        self.kafka_reachable = Gauge("tthc_intake_kafka_reachable",
                                     "1 while the broker answers intake's watch, 0 while requests get 503",
                                     registry=registry)
        self.kafka_reachable.set_function(lambda: 1.0 if kafka_reachable() else 0.0)
        for reason in RejectReason:  # export zeros, so rate() works from the first scrape
            self.rejected.labels(reason.value)
