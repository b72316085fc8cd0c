"""Apology letter (form Mẫu 04 "Phiếu xin lỗi và hẹn lại ngày trả kết quả"): what it says, the DOCX, the
template check.

    fields        what goes into a letter and where it comes from (LetterFields, LetterHeader, letter_for_draft)
    context       the placeholders of a template and their display strings
    compiled      render_letter: a template compiled once per process, about a millisecond a letter
    render        the reference rendering (docxtpl) that render_letter equals byte for byte
    docx_package  the zip written the same way every time (stable_docx), and assembled from kept parts
    check         the template check a service runs at start-up

The PDF preview (LibreOffice) is I/O: `tthc_adapters.pdf`.
"""

from .check import check_template
from .compiled import compiled_template, render_letter
from .context import PLACEHOLDERS, REQUIRED_PLACEHOLDERS, LetterContext, letter_context
from .docx_package import stable_docx
from .fields import (
    DRAFT_NUMBER,
    LetterDefaults,
    LetterFields,
    LetterHeader,
    derive_header,
    letter_for_draft,
)
from .render import render_letter_reference

__all__ = [
    "DRAFT_NUMBER",
    "PLACEHOLDERS",
    "REQUIRED_PLACEHOLDERS",
    "LetterContext",
    "LetterDefaults",
    "LetterFields",
    "LetterHeader",
    "check_template",
    "compiled_template",
    "derive_header",
    "letter_context",
    "letter_for_draft",
    "render_letter",
    "render_letter_reference",
    "stable_docx",
]
