"""The service's own Prometheus figures. Labels: the apology kind and the agency code only (no
dossier ids, never anything about the applicant)."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter

from .units import Published


class ApologyMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ["kind", "agency"]
        self.drafted = Counter("tthc_apology_drafts_created", "Apology drafts created", labels,
                               registry=registry)
        self.cancelled = Counter("tthc_apology_drafts_cancelled", "Apology drafts cancelled", labels,
                                 registry=registry)
        self.issued = Counter("tthc_apology_letters_issued", "Apology letters issued by an officer", labels,
                              registry=registry)
        self._by_type = {"apology.drafted": self.drafted, "apology.cancelled": self.cancelled,
                         "apology.issued": self.issued}

    def count(self, published: Iterable[Published]) -> None:
        """Call after the transaction committed (a rolled-back draft was never created)."""
        for item in published:
            self._by_type[item.type].labels(item.kind, item.agency_code).inc()
