"""Events the services publish (events.md, "Derived events"). Same envelope as dossier events."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter

from .events import Agency, Duration

ScheduleBasis = Literal["received", "supplement_restart", "resumed", "extended", "calendar_change"]
Outcome = Literal["early", "on_time", "late"]
ApologyKind = Literal["at_risk", "overdue", "late_result"]


class _Data(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class _Derived(BaseModel):
    model_config = ConfigDict(frozen=True)

    event_id: str
    schema_version: Literal[1] = 1
    occurred_at: AwareDatetime
    source: str
    dossier_id: str


class ScheduledData(_Data):
    due_at: AwareDatetime
    at_risk_at: AwareDatetime | None
    handling_agency: Agency
    basis: ScheduleBasis


class AtRiskData(_Data):
    due_at: AwareDatetime
    handling_agency: Agency
    duration: Duration | None = None  # the statutory duration, for the apology's proposed appointment


class OverdueData(_Data):
    due_at: AwareDatetime
    handling_agency: Agency | None = None
    extended: bool = False  # true when due_at is the extended appointment: no apology draft follows
    duration: Duration | None = None


class ClosedData(_Data):
    outcome: Outcome
    closed_at: AwareDatetime
    due_at: AwareDatetime
    late_by_hours: float | None
    handling_agency: Agency | None = None
    duration: Duration | None = None


class DraftedData(_Data):
    apology_id: str
    kind: ApologyKind
    agency: Agency
    due_at: AwareDatetime
    proposed_due_at: AwareDatetime
    document_url: str


class IssuedData(_Data):
    apology_id: str
    number: str
    issued_at: AwareDatetime
    new_due_at: AwareDatetime
    agency: Agency | None = None


class CancelledData(_Data):
    apology_id: str
    reason: str


class DeadlineScheduled(_Derived):
    type: Literal["deadline.scheduled"] = "deadline.scheduled"
    data: ScheduledData


class DeadlineAtRisk(_Derived):
    type: Literal["deadline.at_risk"] = "deadline.at_risk"
    data: AtRiskData


class DeadlineOverdue(_Derived):
    type: Literal["deadline.overdue"] = "deadline.overdue"
    data: OverdueData


class DeadlineClosed(_Derived):
    type: Literal["deadline.closed"] = "deadline.closed"
    data: ClosedData


class ApologyDrafted(_Derived):
    type: Literal["apology.drafted"] = "apology.drafted"
    data: DraftedData


class ApologyIssued(_Derived):
    type: Literal["apology.issued"] = "apology.issued"
    data: IssuedData


class ApologyCancelled(_Derived):
    type: Literal["apology.cancelled"] = "apology.cancelled"
    data: CancelledData


DEADLINE_EVENT_MODELS = (DeadlineScheduled, DeadlineAtRisk, DeadlineOverdue, DeadlineClosed)
APOLOGY_EVENT_MODELS = (ApologyDrafted, ApologyIssued, ApologyCancelled)

DeadlineEvent = Annotated[
    Union[DeadlineScheduled, DeadlineAtRisk, DeadlineOverdue, DeadlineClosed], Field(discriminator="type")
]
ApologyEvent = Annotated[Union[ApologyDrafted, ApologyIssued, ApologyCancelled], Field(discriminator="type")]

deadline_event_adapter: TypeAdapter[Any] = TypeAdapter(DeadlineEvent)
apology_event_adapter: TypeAdapter[Any] = TypeAdapter(ApologyEvent)


class Tick(BaseModel):
    """The deadline service's wall-clock tick, published to its own topic (interfaces.md, Time)."""

    model_config = ConfigDict(frozen=True)
    type: Literal["deadline.tick"] = "deadline.tick"
    at: AwareDatetime
    instance: str = ""
