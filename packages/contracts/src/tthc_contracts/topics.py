"""Kafka topic names. Every topic is keyed by `dossier_id`, so one dossier's events stay in order.

A deployment (or a test) may prefix every name, e.g. `TTHC_TOPIC_PREFIX=test-1a2b.`, so that
several stacks share one broker without reading each other's messages.
"""

from dataclasses import dataclass

DOSSIER_EVENTS = "tthc.dossier-events.v1"  # intake -> deadline, apology, metrics
DEADLINE_EVENTS = "tthc.deadline-events.v1"  # deadline -> apology, metrics
APOLOGY_EVENTS = "tthc.apology-events.v1"  # apology -> metrics
DEADLINE_TICKS = "tthc.deadline-ticks.v1"  # deadline's own 30 s wall-clock tick (interfaces.md, Time)
DEAD_LETTER = "tthc.dead-letter.v1"  # messages that can never be processed, with the reason


@dataclass(frozen=True)
class Topics:
    prefix: str = ""

    @property
    def dossier_events(self) -> str:
        return self.prefix + DOSSIER_EVENTS

    @property
    def deadline_events(self) -> str:
        return self.prefix + DEADLINE_EVENTS

    @property
    def apology_events(self) -> str:
        return self.prefix + APOLOGY_EVENTS

    @property
    def deadline_ticks(self) -> str:
        return self.prefix + DEADLINE_TICKS

    @property
    def dead_letter(self) -> str:
        return self.prefix + DEAD_LETTER

    def all(self) -> tuple[str, ...]:
        return (self.dossier_events, self.deadline_events, self.apology_events, self.deadline_ticks,
                self.dead_letter)
