"""The reference rendering of an apology letter (Mẫu 04): docxtpl, then `stable_docx`.

It opens the template and compiles its Jinja for every letter (tens of milliseconds). Letters are
rendered by `compiled.render_letter`, which gives the same bytes from a template compiled once; this path
stays as the definition they are tested against, and for the template check.
"""

from __future__ import annotations

import io
from importlib import resources
from os import PathLike
from typing import IO

from docxtpl import DocxTemplate
from jinja2 import Environment, StrictUndefined

from .context import letter_context
from .docx_package import stable_docx
from .fields import LetterFields

__all__ = ["bundled_template", "letter_environment", "render_letter_reference", "render_with_docxtpl"]

BUNDLED_TEMPLATE = "templates/mau04.docx"

TemplateSource = str | PathLike[str] | IO[bytes]


def bundled_template() -> bytes:
    """The bundled template, read through importlib.resources so it also works from a zipped install."""
    return resources.files(__package__).joinpath(BUNDLED_TEMPLATE).read_bytes()


def letter_environment() -> Environment:
    # autoescape: names such as "Hoa & Lá <Việt>" are XML-escaped instead of corrupting document.xml.
    # StrictUndefined: a misspelt placeholder fails loudly instead of printing nothing in a legal letter.
    return Environment(autoescape=True, undefined=StrictUndefined)


def render_with_docxtpl(fields: LetterFields, template: TemplateSource | None = None) -> bytes:
    """docxtpl's rendering as python-docx saves it (zip members stamped with the current time)."""
    document = DocxTemplate(template if template is not None else io.BytesIO(bundled_template()))
    document.render(letter_context(fields).as_dict(), jinja_env=letter_environment(), autoescape=True)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def render_letter_reference(fields: LetterFields, template: TemplateSource | None = None) -> bytes:
    """The letter as DOCX bytes, the same bytes every time: what `render_letter` must equal."""
    return stable_docx(render_with_docxtpl(fields, template))
