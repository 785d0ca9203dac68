"""Every piece of YAML drip reads goes through here: lesson and lead-magnet front matter,
sequence.yaml, site.yaml, broadcast files and uploads, the studio's forms and round trips.

Two rules keep a small file from costing minutes and gigabytes (a "billion laughs"
document nests aliases, each level doubling what the next one expands to):

- anchors and aliases (`&name`, `*name`, and so the `<<: *name` merge key) are refused
  wherever they appear: no course file needs them, and a value written out in full says
  the same thing;
- the text is refused unread above MAX_YAML_BYTES (256 KB: a course's settings or a
  lesson's front matter are a few hundred bytes; a whole lesson's Markdown body is not YAML
  and not counted).

`load` is PyYAML's safe loader with both rules; `load_round_trip` checks the same rules
and then reads with ruamel.yaml (the studio's edits that keep an author's comments).
"""

from __future__ import annotations

from typing import Any

import yaml
from ruamel.yaml import YAML

MAX_YAML_BYTES = 256 * 1024
ALIASES = "YAML anchors and aliases (&name, *name) are not allowed: write each value out in full"


class YamlRefused(yaml.YAMLError):
    """YAML drip will not read. `line` counts from 1 within the text given; `reason` is
    in words for an author."""

    def __init__(self, reason: str, line: int = 1) -> None:
        super().__init__(f"line {line}: {reason}")
        self.reason = reason
        self.line = line


def _refuse_anchor(event: yaml.Event) -> None:
    if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
        raise YamlRefused(ALIASES, event.start_mark.line + 1 if event.start_mark else 1)


class _Loader(yaml.SafeLoader):
    """The safe loader, refusing an anchor or alias before it composes the node."""

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        _refuse_anchor(self.peek_event())  # type: ignore[no-untyped-call]
        return super().compose_node(parent, index)


def _check_size(text: str) -> None:
    too_long = len(text) > MAX_YAML_BYTES  # characters: at least as many bytes, not encoded
    if too_long or len(text.encode("utf-8", "replace")) > MAX_YAML_BYTES:
        raise YamlRefused(
            f"the YAML is larger than {MAX_YAML_BYTES // 1024} KB, the most drip reads "
            "(front matter and settings take a few lines): it was not read"
        )


def load(text: str) -> Any:
    """The data of a YAML document (PyYAML's safe types), or YamlRefused (a yaml.YAMLError,
    as a syntax error is) when it is too large or holds an anchor or alias."""
    _check_size(text)
    loader = _Loader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def compose(text: str) -> yaml.Node | None:
    """The document's node tree (where each key is), under the same rules as `load`."""
    _check_size(text)
    loader = _Loader(text)
    try:
        return loader.get_single_node()
    finally:
        loader.dispose()


def load_round_trip(handler: YAML, text: str) -> Any:
    """ruamel.yaml's round-trip data (comments kept) under the same rules; raises
    YamlRefused or yaml.YAMLError before ruamel reads anything, or ruamel's own error."""
    _check_size(text)
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        _refuse_anchor(event)
    return handler.load(text)
