"""Lint a deployment-supplied letter template at service start-up, so a bad one is refused early."""

from __future__ import annotations

from datetime import date, datetime
from os import PathLike

from docxtpl import DocxTemplate
from jinja2 import TemplateSyntaxError
from tthc_contracts.timefmt import VN_TZ

from .context import PLACEHOLDERS, REQUIRED_PLACEHOLDERS
from .fields import LetterFields
from .render import letter_environment, render_letter

# Trial-render input: catches what parsing alone cannot (unknown filters, tags that break the XML).
_SAMPLE = LetterFields(
    parent_agency="Ủy ban nhân dân tỉnh Mẫu",
    agency_name="Sở Mẫu & Thử <nghiệm>",
    agency_code="000.00.00.H00",
    place="Mẫu",
    number="…",
    issued_on=date(2026, 2, 5),
    applicant_kind="organization",
    applicant_name='Công ty "Mẫu"',
    dossier_id="000.00.00.H00-260205-0001",
    procedure_name="Thủ tục mẫu",
    received_at=datetime(2026, 1, 20, 8, 0, tzinfo=VN_TZ),
    due_at=datetime(2026, 2, 5, 16, 30, tzinfo=VN_TZ),
    reason="Lý do mẫu",
    new_due_at=datetime(2026, 2, 9, 16, 30, tzinfo=VN_TZ),
    one_stop_unit_name="Bộ phận Một cửa mẫu",
    signer_position="Giám đốc",
)


def check_template(path: str | PathLike[str]) -> list[str]:
    """Problems that make `path` unusable as a Mẫu 04 template; empty when it is fine."""
    try:
        used = DocxTemplate(path).get_undeclared_template_variables(jinja_env=letter_environment())
    except TemplateSyntaxError as exc:
        return [f"{path}: template syntax error on line {exc.lineno}: {exc.message}"]
    except Exception as exc:  # noqa: BLE001 - whatever stops python-docx opening it, the file is unusable
        return [f"{path}: unreadable Word template ({type(exc).__name__}: {exc})"]
    problems = [
        f"{path}: unknown placeholder {{{{ {name} }}}} (known: {', '.join(sorted(PLACEHOLDERS))})"
        for name in sorted(used - PLACEHOLDERS)
    ]
    problems += [
        f"{path}: missing required placeholder {{{{ {name} }}}}"
        for name in sorted(REQUIRED_PLACEHOLDERS - used)
    ]
    if not problems:
        try:
            render_letter(_SAMPLE, path)
        except Exception as exc:  # noqa: BLE001 - any failure here would also fail for a real letter
            problems.append(f"{path}: template fails to render ({type(exc).__name__}: {exc})")
    return problems
