"""Letters in about a millisecond: each template compiled once per process, the unchanged parts reused.

The reference (`render.render_letter_reference`: docxtpl, then `stable_docx`) opens the Word file for
every letter, prepares the XML of the body, headers and footers for Jinja, compiles it, renders, and
deflates every part of the package again (0.8 MB of styles among them): about 36 ms a letter. Only the
parts with placeholders differ from one letter to the next. So, once per template:

- the reference renders a sample letter, and every member of that package without placeholders (styles,
  settings, theme, fonts, properties, content types, relationships) is kept as stored, compressed;
- each XML part with placeholders is prepared by docxtpl's own `patch_xml` and compiled by Jinja once.

A letter then renders those Jinja templates, finishes them with docxtpl's own steps in docxtpl's order,
serialises them as python-docx saves a part, deflates only them and writes the package around the kept
members. The bytes are the reference's (`tests/unit/test_letter_fast.py` checks it over generated letters
and a deployment-style template). A template with placeholders where this does not look for them (the
document properties, footnotes) is rendered by the reference: the same bytes, only slower.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import re
import threading
from os import PathLike

from docx.opc.oxml import serialize_part_xml
from docx.oxml.parser import parse_xml
from docxtpl import DocxTemplate
from jinja2 import Template
from lxml import etree

from .context import letter_context
from .docx_package import StoredPackage
from .fields import SAMPLE_FIELDS, LetterFields
from .render import bundled_template, letter_environment, render_letter_reference

__all__ = ["CompiledLetterTemplate", "compiled_template", "render_letter"]

_TAG = re.compile(r"\{\{|\{%|\{#")
# What docxtpl renders besides the body, headers and footers (DocxTemplate.render_properties).
_RENDERED_PROPERTIES = ("author", "comments", "identifier", "language", "subject", "title")
_FOOTNOTES = "application/vnd.openxmlformats-officedocument.wordprocessingml.footnotes+xml"


class CompiledLetterTemplate:
    """One Mẫu 04 template, ready to render letters. Thread-safe."""

    def __init__(self, source: bytes) -> None:
        self._source = source
        environment = letter_environment()
        docxtpl = DocxTemplate(io.BytesIO(source))
        docxtpl.init_docx()
        self._docxtpl = docxtpl
        self._lock = threading.Lock()  # the document's root is shared: one body swapped in at a time
        self._body: Template | None = None
        body = docxtpl.patch_xml(docxtpl.get_xml())
        if _TAG.search(body):
            self._body = environment.from_string(_before_jinja(body))
        self._document_part = docxtpl.docx.part.partname.lstrip("/")
        # Headers and footers with placeholders: (zip member, its Jinja template), in docxtpl's order.
        self._parts: list[tuple[str, Template]] = []
        for uri in (docxtpl.HEADER_URI, docxtpl.FOOTER_URI):
            for _, part in docxtpl.get_headers_footers(uri):
                xml = docxtpl.patch_xml(docxtpl.get_part_xml(part))
                if _TAG.search(xml):
                    self._parts.append((part.partname.lstrip("/"), environment.from_string(_before_jinja(xml))))
        names = [name for name, _ in self._parts]
        self.fast = len(set(names)) == len(names) and not _placeholders_elsewhere(docxtpl)
        # Raises what the reference raises for a template that cannot render (check_template reports it).
        self._package = StoredPackage.read(render_letter_reference(SAMPLE_FIELDS, io.BytesIO(source)))
        self._body_in_document = self._learn_body_in_document() if self._body is not None and self.fast else None

    @property
    def body_spliced(self) -> bool:
        """Whether letters serialise only their body (the fastest path) rather than the whole document."""
        return self._body_in_document is not None

    def render(self, fields: LetterFields) -> bytes:
        """The letter as DOCX bytes: `render_letter_reference(fields, <this template>)`, byte for byte."""
        if not self.fast:
            return render_letter_reference(fields, io.BytesIO(self._source))
        context = letter_context(fields).as_dict()
        replaced: dict[str, bytes] = {}
        if self._body is not None:
            replaced[self._document_part] = self._document_xml(self._finish(self._body.render(context)))
        for name, template in self._parts:
            # docxtpl loads a rendered header as a new part, which python-docx serialises on saving.
            xml = self._finish(template.render(context)).encode("utf-8")
            replaced[name] = serialize_part_xml(parse_xml(xml))
        return self._package.assemble(replaced)

    def _finish(self, rendered: str) -> str:
        """The end of DocxTemplate.render_xml_part, after Jinja."""
        xml = _MARKED_PARAGRAPH.sub(r"<w:p\1", rendered)
        if "{_" in xml or "_}" in xml:
            xml = xml.replace("{_{", "{{").replace("}_}", "}}").replace("{_%", "{%").replace("%_}", "%}")
        # resolve_listing turns these characters of a paragraph's text into Word breaks and changes nothing
        # else, one paragraph (as its own pattern finds them) at a time: only the paragraphs that hold one
        # need it, and on the whole document its regular expressions take half the time of a letter.
        if any(character in xml for character in _LISTING_CHARACTERS):
            xml = _PARAGRAPH.sub(self._resolve_listing, xml)
        return xml

    def _resolve_listing(self, paragraph: re.Match[str]) -> str:
        text = paragraph.group(0)
        if any(character in text for character in _LISTING_CHARACTERS):
            return self._docxtpl.resolve_listing(text)
        return text

    def _body_tree(self, body: str) -> etree._Element:
        """DocxTemplate.render's steps on the rendered body."""
        tree = self._docxtpl.fix_tables(body)
        with self._lock:  # docxtpl counts the drawings' ids on itself
            self._docxtpl.docx_ids_index = 1000  # as DocxTemplate.render_init sets it for every letter
            self._docxtpl.fix_docpr_ids(tree)
        return tree

    def _document_xml(self, body: str) -> bytes:
        """The document part as python-docx saves it once docxtpl has put the rendered body in."""
        tree = self._body_tree(body)
        if self._body_in_document is not None:
            # What the document's own XML holds around the body is the same for every letter: only the
            # body is serialised (a third of the time of a letter goes to moving it into the document).
            before, start_alone, after = self._body_in_document
            alone = etree.tostring(tree, encoding="UTF-8")
            if alone.startswith(start_alone):
                return b"".join((before, memoryview(alone)[len(start_alone):], after))
        with self._lock:
            self._docxtpl.map_tree(tree)
            return serialize_part_xml(self._docxtpl.docx.element)

    def _learn_body_in_document(self) -> tuple[bytes, bytes, bytes] | None:
        """How the sample letter's document part holds its body: (the part up to the body's contents, the
        body's start tag when it is serialised alone, the part after the body); None when the body alone
        is not, tag aside, what the document holds (then every letter moves its body in, as docxtpl does)."""
        document = self._package.content(self._document_part)
        tree = self._body_tree(self._finish(self._body.render(letter_context(SAMPLE_FIELDS).as_dict())))
        alone = etree.tostring(tree, encoding="UTF-8")
        name = (f"{tree.prefix}:" if tree.prefix else "") + "body"
        start = re.search(rf"<{re.escape(name)}[ >/]".encode(), document)
        end = document.rfind(f"</{name}>".encode())
        if start is None or end < 0:
            return None
        start_in_document = document[start.start():document.index(b">", start.start()) + 1]
        start_alone = alone[:alone.index(b">") + 1]
        end += len(name) + 3
        if document[start.start():end] != start_in_document + alone[len(start_alone):]:
            return None
        return document[:start.start()] + start_in_document, start_alone, document[end:]


def _before_jinja(xml: str) -> str:
    """The start of DocxTemplate.render_xml_part, before Jinja."""
    return re.sub(r"<w:p([ >])", r"\n<w:p\1", xml)


_MARKED_PARAGRAPH = re.compile(r"\n<w:p([ >])")
_LISTING_CHARACTERS = ("\n", "\t", "\a", "\f")
_PARAGRAPH = re.compile(r"<w:p(?: [^>]*)?>.*?</w:p>", flags=re.DOTALL)  # DocxTemplate.resolve_listing's


def _placeholders_elsewhere(docxtpl: DocxTemplate) -> bool:
    properties = docxtpl.docx.core_properties
    if any(_TAG.search(getattr(properties, name) or "") for name in _RENDERED_PROPERTIES):
        return True
    return any(
        part.content_type == _FOOTNOTES and _TAG.search(part.blob.decode("utf-8", "replace"))
        for part in docxtpl.docx.part.package.parts
    )


@functools.lru_cache(maxsize=64)
def _compiled(key: tuple[object, ...], source: bytes | None = None) -> CompiledLetterTemplate:
    if source is None:  # a file, named by the key (path, modification time, size)
        with open(str(key[0]), "rb") as f:
            source = f.read()
    return CompiledLetterTemplate(source)


def compiled_template(template: str | PathLike[str] | bytes | None = None) -> CompiledLetterTemplate:
    """The compiled template of a Word file (a deployment's, per agency), of its bytes, or the bundled one
    (None); compiled once per process, and again when the file changes."""
    if template is None:
        return _bundled()
    if isinstance(template, bytes):
        return _compiled(("bytes", hashlib.sha256(template).hexdigest()), template)
    path = os.path.abspath(os.fspath(template))
    st = os.stat(path)
    return _compiled((path, st.st_mtime_ns, st.st_size))


@functools.cache
def _bundled() -> CompiledLetterTemplate:
    return CompiledLetterTemplate(bundled_template())


def render_letter(fields: LetterFields, template: str | PathLike[str] | bytes | None = None) -> bytes:
    """The letter as DOCX bytes, from the deployment's template (a path or its bytes) or the bundled one;
    the same bytes every time."""
    return compiled_template(template).render(fields)
