"""Promoting the winner of a lesson's experiment: the author's one button, never drip's own
decision (drip.ops.experiments only shows the figures and the rule).

The lesson file is rewritten as the winner: its subject and preheader become the lesson's
own, its body too when it came from `NN-name.b.md`, and `variants:` and `goal:` go; the
variant files are removed. The change goes the studio's way (drip.studio.save_path): checked
as `drip check` would, refused over a newer file on disk, written atomically, and a git
commit by the operator. Readers who already had the lesson keep their delivery and its
recorded variant; everyone after gets the winner.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from drip.content.loader import load_sequence
from drip.content.variants import arms
from drip.studio.lesson_format import lesson_file, with_front_matter
from drip.studio.outcomes import Outcome, Saved, StudioError, read
from drip.studio.save_path import CourseFolder


class Promoter(CourseFolder):
    """Writes the winning variant of a lesson into its file."""

    def promote(
        self, slug: str, key: str, winner: str, version: str, operator: str, now: datetime
    ) -> Outcome:
        """Make variant `winner` (a, b or c) lesson `key`'s own, if the file is still the
        `version` the page showed."""
        folder = self.folder(slug)
        found = lesson_file(folder, key)
        if found is None:
            raise StudioError(f"there is no lesson {key!r} in {slug}")
        sequence, _ = load_sequence(folder)
        lesson = sequence.lesson(key) if sequence is not None else None
        if lesson is None or not lesson.variants:
            raise StudioError(
                f"lesson {key!r} has no variants to choose from (any more): reload the page"
            )
        chosen = next((arm for arm in arms(lesson) if arm.variant == winner), None)
        if chosen is None:
            raise StudioError(f"lesson {key!r} has no variant {winner!r}")
        document = read(found.path)
        text = with_front_matter(
            document.text,
            {
                "subject": chosen.subject,
                "preheader": chosen.preheader,
                "variants": None,
                "goal": None,
            },
            chosen.body,
        )
        gone = [v.path for v in lesson.variants if v.path is not None]
        changes: dict[str, bytes | None] = {found.path.name: text.encode("utf-8")}
        changes.update({path.name: None for path in gone})
        outcome = self._apply(folder, changes, [], {found.path.name: version}, now)
        if not isinstance(outcome, Saved):
            return outcome
        saved = replace(outcome, path=found.path, before=document.text, after=text)
        message = f"Promote variant {winner} of {slug}/{found.path.name}: {chosen.subject}"
        return self._commit(saved, folder, [found.path, *gone], message, operator)
