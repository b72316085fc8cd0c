"""Event contract v1 (`spec/events.md`): the dossier events one-stop software posts to intake.

Each event type is its own model with a literal `type`, joined in a discriminated union, so a
validation error names the exact field (`data.duration.value`) and the JSON Schema of every
type can be exported and committed.
"""

from __future__ import annotations

import unicodedata
import uuid
from typing import Annotated, Any, Literal, Union

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
)


def _nfc(value: str) -> str:
    # Vietnamese text is compared and rendered in NFC; one-stop software may send NFD.
    return unicodedata.normalize("NFC", value)


Text = Annotated[str, AfterValidator(_nfc)]
Code = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_nfc)]
DossierId = Annotated[str, Field(min_length=1, max_length=64)]
Source = Annotated[str, Field(min_length=1, max_length=64)]


def _uuid_text(value: str) -> str:
    uuid.UUID(value)  # raises ValueError with a clear message when it is not a UUID
    return value


EventId = Annotated[str, AfterValidator(_uuid_text)]

Channel = Literal["in_person", "online", "postal"]
DurationUnit = Literal["working_days", "working_hours", "calendar_days", "months"]
SupplementMode = Literal["restart", "pause"]


class _Data(BaseModel):
    # Unknown fields are kept (and ignored), so a newer one-stop release does not break intake.
    model_config = ConfigDict(extra="allow", frozen=True)


class Agency(_Data):
    code: Code
    name: Text


class Procedure(_Data):
    code: Code
    name: Text
    field_code: Code
    field_name: Text


class Duration(_Data):
    value: float = Field(gt=0)
    unit: DurationUnit


class Applicant(_Data):
    kind: Literal["citizen", "organization"]
    name: Text = Field(min_length=1)
    address: Text | None = None
    phone: str | None = None
    email: str | None = None


class ReceivedData(_Data):
    procedure: Procedure
    receiving_agency: Agency
    handling_agency: Agency | None = None
    channel: Channel
    duration: Duration
    applicant: Applicant
    appointment_at: AwareDatetime | None = None
    supplement_mode: SupplementMode | None = None


class SubmittedData(_Data):
    channel: Channel


class RefusedData(_Data):
    reason: Text


class TransferredData(_Data):
    to_agency: Agency
    step_hours: float | None = Field(default=None, ge=0)


class SupplementRequestedData(_Data):
    reason: Text
    requested_by: Code | None = None


class SupplementReceivedData(_Data):
    channel: Channel


class PausedData(_Data):
    reason: Literal["financial_obligation", "other"]


class EmptyData(_Data):
    pass


class ExtendedData(_Data):
    new_due_at: AwareDatetime
    reason: Text


class OptionalReasonData(_Data):
    reason: Text | None = None


class ResolvedData(_Data):
    result: Literal["approved", "denied"]


class _Envelope(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: EventId
    schema_version: Literal[1]
    occurred_at: AwareDatetime
    source: Source
    dossier_id: DossierId


class DossierSubmitted(_Envelope):
    type: Literal["dossier.submitted"]
    data: SubmittedData


class DossierReceived(_Envelope):
    type: Literal["dossier.received"]
    data: ReceivedData


class DossierRefused(_Envelope):
    type: Literal["dossier.refused"]
    data: RefusedData


class DossierTransferred(_Envelope):
    type: Literal["dossier.transferred"]
    data: TransferredData


class DossierSupplementRequested(_Envelope):
    type: Literal["dossier.supplement_requested"]
    data: SupplementRequestedData


class DossierSupplementReceived(_Envelope):
    type: Literal["dossier.supplement_received"]
    data: SupplementReceivedData


class DossierPaused(_Envelope):
    type: Literal["dossier.paused"]
    data: PausedData


class DossierResumed(_Envelope):
    type: Literal["dossier.resumed"]
    data: EmptyData = EmptyData()


class DossierExtended(_Envelope):
    type: Literal["dossier.extended"]
    data: ExtendedData


class DossierWithdrawn(_Envelope):
    type: Literal["dossier.withdrawn"]
    data: OptionalReasonData = OptionalReasonData()


class DossierStopped(_Envelope):
    type: Literal["dossier.stopped"]
    data: OptionalReasonData = OptionalReasonData()


class DossierResolved(_Envelope):
    type: Literal["dossier.resolved"]
    data: ResolvedData


class DossierReturned(_Envelope):
    type: Literal["dossier.returned"]
    data: EmptyData = EmptyData()


DOSSIER_EVENT_MODELS: tuple[type[_Envelope], ...] = (
    DossierSubmitted,
    DossierReceived,
    DossierRefused,
    DossierTransferred,
    DossierSupplementRequested,
    DossierSupplementReceived,
    DossierPaused,
    DossierResumed,
    DossierExtended,
    DossierWithdrawn,
    DossierStopped,
    DossierResolved,
    DossierReturned,
)

DossierEvent = Annotated[
    Union[
        DossierSubmitted,
        DossierReceived,
        DossierRefused,
        DossierTransferred,
        DossierSupplementRequested,
        DossierSupplementReceived,
        DossierPaused,
        DossierResumed,
        DossierExtended,
        DossierWithdrawn,
        DossierStopped,
        DossierResolved,
        DossierReturned,
    ],
    Field(discriminator="type"),
]

DOSSIER_EVENT_TYPES: tuple[str, ...] = tuple(
    m.model_fields["type"].annotation.__args__[0] for m in DOSSIER_EVENT_MODELS  # type: ignore[union-attr]
)

CLOSING_TYPES = frozenset({"dossier.resolved", "dossier.withdrawn", "dossier.stopped", "dossier.returned"})

dossier_event_adapter: TypeAdapter[Any] = TypeAdapter(DossierEvent)


class FieldError(BaseModel):
    """One reason an event was refused: which field, and why (interfaces.md, 422 body)."""

    field: str
    reason: str


class EventValidationError(ValueError):
    def __init__(self, errors: list[FieldError]):
        self.errors = errors
        super().__init__("; ".join(f"{e.field}: {e.reason}" for e in errors))


def _field_errors(exc: ValidationError, event_type: str | None) -> list[FieldError]:
    out: list[FieldError] = []
    for err in exc.errors(include_url=False):
        loc = list(err["loc"])
        # The discriminated union puts the type tag first; the sender knows its fields, not our tags.
        if loc and event_type is not None and loc[0] == event_type:
            loc = loc[1:]
        kind = err["type"]
        if kind in ("union_tag_invalid", "union_tag_not_found"):
            field, reason = "type", (
                "missing" if kind == "union_tag_not_found" else f"unknown event type {event_type!r}"
            )
        else:
            field = ".".join(str(p) for p in loc) or "(event)"
            reason = err["msg"]
            if kind == "timezone_aware":
                reason = "timestamp must carry a UTC offset (naive timestamps are refused)"
            elif kind == "extra_forbidden":
                reason = "unknown envelope field"
        out.append(FieldError(field=field, reason=reason))
    return out


def parse_dossier_event(raw: Any) -> Any:
    """Validate one raw JSON object; return the typed event or raise EventValidationError."""
    if not isinstance(raw, dict):
        raise EventValidationError([FieldError(field="(event)", reason="an event must be a JSON object")])
    event_type = raw.get("type") if isinstance(raw.get("type"), str) else None
    try:
        return dossier_event_adapter.validate_python(raw)
    except ValidationError as exc:
        raise EventValidationError(_field_errors(exc, event_type)) from None


def parse_dossier_event_json(text: str | bytes) -> Any:
    try:
        return dossier_event_adapter.validate_json(text)
    except ValidationError:
        # Re-run on the decoded object to report fields the same way as for parsed JSON.
        import json

        try:
            raw = json.loads(text)
        except ValueError:
            raise EventValidationError([FieldError(field="(event)", reason="not valid JSON")]) from None
        return parse_dossier_event(raw)
