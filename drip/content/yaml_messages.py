"""What the YAML parser says, put in words an author can act on, at the line to fix."""

from __future__ import annotations

from pathlib import Path

import yaml

from drip.content.sequences import Problem
from drip.core import yaml_input


def line_of_keys(text: str) -> dict[str, int]:
    """1-based line of each top-level key (and of nested keys as 'parent.child')."""
    lines: dict[str, int] = {}
    try:
        node = yaml_input.compose(text)
    except yaml.YAMLError:
        return lines
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            lines[str(key_node.value)] = key_node.start_mark.line + 1
            if isinstance(value_node, yaml.MappingNode):
                for sub_key, _ in value_node.value:
                    lines[f"{key_node.value}.{sub_key.value}"] = sub_key.start_mark.line + 1
    return lines


CURLY_QUOTES = "“”‘’"


def yaml_error(path: Path, error: yaml.YAMLError, offset: int = 0, text: str = "") -> Problem:
    """The parser's complaint in words an author can act on, at the line to fix."""
    if isinstance(error, yaml_input.YamlRefused):
        return Problem(path, error.line + offset, error.reason)
    mark = getattr(error, "problem_mark", None)
    context = getattr(error, "context_mark", None)
    line = (mark.line + 1) if mark is not None else 1
    what = str(getattr(error, "problem", None) or error)
    lines = text.splitlines()
    here = lines[line - 1] if 0 < line <= len(lines) else ""
    key = here.split(":", 1)[0].strip() or "the value"
    unclosed = _unclosed_quote(lines[:line])
    if any(quote in here for quote in CURLY_QUOTES):
        message = (
            f"line {line} has curly quotes (“ ” or ‘ ’), as a word processor types "
            "them; YAML needs straight quotes: retype them as \" or '"
        )
    elif "mapping values are not allowed" in what:
        message = (
            f"the {key} has a colon (:) in it: put the {key} in quotes, e.g. "
            f'{key}: "Step 2: small talk"'
        )
    elif unclosed is not None or "while scanning a quoted scalar" in str(
        getattr(error, "context", "")
    ):
        line = unclosed or ((context.line + 1) if context is not None else line)
        message = (
            f"a quote opened on line {line + offset} is never closed: end the text "
            "with the same quote mark it starts with"
        )
    else:
        message = f"this is not valid YAML ({what})"
    return Problem(path, line + offset, message)


def _unclosed_quote(lines: list[str]) -> int | None:
    """The 1-based line whose value opens a quote that the line does not close, if any."""
    for number, text in enumerate(lines, start=1):
        value = text.split(":", 1)[1].strip() if ":" in text else ""
        if value[:1] in ("'", '"') and (len(value) == 1 or not value.endswith(value[0])):
            return number
    return None
