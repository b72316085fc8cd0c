"""Render an apology letter (Mẫu 04) to an editable DOCX with docxtpl."""

from __future__ import annotations

import io
from importlib import resources
from os import PathLike

from docxtpl import DocxTemplate
from jinja2 import Environment, StrictUndefined

from .context import letter_context
from .fields import LetterFields

__all__ = ["LetterFields", "default_template", "letter_environment", "render_letter"]

DEFAULT_TEMPLATE = "templates/mau04.docx"


def default_template() -> io.BytesIO:
    """The bundled template, read through importlib.resources so it also works from a zipped install."""
    return io.BytesIO(resources.files(__package__).joinpath(DEFAULT_TEMPLATE).read_bytes())


def letter_environment() -> Environment:
    # autoescape: names such as "Hoa & Lá <Việt>" are XML-escaped instead of corrupting document.xml.
    # StrictUndefined: a misspelt placeholder fails loudly instead of printing nothing in a legal letter.
    return Environment(autoescape=True, undefined=StrictUndefined)


def render_letter(fields: LetterFields, template_path: str | PathLike[str] | None = None) -> bytes:
    """The letter as DOCX bytes, from the deployment's template or the bundled default."""
    template = DocxTemplate(template_path if template_path is not None else default_template())
    template.render(letter_context(fields).as_dict(), jinja_env=letter_environment(), autoescape=True)
    out = io.BytesIO()
    template.save(out)
    return out.getvalue()
