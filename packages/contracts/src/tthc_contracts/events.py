"""Event contract v1 (`spec/events.md`): the dossier events one-stop software posts to intake.

Each event type is its own model with a literal `type`, joined in a discriminated union, so a
validation error names the exact field (`data.duration.value`) and the JSON Schema of every
type can be exported and committed.

The bounds of events.md ("Bounds") that do not depend on a clock are checked here, so that every reader
of the contract (intake, the consumers, `tthc replay`) refuses the same things: strict RFC 3339
timestamps, `occurred_at` from 2000 on, timestamps in `data` within 10 years of `occurred_at`,
`schema_version` exactly the integer 1, bounded durations and strings. The bound that needs a clock
(`occurred_at` at most a configured lead after now) is intake's; the byte size and nesting depth of an
event are bounds of the JSON text, checked by intake before and after parsing.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, Union

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from .timefmt import VN_TZ

# -- bounds (events.md, "Bounds") ------------------------------------------------------------------------
EARLIEST_OCCURRED_AT = datetime(2000, 1, 1, tzinfo=VN_TZ)
DATA_TIMESTAMP_YEARS = 10  # timestamps in `data` lie within this many calendar years of `occurred_at`
MAX_OFFSET = timedelta(hours=14)
MAX_DURATION: dict[str, float] = {
    "calendar_days": 3650, "working_days": 3650, "working_hours": 29200, "months": 120,
}
MAX_STRING_CHARS = 1000  # any string in `data`
MAX_EVENT_BYTES = 64 * 1024  # an event's JSON (checked by intake on what it publishes)
MAX_NESTING = 32  # objects and arrays inside one event, the event itself included (checked by intake)
MAX_CODE_CHARS = 64  # codes, `source`, `dossier_id`

BOUND_ERROR = "out_of_bounds"  # pydantic error type of a bound; ctx["path"] completes its location


def _bound(path: str, message: str) -> PydanticCustomError:
    """A refusal located at `path` below the validated object (pydantic cannot say so by itself from a
    model validator); `_field_errors` joins it to the location."""
    return PydanticCustomError(BOUND_ERROR, message.replace("{", "(").replace("}", ")"), {"path": path})


# -- field types -----------------------------------------------------------------------------------------
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?(?P<offset>Z|[+-][0-9]{2}:[0-9]{2})?",
    re.ASCII,
)
TIMESTAMP_EXAMPLE = "2026-02-13T10:00:00+07:00"
# The same rule for JSON Schema readers (ECMA-262: no named groups; the offset required).
TIMESTAMP_PATTERN = (r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?"
                     r"(Z|[+-][0-9]{2}:[0-9]{2})$")


def _timestamp(value: Any) -> Any:
    """RFC 3339 with `T`, seconds and an offset within ±14:00, e.g. 2026-02-13T10:00:00+07:00.

    `datetime.fromisoformat` alone would take a space for the `T`, no seconds, or `+23:59`."""
    if isinstance(value, datetime):  # built in Python (tests, the DVCQG translation): checked the same way
        return _representable(value)
    if not isinstance(value, str):
        raise ValueError(f"must be an RFC 3339 timestamp string such as {TIMESTAMP_EXAMPLE}")
    match = _RFC3339.fullmatch(value)
    if match is None:
        raise ValueError(f"must be an RFC 3339 timestamp with T, seconds and a UTC offset, such as "
                         f"{TIMESTAMP_EXAMPLE}")
    if match["offset"] is None:
        raise ValueError("timestamp must carry a UTC offset (naive timestamps are refused)")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("is not a valid date and time") from None
    offset = parsed.utcoffset()
    if offset is None or abs(offset) > MAX_OFFSET or (match["offset"] != "Z" and int(match["offset"][-2:]) > 59):
        raise ValueError("the UTC offset must lie within -14:00 and +14:00")
    return _representable(parsed)


def _representable(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("timestamp must carry a UTC offset (naive timestamps are refused)")
    try:  # 9999-12-31T23:00:00-12:00 is in year 10000 in UTC: no reader could convert it
        value.astimezone(UTC), value.astimezone(VN_TZ)
    except OverflowError:
        if value.year > 2000:  # (early years are refused by the bounds, which say why)
            raise ValueError("is out of range") from None
    return value


Timestamp = Annotated[AwareDatetime, BeforeValidator(_timestamp), Field(
    description="RFC 3339 with T, seconds and a UTC offset within ±14:00, e.g. 2026-02-13T10:00:00+07:00",
    json_schema_extra={"pattern": TIMESTAMP_PATTERN},
)]


def _nfc(value: str) -> str:
    # Vietnamese text is compared and rendered in NFC; one-stop software may send NFD.
    return unicodedata.normalize("NFC", value)


def _no_nul(value: str) -> str:
    # A NUL cannot be stored in a PostgreSQL text column: every service downstream would choke on it.
    if "\x00" in value:
        raise ValueError("must not contain a NUL character")
    return value


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _no_control(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


Text = Annotated[str, Field(max_length=MAX_STRING_CHARS), AfterValidator(_no_nul), AfterValidator(_nfc)]
Code = Annotated[str, Field(min_length=1, max_length=MAX_CODE_CHARS), AfterValidator(_no_control),
                 AfterValidator(_nfc)]
DossierId = Annotated[str, Field(min_length=1, max_length=MAX_CODE_CHARS, description="MaHoSo"),
                      AfterValidator(_no_control)]
Source = Annotated[str, Field(min_length=1, max_length=MAX_CODE_CHARS,
                              description="the sending system, e.g. motcua-lang-son"),
                   AfterValidator(_no_control)]

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", re.ASCII)


def _uuid_text(value: str) -> str:
    if not _UUID.fullmatch(value):
        raise ValueError("must be a UUID such as 3f1c2a4e-8b7d-4c1e-9a2f-5d6e7f8a9b0c")
    return value


EventId = Annotated[str, AfterValidator(_uuid_text), Field(
    description="unique per source; the idempotency key: the same (source, event_id) twice is one event",
    json_schema_extra={"format": "uuid"},
)]


def _exactly_one(value: Any) -> Any:
    # JSON's `true` and `1.0` are equal to 1 in Python; the contract says the integer 1.
    if type(value) is not int or value != 1:
        raise ValueError("must be the integer 1")
    return value


SchemaVersion = Annotated[Literal[1], BeforeValidator(_exactly_one), WithJsonSchema(
    {"type": "integer", "const": 1, "description": "the integer 1 (not true, not 1.0)"})]

Channel = Literal["in_person", "online", "postal"]
DurationUnit = Literal["working_days", "working_hours", "calendar_days", "months"]
SupplementMode = Literal["restart", "pause"]


# -- data --------------------------------------------------------------------------------------------
def _too_long_strings(value: Any, path: str) -> Iterator[str]:
    """Paths of strings (values or keys) over MAX_STRING_CHARS or holding a NUL, inside unknown fields.

    An explicit stack, not recursion: the nesting of what reaches here is bounded by intake, not by
    other producers."""
    stack = [(path, value)]
    while stack:
        where, node = stack.pop()
        if isinstance(node, str):
            if len(node) > MAX_STRING_CHARS or "\x00" in node:
                yield where
        elif isinstance(node, dict):
            for key, item in node.items():
                if isinstance(key, str) and (len(key) > MAX_STRING_CHARS or "\x00" in key):
                    yield f"{where}.{key[:40]}…"
                else:
                    stack.append((f"{where}.{key}", item))
        elif isinstance(node, list):
            stack.extend((f"{where}.{i}", item) for i, item in enumerate(node))


class _Data(BaseModel):
    # Unknown fields are kept (and ignored), so a newer one-stop release does not break intake.
    model_config = ConfigDict(extra="allow", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _bounded_unknown_fields(cls, raw: Any) -> Any:
        if isinstance(raw, dict):
            for name in raw.keys() - cls.model_fields.keys():
                for path in _too_long_strings(raw[name], str(name)):
                    raise _bound(path, f"a string in data must be at most {MAX_STRING_CHARS} characters, "
                                       "without NUL characters")
        return raw


class Agency(_Data):
    code: Code = Field(description="agency code (national format, e.g. 000.00.12.H10)")
    name: Text


class Procedure(_Data):
    code: Code = Field(description="MaTTHC, the procedure's national code")
    name: Text
    field_code: Code = Field(description="code of the lĩnh vực (field)")
    field_name: Text


class Duration(_Data):
    value: float = Field(gt=0, strict=True, allow_inf_nan=False, description=(
        "statutory duration, > 0 and at most 3650 calendar_days or working_days, 29200 working_hours, 120 months"))
    unit: DurationUnit

    @model_validator(mode="after")
    def _bounded(self) -> Duration:
        if self.value > MAX_DURATION[self.unit]:
            raise _bound("value", f"must be at most {MAX_DURATION[self.unit]:g} {self.unit}")
        return self


class Applicant(_Data):
    """Personal data: never in logs, metrics or labels."""

    kind: Literal["citizen", "organization"]
    name: Text = Field(min_length=1)
    address: Text | None = None
    phone: Text | None = None
    email: Text | None = None


class ReceivedData(_Data):
    procedure: Procedure
    receiving_agency: Agency = Field(description="the one-stop unit that received it")
    handling_agency: Agency | None = Field(default=None, description="the competent agency; defaults to "
                                                                     "receiving_agency")
    channel: Channel = Field(description="KenhThucHien 1/2/3")
    duration: Duration
    applicant: Applicant
    appointment_at: Timestamp | None = Field(default=None, description=(
        "the NgayHenTra the one-stop software printed; kept and compared, never trusted over our own "
        "computation; within 10 years of occurred_at"))
    supplement_mode: SupplementMode | None = Field(default=None, description=(
        "overrides the configured supplementation mode for this dossier"))


class SubmittedData(_Data):
    channel: Channel


class RefusedData(_Data):
    reason: Text


class TransferredData(_Data):
    to_agency: Agency = Field(description="the dossier now sits with this agency (it addresses apologies)")
    step_hours: float | None = Field(default=None, ge=0, le=MAX_DURATION["working_hours"], allow_inf_nan=False,
                                     strict=True)


class SupplementRequestedData(_Data):
    reason: Text
    requested_by: Code | None = Field(default=None, description="agency code")


class SupplementReceivedData(_Data):
    channel: Channel = Field(description="how the applicant brought the documents")


class PausedData(_Data):
    reason: Literal["financial_obligation", "other"]


class EmptyData(_Data):
    pass


class ExtendedData(_Data):
    new_due_at: Timestamp = Field(description="the new appointment, within 10 years of occurred_at")
    reason: Text


class OptionalReasonData(_Data):
    reason: Text | None = None


class ResolvedData(_Data):
    result: Literal["approved", "denied"]


# -- events ------------------------------------------------------------------------------------------
def _years_from(at: datetime, years: int) -> datetime:
    """The same wall time `years` calendar years later (29 February: the 28th); the calendar's ends beyond."""
    year = at.year + years
    if year > 9999:
        return datetime.max.replace(tzinfo=at.tzinfo)
    if year < 1:
        return datetime.min.replace(tzinfo=at.tzinfo)
    return at.replace(year=year, day=28) if (at.month, at.day) == (2, 29) else at.replace(year=year)


class _Envelope(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: EventId
    schema_version: SchemaVersion
    occurred_at: Timestamp = Field(description=(
        "when it happened at the desk (event time); from 2000-01-01T00:00:00+07:00 up to intake's clock "
        "plus a configured lead"))
    source: Source
    dossier_id: DossierId

    @field_validator("occurred_at")
    @classmethod
    def _from_2000(cls, value: datetime) -> datetime:
        if value < EARLIEST_OCCURRED_AT:
            raise ValueError("must not be before 2000-01-01T00:00:00+07:00")
        return value

    def _within_span(self, path: str, value: datetime | None) -> None:
        if value is None:
            return
        at = self.occurred_at
        if not _years_from(at, -DATA_TIMESTAMP_YEARS) <= value <= _years_from(at, DATA_TIMESTAMP_YEARS):
            raise _bound(path, f"must lie within {DATA_TIMESTAMP_YEARS} years of occurred_at")


class DossierSubmitted(_Envelope):
    """Status 1: submitted (online); no clock runs."""

    type: Literal["dossier.submitted"]
    data: SubmittedData


class DossierReceived(_Envelope):
    """Status 2: received by the one-stop unit; the clock starts."""

    type: Literal["dossier.received"]
    data: ReceivedData

    @model_validator(mode="after")
    def _appointment_near(self) -> DossierReceived:
        self._within_span("data.appointment_at", self.data.appointment_at)
        return self


class DossierRefused(_Envelope):
    """Status 3: refused at intake: never received, no clock, not in on-time figures."""

    type: Literal["dossier.refused"]
    data: RefusedData


class DossierTransferred(_Envelope):
    """Status 4: the dossier now sits with `to_agency` (used to address apologies)."""

    type: Literal["dossier.transferred"]
    data: TransferredData


class DossierSupplementRequested(_Envelope):
    """Status 5: the applicant is asked for more documents."""

    type: Literal["dossier.supplement_requested"]
    data: SupplementRequestedData


class DossierSupplementReceived(_Envelope):
    """Status 4: the applicant brought the documents."""

    type: Literal["dossier.supplement_received"]
    data: SupplementReceivedData


class DossierPaused(_Envelope):
    """Status 6: paused (financial obligation or other)."""

    type: Literal["dossier.paused"]
    data: PausedData


class DossierResumed(_Envelope):
    """Status 4: processing resumes after a pause."""

    type: Literal["dossier.resumed"]
    data: EmptyData = EmptyData()


class DossierExtended(_Envelope):
    """The apology was sent and the appointment moved to `new_due_at` (allowed once)."""

    type: Literal["dossier.extended"]
    data: ExtendedData

    @model_validator(mode="after")
    def _new_due_near(self) -> DossierExtended:
        self._within_span("data.new_due_at", self.data.new_due_at)
        return self


class DossierWithdrawn(_Envelope):
    """Status 7: withdrawn by the applicant. Closing event."""

    type: Literal["dossier.withdrawn"]
    data: OptionalReasonData = OptionalReasonData()


class DossierStopped(_Envelope):
    """Status 8: processing stopped. Closing event."""

    type: Literal["dossier.stopped"]
    data: OptionalReasonData = OptionalReasonData()


class DossierResolved(_Envelope):
    """Status 9: resolved, approved or denied. Closing event (NgayKetThucXuLy)."""

    type: Literal["dossier.resolved"]
    data: ResolvedData


class DossierReturned(_Envelope):
    """Status 10: the result was handed back. Closing event only if nothing closed the dossier before."""

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
# One timestamp checked as the contract checks them (raises pydantic's ValidationError).
timestamp_adapter: TypeAdapter[datetime] = TypeAdapter(Timestamp)


class FieldError(BaseModel):
    """One reason an event was refused: which field, and why (interfaces.md, 422 body)."""

    field: str
    reason: str


class EventValidationError(ValueError):
    def __init__(self, errors: list[FieldError]):
        self.errors = errors
        super().__init__("; ".join(f"{e.field}: {e.reason}" for e in errors))


_PLAIN_PREFIXES = ("Value error, ", "Assertion failed, ")


def _field_errors(exc: ValidationError, event_type: str | None) -> list[FieldError]:
    out: list[FieldError] = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = [str(p) for p in err["loc"]]
        # The discriminated union puts the type tag first; the sender knows its fields, not our tags.
        if loc and event_type is not None and loc[0] == event_type:
            loc = loc[1:]
        kind = err["type"]
        if kind in ("union_tag_invalid", "union_tag_not_found"):
            field, reason = "type", (
                "missing" if kind == "union_tag_not_found" else f"unknown event type {event_type!r}"
            )
        else:
            if kind == BOUND_ERROR:
                loc += str((err.get("ctx") or {}).get("path", "")).split(".")
            field = ".".join(p for p in loc if p) or "(event)"
            reason = err["msg"]
            for prefix in _PLAIN_PREFIXES:
                reason = reason.removeprefix(prefix)
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
        except (ValueError, RecursionError):
            raise EventValidationError([FieldError(field="(event)", reason="not valid JSON")]) from None
        return parse_dossier_event(raw)
