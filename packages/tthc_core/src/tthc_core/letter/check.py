"""Lint a deployment-supplied letter template at service start-up, so a bad one is refused early."""

from __future__ import annotations

import io
import re
import zipfile
from os import PathLike

from docxtpl import DocxTemplate
from jinja2 import TemplateSyntaxError

from .compiled import compiled_template
from .context import PLACEHOLDERS, REQUIRED_PLACEHOLDERS
from .fields import NUMBER_SYMBOL, SAMPLE_FIELDS
from .render import letter_environment

_TAGS = re.compile(r"<[^>]+>")


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
    if problems:
        return problems
    # Trial render: catches what parsing alone cannot (unknown filters, tags that break the XML).
    try:
        letter = compiled_template(path).render(SAMPLE_FIELDS)
    except Exception as exc:  # noqa: BLE001 - any failure here would also fail for a real letter
        return [f"{path}: template fails to render ({type(exc).__name__}: {exc})"]
    if SAMPLE_FIELDS.number + NUMBER_SYMBOL in _text(letter):
        problems.append(f"{path}: prints the number twice (\"{SAMPLE_FIELDS.number + NUMBER_SYMBOL}\"): the "
                        f"number already ends with {NUMBER_SYMBOL}, write \"Số: {{{{ number }}}}\"")
    return problems


def _text(docx: bytes) -> str:
    """The text of every XML part, runs joined (a number may be split across runs)."""
    with zipfile.ZipFile(io.BytesIO(docx)) as package:
        return "".join(_TAGS.sub("", package.read(n).decode("utf-8", "replace"))
                       for n in package.namelist() if n.endswith(".xml"))
