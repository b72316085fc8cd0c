"""The national portal's synchronisation payloads (`spec/dvcqg.md`) translated into v1 events. Pure.

Every provincial one-stop system already pushes each dossier to the national public-service portal
(DVCQG) with `DongBoHoSoMC` (a snapshot of the dossier) and reports processing steps with
`CapNhatTienDoHoSoMC`. `translate()` turns one such request body into the v1 events it implies, or
into the list of everything wrong with it (DVCQG field names, so the vendor recognises them). Intake's
`POST /v1/dvcqg` and the `tthc dvcqg` command both call it.

Event ids are UUIDv5 of `source/MaHoSo/type/n/instant`: a snapshot sent again gives the very same
events (duplicates), and a later snapshot adds only what is new. Facts missing from a later snapshot
retract nothing.

The catalogue (`parse_catalogue`) supplies what DVCQG items do not carry: each procedure's statutory
duration (and optionally its supplementation mode), and agency names.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import yaml

from .config_yaml import (
    SUPPLEMENT_MODES,
    ConfigFileError,
    choice,
    compose,
    is_null,
    line,
    mapping,
    number,
    scalar,
)
from .events import EventValidationError, parse_dossier_event
from .timefmt import VN_TZ, format_ts

__all__ = [
    "DVCQG_NAMESPACE", "MAX_ITEMS", "PROGRESS", "SNAPSHOT", "Catalogue", "CatalogueError",
    "CatalogueProcedure", "Origin", "ProgressStep", "Translation", "dvcqg_event_id", "parse_catalogue",
    "parse_instant", "progress_dossiers", "translate",
]  # fmt: skip

DVCQG_NAMESPACE = uuid.UUID("0b6f3a2e-5d1c-4c8e-9a7f-3e2d1c0b9a88")
SNAPSHOT = "DongBoHoSoMC"
PROGRESS = "CapNhatTienDoHoSoMC"
MAX_ITEMS = 1000

# events.md bounds on a statutory duration: a catalogue entry beyond them would have every dossier of
# its procedure refused at intake, so the catalogue is refused at start-up instead.
DURATION_BOUNDS = {"working_days": 3650, "calendar_days": 3650, "working_hours": 29200, "months": 120}

# TrangThaiHoSo (the dossier's status in the portal's code list)
_SUBMITTED, _RECEIVED, _REFUSED, _WITHDRAWN, _STOPPED, _RESOLVED, _RETURNED = 1, 2, 3, 7, 8, 9, 10
_STATUSES = range(1, 11)
_CHANNELS = {1: "in_person", 2: "online", 3: "postal"}  # KenhThucHien
_APPLICANT_KINDS = {1: "citizen", 2: "organization"}  # LoaiDoiTuong
# CapNhatTienDoHoSoMC TrangThai: 6 is waiting for the applicant's financial obligation (fees, taxes);
# 2, 4, 5 after it mean processing went on.
_STEP_FEES, _STEPS_AFTER_FEES = 6, frozenset({2, 4, 5})
# Progress fields the portal defines that intake keeps with each step (not used for the clock).
_STEP_DETAILS = (
    "NguoiXuLy",
    "ChucDanh",
    "PhongBanXuLy",
    "NoiDungXuLy",
    "NgayBatDau",
    "NgayKetThucTheoQuyDinh",
)

_DEFAULT_REFUSAL_REASON = "Không được tiếp nhận"  # dvcqg.md, when GhiChu is absent
_DEFAULT_SUPPLEMENT_REASON = "Yêu cầu bổ sung hồ sơ"  # v1 needs a reason; NoiDungBoSung may be absent

_MAX_CODE = 64  # events.md: codes and dossier_id are 1-64 characters


# -- the catalogue --------------------------------------------------------------------------------
class CatalogueError(ConfigFileError):
    what = "catalogue"


@dataclass(frozen=True)
class CatalogueProcedure:
    duration_value: float
    duration_unit: str
    supplement_mode: str | None = None


@dataclass(frozen=True)
class Catalogue:
    """MaTTHC -> statutory duration (and supplementation mode); agency code -> name."""

    procedures: Mapping[str, CatalogueProcedure]
    agencies: Mapping[str, str] = field(default_factory=dict)

    def agency(self, code: str) -> dict[str, str]:
        return {"code": code, "name": self.agencies.get(code, code)}


def parse_catalogue(text: str, path: str | None = None) -> Catalogue:
    """The catalogue file (YAML, dvcqg.md); raises CatalogueError with the line and the reason."""
    try:
        return _build_catalogue(compose(text))
    except ConfigFileError as exc:
        raise CatalogueError(exc.line, exc.reason, path) from None


def _build_catalogue(root: yaml.Node | None) -> Catalogue:
    if root is None:
        raise ConfigFileError(None, "the catalogue is empty: it needs a procedures mapping")
    procedures: dict[str, CatalogueProcedure] = {}
    agencies: dict[str, str] = {}
    seen_procedures = False
    for key, key_node, value in mapping(root, "the catalogue"):
        if key == "procedures":
            seen_procedures = True
            for code, code_node, body in mapping(value, "procedures"):
                _check_code(code, code_node, "a procedure code (MaTTHC)")
                procedures[code] = _catalogue_procedure(code, body)
        elif key == "agencies":
            if is_null(value):
                continue
            for code, code_node, name_node in mapping(value, "agencies"):
                _check_code(code, code_node, "an agency code")
                name = scalar(name_node, f"the name of agency {code}").strip()
                if not name or is_null(name_node):
                    raise ConfigFileError(line(name_node), f"agency {code} needs a name")
                agencies[code] = name
        else:
            raise ConfigFileError(line(key_node), f"unknown key {key!r} (procedures, agencies)")
    if not seen_procedures:
        raise ConfigFileError(line(root), "the catalogue needs a procedures mapping (MaTTHC -> duration)")
    return Catalogue(procedures, agencies)


def _check_code(code: str, node: yaml.Node, what: str) -> None:
    if not code.strip() or len(code) > _MAX_CODE:
        raise ConfigFileError(line(node), f"{what} must be 1-{_MAX_CODE} characters, not {code!r}")


def _catalogue_procedure(code: str, body: yaml.Node) -> CatalogueProcedure:
    duration: tuple[float, str] | None = None
    mode: str | None = None
    for key, key_node, value in mapping(body, f"procedure {code}"):
        if key == "duration":
            duration = _catalogue_duration(code, value)
        elif key == "supplement_mode":
            mode = choice(value, "supplement_mode", SUPPLEMENT_MODES)
        else:
            raise ConfigFileError(
                line(key_node), f"unknown key {key!r} for procedure {code} (duration, supplement_mode)"
            )
    if duration is None:
        raise ConfigFileError(
            line(body), f"procedure {code} needs a duration: {{value: N, unit: working_days}}"
        )
    return CatalogueProcedure(duration[0], duration[1], mode)


def _catalogue_duration(code: str, node: yaml.Node) -> tuple[float, str]:
    value: float | None = None
    unit: str | None = None
    for key, key_node, item in mapping(node, f"the duration of procedure {code}"):
        if key == "value":
            value = number(item, "duration.value")
            if value <= 0:
                raise ConfigFileError(line(item), f"duration.value must be > 0, not {value:g}")
            value_node = item
        elif key == "unit":
            unit = scalar(item, "duration.unit")
            if unit not in DURATION_BOUNDS:
                raise ConfigFileError(
                    line(item), f"duration.unit must be one of {', '.join(DURATION_BOUNDS)}, not {unit!r}"
                )
        else:
            raise ConfigFileError(
                line(key_node), f"unknown key {key!r} in the duration of procedure {code} (value, unit)"
            )
    if value is None or unit is None:
        raise ConfigFileError(line(node), f"the duration of procedure {code} needs both value and unit")
    if value > DURATION_BOUNDS[unit]:
        raise ConfigFileError(
            line(value_node), f"duration.value must be at most {DURATION_BOUNDS[unit]} {unit}"
        )
    return (int(value) if value.is_integer() else value), unit


# -- values ---------------------------------------------------------------------------------------
_DIGITS14 = re.compile(r"^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})$")
_ISO = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,7}))?(Z|[+-](\d{2}):(\d{2}))?$"
)
INSTANT_FORMS = "yyyyMMddHHmmss or yyyy-MM-ddTHH:mm:ss[.fff][+07:00]"


def _absent(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def parse_instant(text: str) -> datetime:
    """An instant in one of the portal's two forms; without an offset it is Vietnam time (+07:00).

    Raises ValueError with the reason.
    """
    text = text.strip()
    if m := _DIGITS14.match(text):
        parts, tz = [int(g) for g in m.groups()], VN_TZ
        micro = 0
    elif m := _ISO.match(text):
        parts = [int(g) for g in m.groups()[:6]]
        micro = int((m.group(7) or "0")[:6].ljust(6, "0"))  # .NET sends 7 digits: beyond microseconds
        if m.group(8) is None:
            tz = VN_TZ
        elif m.group(8) == "Z":
            tz = timezone.utc
        else:
            hours, minutes = int(m.group(9)), int(m.group(10))
            if hours * 60 + minutes > 14 * 60 or minutes > 59:
                raise ValueError(f"{text!r}: the offset must lie within ±14:00")
            sign = -1 if m.group(8).startswith("-") else 1
            tz = timezone(sign * timedelta(hours=hours, minutes=minutes))
    else:
        raise ValueError(f"{text!r} is not an instant {INSTANT_FORMS}")
    try:
        return datetime(*parts, micro, tzinfo=tz).astimezone(VN_TZ)  # type: ignore[misc]
    except ValueError:
        raise ValueError(f"{text!r} is not a real date and time") from None


def _instant_id_text(t: datetime) -> str:
    t = t.astimezone(VN_TZ)  # f-string, not strftime: a request of 1000 snapshots derives thousands of ids
    return f"{t.year:04d}{t.month:02d}{t.day:02d}{t.hour:02d}{t.minute:02d}{t.second:02d}"


def dvcqg_event_id(source: str, dossier_id: str, event_type: str, n: int, occurred_at: datetime) -> str:
    """UUIDv5 of `source/MaHoSo/type/n/instant` (`instant` as yyyyMMddHHmmss, Vietnam time)."""
    name = f"{source}/{dossier_id}/{event_type}/{n}/{_instant_id_text(occurred_at)}"
    return str(uuid.uuid5(DVCQG_NAMESPACE, name))


class _Item:
    """Reads one item's fields, noting every refusal (`{index, field, reason}`) instead of stopping."""

    def __init__(self, raw: Mapping[str, Any], index: int, errors: list[dict[str, Any]], prefix: str = ""):
        self.raw, self.index, self.errors, self.prefix = raw, index, errors, prefix

    def refuse(self, name: str, reason: str) -> None:
        self.errors.append({"index": self.index, "field": f"{self.prefix}{name}", "reason": reason})

    def _value(self, name: str, required: bool, why: str = "required") -> Any:
        value = self.raw.get(name)
        if _absent(value):
            if required:
                self.refuse(name, why)
            return None
        return value

    def text(self, name: str, required: bool = False) -> str | None:
        value = self._value(name, required)
        if value is None:
            return None
        if not isinstance(value, str):
            self.refuse(name, "must be text")
            return None
        return value.strip()

    def code(self, name: str, required: bool = False) -> str | None:
        """A code: text, or a number ("1.001234" and 1.001234 are the same)."""
        value = self._value(name, required)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            self.refuse(name, "must be a code (text or number)")
            return None
        text = value.strip() if isinstance(value, str) else str(value)
        if len(text) > _MAX_CODE:
            self.refuse(name, f"must be at most {_MAX_CODE} characters")
            return None
        return text

    def number_code(
        self, name: str, allowed: Mapping[int, Any] | range | None = None, required: bool = False
    ) -> int | None:
        """A numeric code ("2" and 2 are the same); `allowed` lists the values it may take."""
        value = self._value(name, required)
        if value is None:
            return None
        number_value: int | None = None
        if isinstance(value, int) and not isinstance(value, bool):
            number_value = value
        elif isinstance(value, float) and value.is_integer():
            number_value = int(value)
        elif isinstance(value, str) and value.strip().isdigit():
            number_value = int(value.strip())
        if number_value is None:
            self.refuse(name, "must be a whole number")
            return None
        if allowed is not None and number_value not in allowed:
            choices = (
                f"{allowed.start}-{allowed.stop - 1}"
                if isinstance(allowed, range)
                else ", ".join(str(v) for v in allowed)
            )
            self.refuse(name, f"must be one of {choices}, not {number_value}")
            return None
        return number_value

    def instant(self, name: str, required: bool = False, why: str = "required") -> datetime | None:
        value = self._value(name, required, why)
        if value is None:
            return None
        if not isinstance(value, str):
            self.refuse(name, f"must be an instant {INSTANT_FORMS} (text)")
            return None
        try:
            return parse_instant(value)
        except ValueError as exc:
            self.refuse(name, str(exc))
            return None

    def dossier_id(self) -> str | None:
        return self.code("MaHoSo", required=True)


# -- the translation ------------------------------------------------------------------------------
@dataclass(frozen=True)
class ProgressStep:
    """One accepted `CapNhatTienDoHoSoMC` item of a dossier (intake keeps them per source and MaHoSo)."""

    at: datetime  # ThoiDiemXuLy
    status: int  # TrangThai
    details: Mapping[str, Any] = field(default_factory=dict, compare=False)  # kept, not used

    def to_json(self) -> dict[str, Any]:
        return {"ThoiDiemXuLy": format_ts(self.at), "TrangThai": self.status, **self.details}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "ProgressStep":
        details = {k: d[k] for k in _STEP_DETAILS if k in d}
        return cls(parse_instant(d["ThoiDiemXuLy"]), int(d["TrangThai"]), details)


@dataclass(frozen=True)
class Origin:
    """Where a derived event came from: its item's position in `data` and the DVCQG field of its instant,
    so that a refusal of the v1 event is named the vendor's way (`field`)."""

    index: int
    instant_field: str
    reason_field: str | None = None  # what `data.reason` was taken from, when the item gave it

    def field(self, v1_field: str) -> str:
        """The DVCQG field a v1 field of the event came from, else the v1 field itself."""
        if v1_field == "occurred_at":
            return self.instant_field
        if v1_field == "data.reason" and self.reason_field is not None:
            return self.reason_field
        return _V1_TO_DVCQG.get(v1_field, v1_field)


@dataclass
class Translation:
    """v1 event dicts, or the refusals; nothing of a refused request is to be published (all or nothing).

    `events` covers every event the request implies, those published before included: they keep
    their ids, so a consumer counts them as duplicates. `origins[i]` says where `events[i]` came from.
    `new_steps` are the progress steps of the request not kept before, per MaHoSo, for the caller to
    keep (empty when refused).
    """

    events: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    new_steps: dict[str, list[ProgressStep]] = field(default_factory=dict)
    origins: list[Origin] = field(default_factory=list)

    @property
    def refused(self) -> bool:
        return bool(self.errors)


def translate(
    body: Any,
    catalogue: Catalogue,
    source: str,
    kept_steps: Mapping[str, Sequence[ProgressStep]] | None = None,
) -> Translation:
    """One request body (`DongBoHoSoMC` or `CapNhatTienDoHoSoMC`) as v1 events, or its refusals.

    `kept_steps`: for progress bodies, the steps already kept for this source, by MaHoSo (only the
    dossiers of the request are looked up). A refusal is `{index, field, reason}`: `index` is the
    item's position in `data` (None for the body itself), `field` its DVCQG field name.
    """
    errors: list[dict[str, Any]] = []
    items = _items(body, errors)
    if errors:
        return Translation(errors=errors)
    if body["service"] == SNAPSHOT:
        events: list[tuple[Origin, dict[str, Any]]] = []
        for index, raw in enumerate(items):
            derived = _snapshot(_Item(raw, index, errors), catalogue, source)
            events.extend((Origin(index, *fields), e) for fields, e in derived)
        new_steps: dict[str, list[ProgressStep]] = {}
    else:
        events, new_steps = _progress(items, errors, source, kept_steps or {})
    errors.extend(_invalid_events(events))
    if errors:
        return Translation(errors=errors)
    return Translation(
        events=[e for _, e in events], new_steps=new_steps, origins=[origin for origin, _ in events]
    )


def progress_dossiers(body: Any) -> list[str]:
    """The MaHoSo of a `CapNhatTienDoHoSoMC` body's items, read as `translate` reads them (a code as
    text or number), so the caller can look up their kept steps first; [] for any other body."""
    if not isinstance(body, dict) or body.get("service") != PROGRESS:
        return []
    if not isinstance(body.get("data"), list):
        return []
    found: dict[str, None] = {}
    for index, raw in enumerate(body["data"][: MAX_ITEMS + 1]):
        if isinstance(raw, dict):
            dossier_id = _Item(raw, index, []).dossier_id()
            if dossier_id is not None:
                found.setdefault(dossier_id)
    return list(found)


def _items(body: Any, errors: list[dict[str, Any]]) -> list[Mapping[str, Any]]:
    def refuse(index: int | None, name: str, reason: str) -> None:
        errors.append({"index": index, "field": name, "reason": reason})

    if not isinstance(body, dict):
        refuse(None, "(body)", 'must be a JSON object {"service": ..., "data": [...]}')
        return []
    if body.get("service") not in (SNAPSHOT, PROGRESS):
        refuse(None, "service", f"must be {SNAPSHOT} or {PROGRESS}")
    data = body.get("data")
    if not isinstance(data, list):
        refuse(None, "data", "must be a list of items")
        return []
    if not data:
        refuse(None, "data", "is empty: send at least one item")
    if len(data) > MAX_ITEMS:
        refuse(None, "data", f"at most {MAX_ITEMS} items per request, not {len(data)}")
    for index, item in enumerate(data):
        if not isinstance(item, dict):
            refuse(index, "(item)", "must be a JSON object")
    return data


def _event(
    source: str,
    dossier_id: str,
    event_type: str,
    at: datetime,
    data: dict[str, Any] | None = None,
    n: int = 0,
) -> dict[str, Any]:
    return {
        "event_id": dvcqg_event_id(source, dossier_id, event_type, n, at),
        "type": event_type,
        "schema_version": 1,
        "occurred_at": format_ts(at),
        "source": source,
        "dossier_id": dossier_id,
        "data": data or {},
    }


def _snapshot(
    item: _Item, catalogue: Catalogue, source: str
) -> list[tuple[tuple[str, str | None], dict[str, Any]]]:
    """The events a `DongBoHoSoMC` item implies (dvcqg.md table), each with the fields its instant and
    its reason came from, or [] with the item's refusals noted."""
    errors_before = len(item.errors)
    dossier_id = item.dossier_id()
    status = item.number_code("TrangThaiHoSo", _STATUSES, required=True)
    procedure_code = item.code("MaTTHC", required=True)
    procedure = catalogue.procedures.get(procedure_code) if procedure_code is not None else None
    if procedure_code is not None and procedure is None:
        item.refuse("MaTTHC", "not in the procedure catalogue")
    procedure_name = item.text("TenTTHC", required=True)
    field_code = item.code("MaLinhVuc", required=True)
    field_name = item.text("TenLinhVuc", required=True)
    agency_code = item.code("DonViXuLy", required=True)
    applicant_name = item.text("ChuHoSo", required=True)
    phone = item.code("SoDienThoai")
    email = item.text("Email")
    kind = item.number_code("LoaiDoiTuong", _APPLICANT_KINDS)
    channel_code = item.number_code("KenhThucHien", _CHANNELS)
    submitted_at = item.instant("NgayNopHoSo")
    received_at = item.instant("NgayTiepNhan")
    appointment_at = item.instant("NgayHenTra")
    refused_at = item.instant(
        "NgayTuChoi", required=status == _REFUSED, why="required when TrangThaiHoSo is 3"
    )
    ended_at = item.instant("NgayKetThucXuLy")
    returned_at = item.instant("NgayTra")
    note = item.text("GhiChu")
    if status in (_WITHDRAWN, _STOPPED) and ended_at is None and returned_at is None:
        if _absent(item.raw.get("NgayKetThucXuLy")) and _absent(item.raw.get("NgayTra")):
            item.refuse("NgayKetThucXuLy", f"required when TrangThaiHoSo is {status} (else NgayTra)")
    rounds = _supplement_rounds(item)
    if len(item.errors) > errors_before:
        return []
    assert dossier_id is not None and status is not None and procedure is not None

    events: list[tuple[tuple[str, str | None], dict[str, Any]]] = []

    def add(
        event_type: str,
        instant_field: str,
        at: datetime,
        data: dict[str, Any] | None = None,
        n: int = 0,
        reason_field: str | None = None,
    ) -> None:
        events.append(((instant_field, reason_field), _event(source, dossier_id, event_type, at, data, n)))

    channel = _CHANNELS.get(channel_code or 1)
    if submitted_at is not None and channel_code == 2:
        add("dossier.submitted", "NgayNopHoSo", submitted_at, {"channel": "online"})
    if received_at is not None and status not in (_SUBMITTED, _REFUSED):
        agency = catalogue.agency(agency_code)  # type: ignore[arg-type]
        applicant: dict[str, Any] = {"kind": _APPLICANT_KINDS[kind or 1], "name": applicant_name}
        if phone is not None:
            applicant["phone"] = phone
        if email is not None:
            applicant["email"] = email
        data: dict[str, Any] = {
            "procedure": {
                "code": procedure_code,
                "name": procedure_name,
                "field_code": field_code,
                "field_name": field_name,
            },
            "receiving_agency": agency,
            "handling_agency": agency,
            "channel": channel,
            "duration": {"value": procedure.duration_value, "unit": procedure.duration_unit},
            "applicant": applicant,
        }
        if appointment_at is not None:
            data["appointment_at"] = format_ts(appointment_at)
        if procedure.supplement_mode is not None:
            data["supplement_mode"] = procedure.supplement_mode
        add("dossier.received", "NgayTiepNhan", received_at, data)
    if status == _REFUSED:
        assert refused_at is not None
        reason = {"reason": note or _DEFAULT_REFUSAL_REASON}
        add("dossier.refused", "NgayTuChoi", refused_at, reason, reason_field="GhiChu" if note else None)
    for n, (position, requested_at, reason, brought_at) in enumerate(rounds, start=1):
        entry = f"DanhSachHoSoBoSung[{position}]."
        reason_field = entry + "NoiDungBoSung"
        requested = {"reason": reason}
        add("dossier.supplement_requested", entry + "NgayBoSung", requested_at, requested, n, reason_field)
        if brought_at is not None:
            brought = {"channel": "in_person"}
            add("dossier.supplement_received", entry + "NgayTiepNhanBoSung", brought_at, brought, n)
    if status in (_RESOLVED, _RETURNED) and ended_at is not None:
        add("dossier.resolved", "NgayKetThucXuLy", ended_at, {"result": "approved"})
    if status == _RETURNED and returned_at is not None:
        add("dossier.returned", "NgayTra", returned_at)
    if status in (_WITHDRAWN, _STOPPED):
        closing = "dossier.withdrawn" if status == _WITHDRAWN else "dossier.stopped"
        if ended_at is not None:
            add(closing, "NgayKetThucXuLy", ended_at)
        else:
            add(closing, "NgayTra", returned_at)  # type: ignore[arg-type]
    return events


def _supplement_rounds(item: _Item) -> list[tuple[int, datetime, str, datetime | None]]:
    """DanhSachHoSoBoSung as (position in the list, requested, reason, brought back), in order of
    NgayBoSung (round 1, 2, …)."""
    raw = item.raw.get("DanhSachHoSoBoSung")
    if _absent(raw):
        return []
    if not isinstance(raw, list):
        item.refuse("DanhSachHoSoBoSung", "must be a list")
        return []
    rounds: list[tuple[int, datetime, str, datetime | None]] = []
    for position, entry_raw in enumerate(raw):
        prefix = f"DanhSachHoSoBoSung[{position}]."
        if not isinstance(entry_raw, dict):
            item.refuse(f"DanhSachHoSoBoSung[{position}]", "must be a JSON object")
            continue
        entry = _Item(entry_raw, item.index, item.errors, prefix)
        requested_at = entry.instant("NgayBoSung", required=True)
        reason = entry.text("NoiDungBoSung")
        brought_at = entry.instant("NgayTiepNhanBoSung")
        if requested_at is not None:
            rounds.append((position, requested_at, reason or _DEFAULT_SUPPLEMENT_REASON, brought_at))
    rounds.sort(key=lambda r: r[1])  # stable: entries of one instant keep their order
    return rounds


def _progress(
    items: list[Mapping[str, Any]],
    errors: list[dict[str, Any]],
    source: str,
    kept_steps: Mapping[str, Sequence[ProgressStep]],
) -> tuple[list[tuple[Origin, dict[str, Any]]], dict[str, list[ProgressStep]]]:
    """The pauses and resumes implied by each touched dossier's steps, kept and new together (each
    event with the position of the step's item, or of the dossier's first item for a kept step)."""
    received: dict[str, list[ProgressStep]] = {}
    first_index: dict[str, int] = {}
    step_index: dict[tuple[str, datetime, int], int] = {}
    for index, raw in enumerate(items):
        item = _Item(raw, index, errors)
        dossier_id = item.dossier_id()
        at = item.instant("ThoiDiemXuLy", required=True)
        status = item.number_code("TrangThai", required=True)
        if dossier_id is None or at is None or status is None:
            continue
        details = {k: raw[k] for k in _STEP_DETAILS if not _absent(raw.get(k))}
        received.setdefault(dossier_id, []).append(ProgressStep(at, status, details))
        first_index.setdefault(dossier_id, index)
        step_index.setdefault((dossier_id, at, status), index)
    if errors:
        return [], {}
    events: list[tuple[Origin, dict[str, Any]]] = []
    new_steps: dict[str, list[ProgressStep]] = {}
    for dossier_id, steps in received.items():
        kept = list(kept_steps.get(dossier_id, ()))
        known = {(s.at, s.status) for s in kept}
        fresh: list[ProgressStep] = []
        for step in steps:
            if (step.at, step.status) not in known:  # a step sent again is kept once
                known.add((step.at, step.status))
                fresh.append(step)
        if fresh:
            new_steps[dossier_id] = fresh
        for step, event in _pauses_and_resumes(source, dossier_id, kept + fresh):
            index = step_index.get((dossier_id, step.at, step.status), first_index[dossier_id])
            events.append((Origin(index, "ThoiDiemXuLy"), event))
    return events, new_steps


def _pauses_and_resumes(
    source: str, dossier_id: str, steps: list[ProgressStep]
) -> list[tuple[ProgressStep, dict[str, Any]]]:
    """dvcqg.md: over the steps in order of ThoiDiemXuLy, 6 after a non-6 (or nothing) pauses for the
    financial obligation; 2, 4 or 5 after a 6 resumes. Each event with the step it comes from."""
    events: list[tuple[ProgressStep, dict[str, Any]]] = []
    previous: int | None = None
    for step in sorted(steps, key=lambda s: s.at):  # stable: steps of one instant keep their order
        if step.status == _STEP_FEES and previous != _STEP_FEES:
            paused = _event(source, dossier_id, "dossier.paused", step.at, {"reason": "financial_obligation"})
            events.append((step, paused))
        elif step.status in _STEPS_AFTER_FEES and previous == _STEP_FEES:
            events.append((step, _event(source, dossier_id, "dossier.resumed", step.at)))
        previous = step.status
    return events


# What a v1 field of a derived event came from, to name it the vendor's way when v1 refuses it.
_V1_TO_DVCQG = {
    "dossier_id": "MaHoSo",
    "data.procedure.code": "MaTTHC",
    "data.procedure.name": "TenTTHC",
    "data.procedure.field_code": "MaLinhVuc",
    "data.procedure.field_name": "TenLinhVuc",
    "data.receiving_agency.code": "DonViXuLy",
    "data.handling_agency.code": "DonViXuLy",
    "data.applicant.name": "ChuHoSo",
    "data.applicant.phone": "SoDienThoai",
    "data.applicant.email": "Email",
    "data.appointment_at": "NgayHenTra",
}


def _invalid_events(events: list[tuple[Origin, dict[str, Any]]]) -> list[dict[str, Any]]:
    """The v1 contract checked on every derived event, so that what is returned always parses."""
    problems: list[dict[str, Any]] = []
    for origin, event in events:
        try:
            parse_dossier_event(event)
        except EventValidationError as exc:
            for e in exc.errors:
                reason = f"{event['type']}: {e.reason}"
                problems.append({"index": origin.index, "field": origin.field(e.field), "reason": reason})
    return problems
