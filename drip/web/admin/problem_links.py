"""Where a course file's problem is, as the author finds it, and the admin page that fixes
it: the `where` filter and `fix_url` global of every admin template."""

from __future__ import annotations

from flask import url_for

from drip.content.loader import LESSON_FILE
from drip.content.sequence_file import SLUG
from drip.content.sequences import Problem
from drip.content.site import SITE_FILE
from drip.web.context import services


def where(problem: Problem) -> str:
    """Where a problem is, as the author finds it: the file within the sequences folder
    (never the server's whole path) and its line."""
    try:
        name = str(problem.path.relative_to(services().settings.sequences_dir))
    except ValueError:
        name = problem.path.name
    return "the sequences folder" if name == "." else f"{name}, line {problem.line}"


def fix_url(problem: Problem) -> str:
    """The page that fixes a problem of a course file ("" when no page edits that file)."""
    try:
        parts = problem.path.relative_to(services().settings.sequences_dir).parts
    except ValueError:
        return ""
    if parts == (SITE_FILE,):
        return url_for("admin.site.page")
    if len(parts) != 2 or not SLUG.match(parts[0]):
        return url_for("admin.studio.sequence", slug=parts[0]) if len(parts) == 1 else ""
    slug, name = parts
    lesson = LESSON_FILE.match(name)
    if name == "sequence.yaml":
        return url_for("admin.studio.settings.page", slug=slug)
    if name == "magnet.md":
        return url_for("admin.studio.magnet.page", slug=slug)
    if lesson:
        return url_for("admin.studio.lesson", slug=slug, name=lesson["key"])
    return url_for("admin.studio.sequence", slug=slug)
