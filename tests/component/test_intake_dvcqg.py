"""`POST /v1/dvcqg` as one component (dvcqg.md): the national portal's bodies through intake (httpx ASGI
transport, the in-memory publisher, SQLite), against the worked example `docs/dvcqg/` (its `events.jsonl` is
the translation `tthc dvcqg` writes, checked by hand in tests/unit/test_dvcqg_example.py).

Every refusal is checked twice, as for `/v1/events`: the answer names the item and its DVCQG field in the
portal's shape (`error_code` "-1"), and nothing of the request was published nor kept.
"""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from tthc_common.keys import hash_key
from tthc_contracts.events import parse_dossier_event
from tthc_intake.__main__ import main as intake_main
from tthc_intake.publisher import BrokerUnavailable

from tests.component.test_intake import (
    AUTH, KEY, OTHER_KEY, OTHER_SOURCE, SOURCE, Intake, make_settings, running_intake)
from tests.support.schema import migration_differences

DOCS = Path(__file__).resolve().parents[2] / "docs" / "dvcqg"
CATALOGUE = DOCS / "catalogue.yaml"
PAYLOADS = [json.loads(line) for line in (DOCS / "payloads.jsonl").read_text(encoding="utf-8").splitlines()]
EXPECTED = [json.loads(line) for line in (DOCS / "events.jsonl").read_text(encoding="utf-8").splitlines()]
D1, D2, D3 = "000.00.12.H10-260302-0001", "000.00.20.H10-260309-0004", "000.00.12.H10-260303-0002"
APPLICANTS = ("Hoàng Thị Mai", "Lý Văn Thành", "Nông Văn Hải", "0912000001")


@pytest.fixture
async def intake(tmp_path: Path) -> AsyncIterator[Intake]:
    async for running in running_intake(make_settings(tmp_path, dvcqg_catalogue=str(CATALOGUE))):
        yield running


async def post(intake: Intake, body: Any, headers: dict[str, str] | None = AUTH) -> httpx.Response:
    sent = {"content-type": "application/json", **(headers or {})}
    return await intake.client.post("/v1/dvcqg", content=json.dumps(body, ensure_ascii=False).encode(), headers=sent)


def accepted(response: httpx.Response) -> tuple[int, int]:
    assert response.status_code == 202, response.text
    body = response.json()
    assert set(body) == {"error_code", "message", "events", "duplicates"} and body["error_code"] == "0", body
    assert body["message"]
    return body["events"], body["duplicates"]


def refusals(response: httpx.Response, status: int = 422) -> list[tuple[int | None, str | None, str]]:
    """(index, field, reason) of a refusal in the portal's shape."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error_code", "message", "errors"} and body["error_code"] == "-1", body
    assert body["message"] and body["errors"]
    for error in body["errors"]:
        assert set(error) == {"index", "field", "reason"} and error["reason"], error
    return [(e["index"], e["field"], e["reason"]) for e in body["errors"]]


def expected(*wanted: tuple[str, str]) -> list[Any]:
    """The worked example's v1 events of (dossier, type), in the order given (as validated events: what is
    published is the validated event, absent optional fields as null)."""
    found = []
    for dossier_id, event_type in wanted:
        [event] = [e for e in EXPECTED if e["dossier_id"] == dossier_id and e["type"] == event_type]
        found.append(parse_dossier_event(event))
    return found


def events_of(values: list[dict[str, Any]]) -> list[Any]:
    return [parse_dossier_event(v) for v in values]


def snapshot(*items: dict[str, Any]) -> dict[str, Any]:
    return {"service": "DongBoHoSoMC", "isUpdating": False, "data": list(items)}


def progress(*items: dict[str, Any]) -> dict[str, Any]:
    return {"service": "CapNhatTienDoHoSoMC", "data": list(items)}


def step(at: str, status: int, dossier_id: str = D2) -> dict[str, Any]:
    return {"MaHoSo": dossier_id, "ThoiDiemXuLy": at, "TrangThai": status, "NguoiXuLy": "Chuyên viên thụ lý"}


def d1(**fields: Any) -> dict[str, Any]:
    """D1 as line 1 of payloads.jsonl sends it (received at the desk), `fields` changed (None removes)."""
    item = copy.deepcopy(PAYLOADS[0]["data"][0])
    item.update(fields)
    return {k: v for k, v in item.items() if v is not None}


def published(intake: Intake) -> list[tuple[str, str, str]]:
    return [(e["dossier_id"], e["type"], e["occurred_at"]) for e in intake.publisher.values()]


# ---- both services, both date forms ------------------------------------------------------------


async def test_a_snapshot_with_14_digit_instants_becomes_the_v1_events_keyed_by_dossier(intake: Intake) -> None:
    response = await post(intake, PAYLOADS[0])  # D1 received (yyyyMMddHHmmss); D3 submitted online, refused

    assert accepted(response) == (3, 0)
    want = expected((D1, "dossier.received"), (D3, "dossier.submitted"), (D3, "dossier.refused"))
    assert events_of(intake.publisher.values()) == want
    assert [m.key for m in intake.publisher.messages] == [D1, D3, D3]
    assert len(intake.publisher.batches) == 1  # one Kafka transaction for the request
    assert {e["source"] for e in intake.publisher.values()} == {SOURCE}  # the key's source


async def test_a_snapshot_with_iso_instants_without_offset_is_read_in_vietnam_time(intake: Intake) -> None:
    response = await post(intake, PAYLOADS[2])  # D2: "2026-03-09T08:30:00", codes as text ("2")

    assert accepted(response) == (2, 0)
    assert events_of(intake.publisher.values()) == expected((D2, "dossier.submitted"), (D2, "dossier.received"))
    assert intake.publisher.values()[1]["occurred_at"] == "2026-03-09T08:30:00+07:00"


async def test_the_key_decides_the_source_and_each_source_has_its_own_ids(intake: Intake) -> None:
    assert accepted(await post(intake, PAYLOADS[0])) == (3, 0)
    assert accepted(await post(intake, PAYLOADS[0], {"Authorization": f"Bearer {OTHER_KEY}"})) == (3, 0)

    mine, theirs = intake.publisher.batches
    assert {json.loads(m.value)["source"] for m in theirs} == {OTHER_SOURCE}
    assert not {json.loads(m.value)["event_id"] for m in mine} & {json.loads(m.value)["event_id"] for m in theirs}


async def test_the_worked_example_line_by_line_publishes_each_event_of_its_translation_once(intake: Intake) -> None:
    """The twelve bodies of docs/dvcqg/payloads.jsonl, one request each, in order: every snapshot re-derives what
    came before (duplicates), the steps of D2 pair across requests (6 on line 6, 6 again on 7, 4 on 9)."""
    answers = [accepted(await post(intake, body)) for body in PAYLOADS]

    assert answers == [(3, 0), (1, 1), (2, 0), (0, 0), (1, 2), (1, 0), (0, 1), (1, 3), (1, 1), (1, 4), (2, 2),
                       (0, 5)]
    by_id = lambda events: sorted(events, key=lambda e: e.event_id)  # noqa: E731
    assert by_id(events_of(intake.publisher.values())) == by_id(events_of(EXPECTED))


# ---- deterministic ids: re-sent and growing snapshots ----------------------------------------------


async def test_a_snapshot_sent_again_gives_only_duplicates(intake: Intake) -> None:
    first = await post(intake, PAYLOADS[0])
    again = await post(intake, PAYLOADS[0])

    assert accepted(first) == (3, 0)
    assert accepted(again) == (0, 3)
    assert len(intake.publisher.messages) == 3


async def test_a_later_snapshot_publishes_only_the_new_events(intake: Intake) -> None:
    accepted(await post(intake, PAYLOADS[0]))
    resolved = d1(TrangThaiHoSo=9, NgayKetThucXuLy="20260320103000")

    response = await post(intake, snapshot(resolved))

    assert accepted(response) == (1, 1)  # the receipt again, and the resolution
    assert intake.publisher.batches[-1][0].key == D1
    assert events_of([json.loads(m.value) for m in intake.publisher.batches[-1]]) == expected((D1, "dossier.resolved"))


# ---- the steps of a dossier, across requests -----------------------------------------------------------


async def test_a_fee_step_then_a_processing_step_pause_and_resume_across_two_requests(intake: Intake) -> None:
    assert accepted(await post(intake, progress(step("2026-03-18T14:00:00", 6)))) == (1, 0)
    assert accepted(await post(intake, progress(step("2026-03-23T10:00:00", 4)))) == (1, 1)

    assert events_of(intake.publisher.values()) == expected((D2, "dossier.paused"), (D2, "dossier.resumed"))


async def test_a_fee_step_then_another_fee_step_is_one_pause(intake: Intake) -> None:
    assert accepted(await post(intake, progress(step("2026-03-18T14:00:00", 6)))) == (1, 0)
    assert accepted(await post(intake, progress(step("2026-03-19T09:00:00", 6)))) == (0, 1)

    assert published(intake) == [(D2, "dossier.paused", "2026-03-18T14:00:00+07:00")]


async def test_a_step_that_arrives_before_an_earlier_one_is_paired_by_time(intake: Intake) -> None:
    # The processing step (23/03) comes first: alone it pauses nothing. The fee step of 18/03 comes next:
    # in order of ThoiDiemXuLy they are 6 then 4, so the clock paused on 18/03 and went on on 23/03.
    assert accepted(await post(intake, progress(step("2026-03-23T10:00:00", 4)))) == (0, 0)
    assert accepted(await post(intake, progress(step("20260318140000", 6)))) == (2, 0)

    assert events_of(intake.publisher.values()) == expected((D2, "dossier.paused"), (D2, "dossier.resumed"))


async def test_a_step_sent_again_is_kept_once_and_other_dossiers_keep_their_own_steps(intake: Intake) -> None:
    other = "000.00.20.H10-260310-0005"
    accepted(await post(intake, progress(step("2026-03-18T14:00:00", 6), step("2026-03-18T14:00:00", 6))))
    accepted(await post(intake, progress(step("2026-03-18T14:00:00", 6), step("2026-03-20T08:00:00", 4, other))))
    accepted(await post(intake, progress(step("2026-03-23T10:00:00", 4))))

    assert published(intake) == [(D2, "dossier.paused", "2026-03-18T14:00:00+07:00"),
                                 (D2, "dossier.resumed", "2026-03-23T10:00:00+07:00")]
    with sa.create_engine(intake.settings.database_url).connect() as connection:
        kept = connection.execute(sa.text(
            "SELECT dossier_id, status, step FROM intake_dvcqg_steps ORDER BY dossier_id, at")).all()
    assert [(d, s) for d, s, _ in kept] == [(D2, 6), (D2, 4), (other, 4)]
    assert json.loads(kept[0][2]) == {"ThoiDiemXuLy": "2026-03-18T14:00:00+07:00", "TrangThai": 6,
                                      "NguoiXuLy": "Chuyên viên thụ lý"}


# ---- refusals: index and DVCQG field, all or nothing -----------------------------------------------------


async def test_refused_items_are_named_by_index_and_field_and_nothing_is_published(intake: Intake) -> None:
    bad = d1(MaHoSo="000.00.12.H10-260302-0009", ChuHoSo=None, TrangThaiHoSo=5, DanhSachHoSoBoSung=[
        {"NgayBoSung": "20260304100000"}, {"NoiDungBoSung": "Thiếu tờ khai"}])
    unknown_procedure = d1(MaHoSo="000.00.12.H10-260302-0010", MaTTHC="9.999999")
    bad_instant = d1(MaHoSo="000.00.12.H10-260302-0011", NgayTiepNhan="02/03/2026 09:00")

    response = await post(intake, snapshot(d1(), bad, unknown_procedure, bad_instant))

    problems = refusals(response)
    assert [(index, field) for index, field, _ in problems] == [
        (1, "ChuHoSo"), (1, "DanhSachHoSoBoSung[1].NgayBoSung"), (2, "MaTTHC"), (3, "NgayTiepNhan")]
    assert problems[0][2] == "required" and problems[2][2] == "not in the procedure catalogue"
    assert intake.publisher.messages == []
    assert accepted(await post(intake, snapshot(d1()))) == (1, 0)  # the good item was not recorded either


async def test_a_v1_bound_broken_by_a_derived_event_names_the_item_and_the_field_it_came_from(intake: Intake) -> None:
    future_refusal = {**PAYLOADS[0]["data"][1], "NgayTuChoi": "20990303100500"}
    future_round = d1(TrangThaiHoSo=5, DanhSachHoSoBoSung=[
        {"NgayBoSung": "20260304100000", "NoiDungBoSung": "Thiếu bản sao"},
        {"NgayBoSung": "2099-03-05T10:00:00+07:00"}])

    response = await post(intake, snapshot(future_refusal, future_round))

    problems = refusals(response)
    assert [(index, field) for index, field, _ in problems] == [
        (0, "NgayTuChoi"), (1, "DanhSachHoSoBoSung[1].NgayBoSung")]
    assert all("lies in the future" in reason for _, _, reason in problems)
    assert intake.publisher.messages == []


async def test_a_progress_step_in_the_future_is_named_by_its_own_index(intake: Intake) -> None:
    response = await post(intake, progress(step("2026-03-09T08:30:00", 2), step("20991231235959", 6)))

    assert [(i, f) for i, f, _ in refusals(response)] == [(1, "ThoiDiemXuLy")]


async def test_a_refused_progress_request_keeps_none_of_its_steps(intake: Intake) -> None:
    response = await post(intake, progress(step("2026-03-18T14:00:00", 6), {"MaHoSo": D2, "TrangThai": 4}))
    assert [(i, f) for i, f, _ in refusals(response)] == [(1, "ThoiDiemXuLy")]

    # Had the fee step been kept, this step would resume the clock.
    assert accepted(await post(intake, progress(step("2026-03-23T10:00:00", 4)))) == (0, 0)
    assert intake.publisher.messages == []


async def test_when_kafka_refuses_nothing_is_kept_and_the_same_request_later_goes_through(intake: Intake) -> None:
    intake.publisher.fail_with = BrokerUnavailable("Kafka did not acknowledge within 0.5 s")
    response = await post(intake, progress(step("2026-03-18T14:00:00", 6)))

    assert refusals(response, 503) == [(None, None, "Kafka did not acknowledge within 0.5 s; retry later")]
    assert response.headers["retry-after"] == "5"
    intake.publisher.fail_with = None
    assert accepted(await post(intake, progress(step("2026-03-23T10:00:00", 4)))) == (0, 0)  # the 6 was not kept
    assert accepted(await post(intake, progress(step("2026-03-18T14:00:00", 6)))) == (2, 0)  # now: pause, resume
    assert published(intake) == [(D2, "dossier.paused", "2026-03-18T14:00:00+07:00"),
                                 (D2, "dossier.resumed", "2026-03-23T10:00:00+07:00")]


async def test_when_the_steps_cannot_be_kept_the_sender_is_told_to_send_again(intake: Intake) -> None:
    """Kafka took the pause but the database refused the step: 503, so the vendor sends the request again
    (the pause keeps its id: consumers count it once) and the step is kept then."""
    engine = sa.create_engine(intake.settings.database_url)
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TRIGGER full_disk BEFORE INSERT ON intake_dvcqg_steps "
                                   "BEGIN SELECT RAISE(ABORT, 'disk full'); END"))
    response = await post(intake, progress(step("2026-03-18T14:00:00", 6)))

    assert refusals(response, 503) == [(None, None, "the database is unavailable; retry later")]
    with engine.begin() as connection:
        connection.execute(sa.text("DROP TRIGGER full_disk"))
    assert accepted(await post(intake, progress(step("2026-03-18T14:00:00", 6)))) == (1, 0)
    assert accepted(await post(intake, progress(step("2026-03-23T10:00:00", 4)))) == (1, 1)
    assert published(intake) == [(D2, "dossier.paused", "2026-03-18T14:00:00+07:00"),
                                 (D2, "dossier.paused", "2026-03-18T14:00:00+07:00"),
                                 (D2, "dossier.resumed", "2026-03-23T10:00:00+07:00")]
    assert len({e["event_id"] for e in intake.publisher.values()}) == 2


async def test_when_the_kept_steps_cannot_be_read_nothing_is_published(intake: Intake) -> None:
    with sa.create_engine(intake.settings.database_url).begin() as connection:
        connection.execute(sa.text("ALTER TABLE intake_dvcqg_steps RENAME TO elsewhere"))

    response = await post(intake, progress(step("2026-03-18T14:00:00", 6)))

    assert refusals(response, 503)[0][2] == "the database is unavailable; retry later"
    assert intake.publisher.messages == []


@pytest.mark.parametrize(("body", "field", "words"), [
    ({"service": "DongBoHoSoMC"}, "data", "must be a list of items"),
    ({"service": "LayDanhSachHoSo", "data": [{}]}, "service", "must be DongBoHoSoMC or CapNhatTienDoHoSoMC"),
    ({"service": "DongBoHoSoMC", "data": []}, "data", "is empty"),
    ([PAYLOADS[0]], "(body)", "must be a JSON object"),
], ids=["no-data", "unknown-service", "empty", "array"])
async def test_a_body_that_is_not_a_portal_request_is_refused_as_a_whole(intake: Intake, body: Any, field: str,
                                                                          words: str) -> None:
    [(index, got_field, reason)] = refusals(await post(intake, body))

    assert (index, got_field) == (None, field) and words in reason


async def test_more_than_1000_items_is_413_and_not_json_is_422_in_the_portal_shape(intake: Intake) -> None:
    too_many = progress(*[step(f"2026-03-18T14:{n // 60:02d}:{n % 60:02d}", 2) for n in range(1001)])

    [(_, field, reason)] = refusals(await post(intake, too_many), 413)
    assert field == "data" and "at most 1000" in reason
    not_json = await intake.client.post("/v1/dvcqg", content=b"{not json", headers={
        **AUTH, "content-type": "application/json"})
    assert refusals(not_json) == [(None, None, "the body is not valid UTF-8 JSON")]
    wrong_type = await intake.client.post("/v1/dvcqg", content=b"{}", headers={**AUTH, "content-type": "text/plain"})
    assert refusals(wrong_type, 415)[0][2].startswith("the body must be JSON")
    assert intake.publisher.messages == []


async def test_without_a_valid_key_it_is_401_in_the_portal_shape(intake: Intake) -> None:
    response = await post(intake, PAYLOADS[0], headers={"Authorization": "Bearer wrong"})

    assert refusals(response, 401)[0][2].startswith("a valid source key is required")
    assert response.headers["www-authenticate"] == "Bearer"


# ---- the catalogue -----------------------------------------------------------------------------------------


async def test_without_a_catalogue_the_endpoint_says_it_is_not_configured(tmp_path: Path) -> None:
    async for intake in running_intake(make_settings(tmp_path)):
        response = await post(intake, PAYLOADS[0])
        unauthorised = await post(intake, PAYLOADS[0], headers=None)
        events = await intake.client.post("/v1/events", json=EXPECTED[0], headers=AUTH)

        [(index, field, reason)] = refusals(response, 501)
        assert (index, field) == (None, None) and "INTAKE_DVCQG_CATALOGUE" in reason
        assert unauthorised.status_code == 401  # the key first: nothing said of the deployment without it
        assert events.status_code == 202  # /v1/events is not concerned
        assert 'tthc_intake_requests_rejected_total{reason="not_configured"} 1.0' in (
            await intake.client.get("/metrics")).text


@pytest.mark.parametrize(("text", "words"), [
    ('procedures:\n  "1.001234": {duration: {value: 0, unit: working_days}}\n', "line 2: duration.value must be > 0"),
    ('procedures:\n  "1.001234": {duration: {value: 10, unit: weeks}}\n', "line 2: duration.unit must be one of"),
    ("agencies: {}\n", "the catalogue needs a procedures mapping"),
    ("procedures: [unclosed\n", "not valid YAML"),
], ids=["zero-duration", "unknown-unit", "no-procedures", "not-yaml"])
def test_an_invalid_catalogue_refuses_start_up_with_its_line_and_reason(monkeypatch: Any, capsys: Any, tmp_path: Path,
                                                                        text: str, words: str) -> None:
    catalogue = tmp_path / "catalogue.yaml"
    catalogue.write_text(text, encoding="utf-8")
    monkeypatch.setenv("INTAKE_DATABASE_URL", f"sqlite:///{tmp_path}/intake.db")
    monkeypatch.setenv("INTAKE_SOURCE_KEYS", f"{SOURCE}={hash_key(KEY)}")
    monkeypatch.setenv("INTAKE_DVCQG_CATALOGUE", str(catalogue))

    assert intake_main([]) == 2

    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith(f"intake: refusing to start: INTAKE_DVCQG_CATALOGUE: {catalogue}"), err
    assert words in err


def test_a_missing_catalogue_file_refuses_start_up(monkeypatch: Any, capsys: Any, tmp_path: Path) -> None:
    monkeypatch.setenv("INTAKE_DATABASE_URL", f"sqlite:///{tmp_path}/intake.db")
    monkeypatch.setenv("INTAKE_SOURCE_KEYS", f"{SOURCE}={hash_key(KEY)}")
    monkeypatch.setenv("INTAKE_DVCQG_CATALOGUE", str(tmp_path / "nowhere.yaml"))

    assert intake_main([]) == 2

    err = capsys.readouterr().err
    assert err == f"intake: refusing to start: INTAKE_DVCQG_CATALOGUE: {tmp_path / 'nowhere.yaml'}: cannot read: " \
                  "No such file or directory\n"


# ---- observability -----------------------------------------------------------------------------------------


async def test_no_applicant_data_in_logs_or_metrics(intake: Intake, capsys: Any) -> None:
    for body in PAYLOADS:
        await post(intake, body)
    await post(intake, snapshot(d1(MaTTHC="9.999999")))

    logged = capsys.readouterr().out + (await intake.client.get("/metrics")).text

    assert D1 in logged  # the DEBUG lines name the events' dossiers...
    assert not [name for name in APPLICANTS if name in logged]  # ...never their applicants
    assert "Chuyên viên thụ lý" not in logged


def test_migrations_create_exactly_the_tables_the_models_describe(tmp_path: Path) -> None:
    from tthc_intake.app import MIGRATIONS_DIR

    assert migration_differences(tmp_path, MIGRATIONS_DIR, {"intake_accepted_events", "intake_dvcqg_steps"}) == []
