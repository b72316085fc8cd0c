"""Reading a deployment's YAML configuration strictly, with the line of every refusal.

The calendar file (`tthc_core.calendar_config`) and the DVCQG procedure catalogue (`dvcqg`) are read
node by node (`yaml.compose`), not loaded, so that every refusal names the line it comes from: a
service must not start on a half-read configuration.
"""

from __future__ import annotations

import math

import yaml


class ConfigFileError(ValueError):
    """A configuration file refused: `line` (1-based, None when unknown) and `reason`."""

    what = "file"  # how the message names a file read from text without a path

    def __init__(self, line: int | None, reason: str, path: str | None = None):
        self.line, self.reason, self.path = line, reason, path
        where = f"{path or self.what}" + (f", line {line}" if line else "")
        super().__init__(f"{where}: {reason}")


def compose(text: str) -> yaml.Node | None:
    """The YAML node tree of `text` (None for an empty document); raises ConfigFileError."""
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ConfigFileError(mark.line + 1 if mark else None, f"not valid YAML: {exc}") from None


def line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null")


def scalar(node: yaml.Node, what: str) -> str:
    if not isinstance(node, yaml.ScalarNode):
        raise ConfigFileError(line(node), f"{what} must be a single value")
    return str(node.value)


# How a dossier's supplementation affects its clock (deadlines.md §4), as both files spell it.
SUPPLEMENT_MODES = ("restart", "pause")


def choice(node: yaml.Node, what: str, allowed: tuple[str, ...]) -> str:
    """One of `allowed`, written as a single value."""
    value = scalar(node, what)
    if value not in allowed:
        raise ConfigFileError(line(node), f"{what} must be {' or '.join(allowed)}, not {value!r}")
    return value


def mapping(node: yaml.Node, what: str) -> list[tuple[str, yaml.Node, yaml.Node]]:
    """(key, key node, value node) of a mapping, in file order."""
    if not isinstance(node, yaml.MappingNode):
        raise ConfigFileError(line(node), f"{what} must be a mapping")
    return [(scalar(k, "a key"), k, v) for k, v in node.value]


def number(node: yaml.Node, what: str) -> float:
    """A finite number written as one (the tag, not the text, says so: "2" in quotes is a string)."""
    text = scalar(node, what)
    if node.tag.endswith((":int", ":float")):
        try:
            value = float(text.replace("_", ""))
        except ValueError:
            pass  # 0x1A, .inf, 1:30 (sexagesimal): numbers to YAML, not to a reader of the file
        else:
            if math.isfinite(value):
                return value
    raise ConfigFileError(line(node), f"{what} must be a number, not {text!r}")
