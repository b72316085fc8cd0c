"""The letters: rendered when asked for, from the draft and the dossier's receipt, cached on disk.

Drafts may exist before the dossier's receipt arrives (the dossier and deadline topics are not ordered
with each other), so nothing is rendered at draft time. A document is rendered on the first download
and cached under a name that fingerprints everything it shows (the letter's fields and the template),
so an issued letter, a later-arriving earlier receipt or a new template never serve a stale file.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import tempfile
import unicodedata
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tthc_adapters.pdf import docx_to_pdf, find_soffice
from tthc_contracts.events import parse_dossier_event
from tthc_contracts.timefmt import to_vn
from tthc_core.calendar import CalendarBook
from tthc_core.deadlines import fold
from tthc_core.letter import (
    LetterDefaults,
    LetterFields,
    LetterHeader,
    check_template,
    letter_for_draft,
    render_letter,
)

from .config import ApologySettings
from .models import Apology, ApologyDossier
from .queries import draft_of


class LetterNotReady(Exception):
    """The dossier's receipt (dossier.received) has not arrived yet: the letter cannot be written."""


class PdfUnavailable(Exception):
    """No LibreOffice on this server."""


class TemplateProblems(Exception):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("refusing to start, letter templates are unusable:\n  " + "\n  ".join(problems))
        self.problems = problems


def check_templates(templates_dir: Path | None) -> dict[str, Path]:
    """agency_code -> its template, every one linted; raises `TemplateProblems` listing all problems."""
    if templates_dir is None:
        return {}
    if not templates_dir.is_dir():
        raise TemplateProblems([f"{templates_dir}: APOLOGY_TEMPLATES_DIR is not a directory"])
    templates = {p.stem: p for p in sorted(templates_dir.glob("*.docx")) if not p.name.startswith("~$")}
    problems = [problem for path in templates.values() for problem in check_template(path)]
    if problems:
        raise TemplateProblems(problems)
    return templates


def receipt_of(dossier: ApologyDossier | None) -> Any | None:
    if dossier is None or dossier.received_event is None:
        return None
    return parse_dossier_event(json.loads(dossier.received_event))


def _file_safe(text: str) -> str:
    return re.sub(r"[^0-9A-Za-z._-]+", "-", unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
                  ).strip("-.") or "phieu"


def download_name(row: Apology, suffix: str) -> str:
    """An issued letter is named after its number (`01-PXL-<dossier>.docx`), as the officer files it; a
    draft or a cancelled one says what it is (`phieu-xin-loi-<dossier>-<kind>.docx`)."""
    if row.status == "issued" and row.number:
        return f"{_file_safe(row.number)}-{_file_safe(row.dossier_id)}{suffix}"
    return f"phieu-xin-loi-{_file_safe(row.dossier_id)}-{row.kind}{suffix}"


class Letters:
    def __init__(self, settings: ApologySettings, book: CalendarBook, templates: dict[str, Path]) -> None:
        self.book = book
        self.templates = templates
        self.folder = settings.documents_dir
        self.pdf_timeout_s = settings.pdf_timeout_s
        self._pdf_slots = asyncio.Semaphore(max(1, settings.pdf_concurrency))
        self._pdf_locks: dict[str, asyncio.Lock] = {}
        self.defaults = LetterDefaults(
            parent_agency=settings.letter_parent_agency,
            place=settings.letter_place,
            one_stop_unit_name=settings.letter_one_stop_unit_name,
            signer_position=settings.letter_signer_position,
            agencies={code: LetterHeader(**head.model_dump()) for code, head in settings.letter_heads.items()},
        )

    def fields(self, row: Apology, dossier: ApologyDossier | None) -> LetterFields:
        received = receipt_of(dossier)
        if received is None:
            raise LetterNotReady(row.dossier_id)
        state, _ = fold([received], self.book)  # the dossier as its receipt describes it
        assert state is not None
        if row.status == "issued":
            assert row.issued_at is not None
            # The number exactly as stored and published ("01/PXL"): the template prints it as it is.
            return letter_for_draft(draft_of(row), state, received, self.defaults, reason=row.reason,
                                    number=row.number, issued_on=to_vn(row.issued_at).date(),
                                    new_due_at=row.new_due_at)
        return letter_for_draft(draft_of(row), state, received, self.defaults)

    def _template_identity(self, agency_code: str) -> tuple[Path | None, str]:
        path = self.templates.get(agency_code)
        if path is None:
            return None, "bundled-mau04"
        st = path.stat()
        return path, f"{path}:{st.st_size}:{st.st_mtime_ns}"

    def docx(self, row: Apology, dossier: ApologyDossier | None) -> Path:
        """The letter's DOCX on disk, rendered now unless the same content is cached. Blocking."""
        fields = self.fields(row, dossier)
        template, template_id = self._template_identity(row.agency_code)
        fingerprint = hashlib.sha256(
            json.dumps([asdict(fields), template_id], default=str, ensure_ascii=False).encode()
        ).hexdigest()[:16]
        path = self.folder / f"{row.apology_id}.{fingerprint}.docx"
        if path.is_file():
            return path
        # Earlier versions (the draft before it was issued) stay: a concurrent download may be reading
        # one, and they are a few tens of kilobytes. The folder is a cache and may be emptied any time.
        _write_atomically(path, render_letter(fields, template))  # already byte-stable (fixed zip times)
        return path

    async def pdf(self, docx_path: Path) -> Path:
        """The PDF preview next to the DOCX, converted by LibreOffice once per version."""
        if find_soffice() is None:
            raise PdfUnavailable()
        pdf_path = docx_path.with_suffix(".pdf")
        lock = self._pdf_locks.setdefault(pdf_path.name, asyncio.Lock())
        async with lock:
            if pdf_path.is_file():
                return pdf_path
            async with self._pdf_slots:
                import anyio.to_thread

                made = await anyio.to_thread.run_sync(docx_to_pdf, docx_path, docx_path.parent, self.pdf_timeout_s)
        self._pdf_locks.pop(pdf_path.name, None)
        if made is None:
            raise PdfUnavailable()
        return made


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
