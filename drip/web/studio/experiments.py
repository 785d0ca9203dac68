"""`/admin/sequences/<slug>/lessons/<name>/experiment`: a lesson's variants side by side
(readers, goals, the probability that each is the best, the rule to call it) and the one
button that promotes the winner (drip.studio.promote). Nested in the admin blueprint, so
its login check and roles apply; the sequence page links here for each lesson under test."""

from __future__ import annotations

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from drip.content.sequences import Lesson, Sequence
from drip.ops.experiments import STOPPING_RULE, Experiment, experiment
from drip.store.models import Role
from drip.studio.lesson_format import lesson_file
from drip.studio.outcomes import Refused, Saved, StudioError, read
from drip.studio.promote import Promoter
from drip.web.admin.access import audit, requires
from drip.web.context import db_session, services

bp = Blueprint("experiments", __name__, url_prefix="/sequences")


def _under_test(slug: str, name: str) -> tuple[Sequence, Lesson]:
    sequence = services().content.library().get(slug)
    lesson = sequence.lesson(name) if sequence is not None else None
    if sequence is None or lesson is None:
        abort(404)
    return sequence, lesson


@bp.app_template_global("experiment_of")
def experiment_of(sequence: Sequence, lesson: Lesson) -> Experiment | None:
    """The figures of a lesson under test, for the sequence page (None: no variants)."""
    return experiment(db_session(), sequence, lesson) if lesson.variants else None


@bp.app_template_filter("chance")
def chance(value: float) -> str:
    """A probability as a percentage that never claims certainty the figures do not have."""
    if value > 0.999:
        return "over 99.9%"
    return "under 0.1%" if value < 0.001 else f"{value:.1%}"


@bp.app_template_global("stopping_rule")
def stopping_rule() -> str:
    return STOPPING_RULE


@bp.get("/<slug>/lessons/<name>/experiment")
def page(slug: str, name: str) -> ResponseReturnValue:
    """Each variant's readers and goals, the chance it is best, and the rule beside them."""
    sequence, lesson = _under_test(slug, name)
    found = experiment(db_session(), sequence, lesson) if lesson.variants else None
    path = lesson_file(sequence.path, lesson.key)
    return render_template(
        "admin/experiment.html",
        slug=slug,
        sequence=sequence,
        lesson=lesson,
        experiment=found,
        rule=STOPPING_RULE,
        version=read(path.path).version if path is not None else "",
    )


@bp.post("/<slug>/lessons/<name>/experiment/promote")
@requires(Role.editor)
def promote(slug: str, name: str) -> ResponseReturnValue:
    """The author's choice of winner written into the lesson's file, as a commit."""
    winner = request.form.get("variant", "")
    promoter = Promoter(services().settings, services().links)
    back = url_for(".page", slug=slug, name=name)
    try:
        outcome = promoter.promote(
            slug,
            name,
            winner,
            request.form.get("version", ""),
            g.operator.email,
            services().clock(),
        )
    except StudioError as error:
        flash(str(error), "error")
        return redirect(back)
    if isinstance(outcome, Saved):
        audit(
            "promote variant", f"{slug}/{name}:{winner}", before=outcome.before, after=outcome.after
        )
        db_session().commit()
        kept = " Its History keeps the experiment." if outcome.commit else ""
        git = f" (saved, but its history could not be kept: {outcome.git_error})" * bool(
            outcome.git_error
        )
        flash(f"Variant {winner} is now the lesson for every reader to come.{kept}{git}", "ok")
        return redirect(url_for("admin.studio.sequence", slug=slug))
    if isinstance(outcome, Refused):
        flash(
            "Not done, nothing changed: "
            + "; ".join(f"{p.path.name}, line {p.line}: {p.message}" for p in outcome.errors),
            "error",
        )
    else:
        flash(
            "Not done, nothing changed: the lesson changed on disk meanwhile; look again.", "error"
        )
    return redirect(back)
