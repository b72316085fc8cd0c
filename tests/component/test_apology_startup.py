"""The apology service refuses to start on a configuration it cannot honour, and says why in one line."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import docx
import pytest
from tthc_apology.__main__ import main
from tthc_apology.app import create_app
from tthc_apology.config import ApologySettings
from tthc_apology.documents import TemplateProblems
from tthc_common.keys import Keys, KeysError, hash_key
from tthc_core.calendar_config import CalendarFileError

AGENCY = "000.00.12.H10"


def settings(tmp_path: Path, **overrides: Any) -> ApologySettings:
    values: dict[str, Any] = {"database_url": f"sqlite:///{tmp_path}/apology.db", "documents_dir": tmp_path / "docs",
                              "officer_keys": f"{AGENCY}={hash_key('k')}"}
    return ApologySettings(**{**values, **overrides})


def word_file(path: Path, *paragraphs: str) -> Path:
    document = docx.Document()
    for text in paragraphs:
        document.add_paragraph(text)
    document.save(path)
    return path


def refusal(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
            **env: str) -> str:
    """`python -m tthc_apology` with `env`: exit 2 and exactly one line on stderr, which is returned."""
    monkeypatch.setenv("APOLOGY_DATABASE_URL", f"sqlite:///{tmp_path}/apology.db")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main([]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("apology: refusing to start: ")
    assert "Traceback" not in captured.err and captured.out == ""
    return lines[0]


def test_a_template_with_unknown_or_missing_placeholders_is_refused_with_the_list(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    word_file(templates / f"{AGENCY}.docx", "Số: {{ number }}/PXL", "Kính gửi: {{ ten_nguoi_nop }}")
    with pytest.raises(TemplateProblems) as refused:
        create_app(settings(tmp_path, templates_dir=templates))
    text = str(refused.value)
    assert "unknown placeholder {{ ten_nguoi_nop }}" in text
    for required in ("applicant_name", "dossier_id", "due_at", "reason", "new_due_at"):
        assert f"missing required placeholder {{{{ {required} }}}}" in text
    assert "placeholder {{ number }}" not in text  # known and present


def test_a_broken_template_file_is_refused(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / f"{AGENCY}.docx").write_bytes(b"this is not a Word file")
    with pytest.raises(TemplateProblems, match="unreadable Word template"):
        create_app(settings(tmp_path, templates_dir=templates))


def test_a_missing_templates_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TemplateProblems, match="not a directory"):
        create_app(settings(tmp_path, templates_dir=tmp_path / "nowhere"))


def test_a_bad_calendar_file_is_refused_with_its_line(tmp_path: Path) -> None:
    calendar = tmp_path / "calendar.yaml"
    calendar.write_text("extra_days_off:\n  - 2026-13-40\n", encoding="utf-8")
    with pytest.raises(CalendarFileError) as refused:
        create_app(settings(tmp_path, calendar_file=calendar))
    assert refused.value.line == 2


@pytest.mark.parametrize("value, says", [
    (f"{AGENCY}=my-plain-secret-key", "sha256:<64 hex>"),
    (f"{AGENCY}={hashlib.sha256(b'k').hexdigest()}", "sha256:<64 hex>"),  # the digest without its prefix
    (f"{AGENCY}", "name=sha256:<64 hex>"),
    (f"={hash_key('k')}", "the name before '='"),
    (f"{AGENCY}={hash_key('k')},000.00.15.H10={hash_key('k')}", "one key serves one name"),
    ("{not json", "not valid JSON"),
])
def test_malformed_officer_keys_refuse_the_start_in_one_line_without_echoing_them(
        value: str, says: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(KeysError):
        create_app(settings(tmp_path, officer_keys=value))
    line = refusal(capsys, monkeypatch, tmp_path, APOLOGY_OFFICER_KEYS=value)
    assert "APOLOGY_OFFICER_KEYS" in line and says in line
    assert "my-plain-secret-key" not in line


def test_officer_keys_take_several_agencies_and_several_keys_each(tmp_path: Path) -> None:
    keys = Keys.parse(f"{AGENCY}={hash_key('a')}, 000.00.15.H10={hash_key('b')},{AGENCY}={hash_key('c')}",
                      setting="APOLOGY_OFFICER_KEYS", prog="tthc_apology")
    assert keys.identify("a").name == AGENCY  # type: ignore[union-attr]
    assert keys.identify("b").name == "000.00.15.H10"  # type: ignore[union-attr]
    assert keys.identify("c").name == AGENCY  # type: ignore[union-attr]  (a second key: rotation)
    assert keys.identify("d") is None and keys.identify("") is None and keys.identify(None) is None
    app = create_app(settings(tmp_path, officer_keys=f"{AGENCY}={hash_key('a')},{AGENCY}={hash_key('c')}"))
    assert app.state.deps.keys.names() == {AGENCY}


def test_hash_key_prints_the_digest_to_configure(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["hash-key", "secret"]) == 0
    assert capsys.readouterr().out.strip() == "sha256:" + hashlib.sha256(b"secret").hexdigest()
    assert main(["hash-key"]) == 2


def test_the_command_refuses_a_bad_template_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    word_file(templates / f"{AGENCY}.docx", "{{ applicant_name }} {{ bogus }}")
    line = refusal(capsys, monkeypatch, tmp_path, APOLOGY_TEMPLATES_DIR=str(templates))
    assert "unknown placeholder {{ bogus }}" in line


def test_the_command_refuses_a_bad_calendar_or_setting_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    calendar = tmp_path / "calendar.yaml"
    calendar.write_text("office_hours: ['13:00-12:00']\n", encoding="utf-8")
    assert "calendar" in refusal(capsys, monkeypatch, tmp_path, APOLOGY_CALENDAR_FILE=str(calendar)).lower()
    monkeypatch.delenv("APOLOGY_CALENDAR_FILE")
    assert "APOLOGY_PDF_TIMEOUT_S" in refusal(capsys, monkeypatch, tmp_path, APOLOGY_PDF_TIMEOUT_S="soon")
    monkeypatch.delenv("APOLOGY_PDF_TIMEOUT_S")
    assert "refusing to start: APOLOGY_DATABASE_URL: 'mysql' is not supported: use sqlite:///" in refusal(
        capsys, monkeypatch, tmp_path, APOLOGY_DATABASE_URL="mysql://x/y")


def test_the_access_log_never_shows_an_officer_key() -> None:
    import logging

    from tthc_apology.access_log import RedactKeyParameter

    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5000", "GET", "/inbox?key=s3cret&x=1", "1.1", 303), None)
    RedactKeyParameter().filter(record)
    assert "s3cret" not in record.getMessage() and "/inbox?key=***&x=1" in record.getMessage()
