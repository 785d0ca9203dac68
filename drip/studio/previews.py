"""Previews of the editor's unsaved text: a lesson rendered for the sample reader, a test
send through the real transport, and the author as readers would see them with an unsaved
site.yaml.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from drip.content.loader import load_sequence
from drip.content.sequences import Problem, Sequence
from drip.content.site import load_site
from drip.mail.links import sample_links
from drip.mail.render import SAMPLE_READER, LayoutError, Renderer
from drip.mail.transports import Transport
from drip.studio.lesson_format import lesson_fields
from drip.studio.outcomes import Refused, version_of
from drip.studio.samples import send_test
from drip.studio.save_path import CourseFolder, folder_files


@dataclass(frozen=True)
class Preview:
    """A lesson as the sample reader gets it, from the editor's unsaved text, and what
    `drip check` says of the sequence with that text in it."""

    subject: str
    html: str
    text: str
    problems: list[Problem]


@dataclass(frozen=True)
class TestSent:
    message_id: str
    to: str


@dataclass(frozen=True)
class SitePreview:
    """How readers would see the author with the unsaved site.yaml: a sequence as it would
    load (its sign-up page's author box) and its first lesson, signed, as the sample reader
    gets it."""

    sequence: Sequence | None
    lesson: Preview | None


class Previewing(CourseFolder):
    """The studio's previews and test sends: nothing here writes a course file."""

    def preview(self, path: Path, text: str, renderer: Renderer, now: datetime) -> Preview:
        """Render `text` as the lesson at `path` for the sample reader (links that lead to
        the preview page), with the Renderer that sends. A variable the check refuses is
        shown as written, so the author sees where it is."""
        folder = path.parent
        checked = self.check(folder, {path.name: text.encode("utf-8")}, now, typeset=False)
        sequence = checked.sequence
        if sequence is None:
            return Preview("", "", "", checked.problems)
        fields = lesson_fields(text)
        try:
            template = renderer.message(
                sequence,
                path.stem.split("-", 1)[-1],
                version_of(text.encode()),
                fields.subject,
                fields.preheader,
                fields.body,
                track=True,
            )
        except LayoutError as error:  # the author sees why there is no preview
            return Preview("", "", "", [*checked.problems, Problem(path, 1, str(error))])
        extra: dict[str, str] = {}
        for _ in range(len(template.tokens) + 1):
            try:
                subject, html, plain = template.parts(
                    SAMPLE_READER, sample_links(self.links), extra
                )
            except KeyError as error:  # a variable drip does not know
                name = str(error.args[0])
                extra[name] = f"{{{{ {name.split(':')[0]} }}}}"
                continue
            return Preview(subject, html, plain, checked.problems)
        return Preview("", "", "", checked.problems)

    def send_test(
        self,
        path: Path,
        text: str,
        to: str,
        transport: Callable[[], Transport],
        now: datetime,
    ) -> TestSent | Refused:
        """Send `text` as the lesson at `path`, unsaved, through the real transport to `to`,
        marked [TEST], its links leading to the test page (drip.studio.samples); refused while the
        check finds an error in it, since a broken lesson could not be sent for real."""
        folder = path.parent
        files = {**folder_files(folder), path.name: text.encode("utf-8")}
        with self._candidate(folder, files) as copy:
            sequence, problems = load_sequence(copy, self._site())
            key = path.stem.split("-", 1)[-1]
            lesson = sequence.lesson(key) if sequence is not None else None
            if sequence is None or lesson is None:
                return Refused([self._real(p, copy, folder) for p in problems])
            mid = send_test(Renderer(self.settings), self.links, transport, sequence, key, to, now)
        return TestSent(mid, to)

    def site_preview(self, text: str, renderer: Renderer) -> SitePreview:
        """The first sequence as it would load inheriting `text`, and its first lesson as
        the sample reader would get it (the signature under it), rendered as it is sent."""
        site, problems = load_site(self.root, self.settings.author_name, text=text)
        if any(p.severity == "error" for p in problems):
            return SitePreview(None, None)
        for folder in self.sequence_folders():
            sequence, _ = load_sequence(folder, site)
            if sequence is None or not sequence.lessons:
                continue
            template = renderer.lesson(sequence, sequence.lessons[0])
            try:
                subject, html, plain = template.parts(SAMPLE_READER, sample_links(self.links))
            except KeyError:  # a lesson with a variable drip does not know: no lesson shown
                return SitePreview(sequence, None)
            return SitePreview(sequence, Preview(subject, html, plain, []))
        return SitePreview(None, None)
