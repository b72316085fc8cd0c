"""The apology service refuses to start on a configuration it cannot honour, and says why."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import docx
import pytest
from pydantic import ValidationError

from tthc_apology.__main__ import main
from tthc_apology.app import create_app
from tthc_apology.config import ApologySettings
from tthc_apology.documents import TemplateProblems
from tthc_apology.officer_keys import OfficerKeys, hash_key
from tthc_core.calendar_config import CalendarFileError

AGENCY = "000.00.12.H10"


def settings(tmp_path: Path, **overrides: Any) -> ApologySettings:
    return ApologySettings(database_url=f"sqlite:///{tmp_path}/apology.db", documents_dir=tmp_path / "docs",
                           officer_keys=f"{AGENCY}={hash_key('k')}", **overrides)


def word_file(path: Path, *paragraphs: str) -> Path:
    document = docx.Document()
    for text in paragraphs:
        document.add_paragraph(text)
    document.save(path)
    return path


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


def test_officer_keys_must_be_digests_and_are_never_echoed(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as refused:
        ApologySettings(officer_keys=f"{AGENCY}=my-plain-secret-key")
    assert "my-plain-secret-key" not in str(refused.value.errors(include_input=False))
    assert "SHA-256" in str(refused.value)

    keys = OfficerKeys.parse(f"{AGENCY}={hash_key('a')}, 000.00.15.H10=sha256:{hash_key('b')},{AGENCY}={hash_key('c')}")
    assert keys.identify("a").agency_code == AGENCY  # type: ignore[union-attr]
    assert keys.identify("b").agency_code == "000.00.15.H10"  # type: ignore[union-attr]
    assert keys.identify("c").agency_code == AGENCY  # type: ignore[union-attr]  (a second key: rotation)
    assert keys.identify("d") is None and keys.identify("") is None and keys.identify(None) is None


def test_hash_key_prints_the_digest_to_configure(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["hash-key", "secret"]) == 0
    assert capsys.readouterr().out.strip() == hashlib.sha256(b"secret").hexdigest()
    assert main(["hash-key"]) == 2


def test_the_command_exits_2_with_the_reason_on_a_bad_template(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    word_file(templates / f"{AGENCY}.docx", "{{ applicant_name }} {{ bogus }}")
    monkeypatch.setenv("APOLOGY_DATABASE_URL", f"sqlite:///{tmp_path}/apology.db")
    monkeypatch.setenv("APOLOGY_TEMPLATES_DIR", str(templates))
    assert main([]) == 2
    err = capsys.readouterr().err
    assert "refusing to start" in err and "unknown placeholder {{ bogus }}" in err


def test_the_command_exits_2_on_malformed_officer_keys(monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("APOLOGY_OFFICER_KEYS", f"{AGENCY}=plain-key-typed-here")
    assert main([]) == 2
    err = capsys.readouterr().err
    assert "officer_keys" in err and "plain-key-typed-here" not in err


def test_the_access_log_never_shows_an_officer_key() -> None:
    import logging

    from tthc_apology.access_log import RedactKeyParameter

    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5000", "GET", "/inbox?key=s3cret&x=1", "1.1", 303), None)
    RedactKeyParameter().filter(record)
    assert "s3cret" not in record.getMessage() and "/inbox?key=***&x=1" in record.getMessage()
