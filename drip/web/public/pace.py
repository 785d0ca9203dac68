"""`/pace/<choice>/<token>`: the reader's pace in one course, behind the links of every
lesson's footer and of the preferences page.

The GET shows the choice with one button and changes nothing (mail scanners open every
link); the POST makes the choice through drip.audience.pace, or undoes it. The token names
the enrollment and where the link was (a lesson email or the preferences page), which goes
into the consent record; the choice is the path's.
"""

from __future__ import annotations

from datetime import date, datetime

from flask import Blueprint, abort, render_template, request
from flask.typing import ResponseReturnValue

from drip.audience import pace
from drip.audience.subscriptions import Consent
from drip.content.schedule import into_window
from drip.content.sequences import Sequence
from drip.mail.links import LinkError
from drip.store.models import Enrollment
from drip.web.context import db_session, services
from drip.web.public.lookups import client_ip, link_problem

bp = Blueprint("pace", __name__)

VIA = {"email": "lesson email", "preferences": "preferences page"}
TITLES = {
    pace.Choice.PAUSE: "Pause this course",
    pace.Choice.SLOWER: "Slower",
    pace.Choice.NOW: "The next lesson now",
    pace.Choice.AWAY: "I'm away",
}


@bp.app_template_global()
def pace_url(enrollment_id: int, choice: str) -> str:
    """A pace link for the preferences page (its consent record says so)."""
    return services().links.pace_url(enrollment_id, choice, via="preferences")


def _read(choice_name: str, token: str) -> tuple[Enrollment, pace.Choice, str] | LinkError:
    """The enrollment and where the link was, from the signed token; the choice from the
    path (any of them is the reader's to make)."""
    try:
        value = services().links.read_tracked("pace", token)
    except LinkError as error:
        return error
    if len(value) != 2 or not isinstance(value[0], int) or value[1] not in VIA:
        return LinkError("this link is broken")
    try:
        choice = pace.Choice(choice_name)
    except ValueError:
        return LinkError("this link is broken")
    enrollment = db_session().get(Enrollment, value[0])
    if enrollment is None:
        return LinkError("this link belongs to no subscription")
    return enrollment, choice, VIA[value[1]]


@bp.route("/pace/<choice>/<token>", methods=["GET", "POST"])
def choose(choice: str, token: str) -> ResponseReturnValue:
    """One choice's page: what it does, when the next lesson comes, the button, and undo."""
    found = _read(choice, token)
    if isinstance(found, LinkError):
        return link_problem(found, "pace")
    enrollment, choice, via = found
    svc = services()
    sequence = svc.content.library().get(enrollment.sequence)
    if sequence is None:
        abort(404)
    notice, status = None, 200
    if request.method == "POST":
        try:
            notice = _change(enrollment, sequence, choice, via, svc.clock())
        except pace.PaceError as error:
            db_session().rollback()
            notice, status = str(error), 400
        else:
            db_session().commit()
    return render_template(
        "public/pace.html", **_state(enrollment, sequence, choice, svc.clock()), notice=notice
    ), status


def _change(
    enrollment: Enrollment, sequence: Sequence, choice: pace.Choice, via: str, now: datetime
) -> str:
    session = db_session()
    how = Consent(via, "", client_ip(), request.headers.get("User-Agent", "")[:500])
    form = request.form
    if form.get("action") == "undo":
        change = pace.reset(session, sequence, enrollment, now, how)
    elif choice is pace.Choice.PAUSE:
        change = pace.pause(session, sequence, enrollment, now, form.get("length", ""), how)
    elif choice is pace.Choice.AWAY:
        try:
            until = date.fromisoformat(form.get("until", ""))
        except ValueError:
            raise pace.PaceError("choose the last day you are away (the date field)") from None
        change = pace.away(session, sequence, enrollment, now, until, how)
    elif choice is pace.Choice.SLOWER:
        change = pace.slower(session, sequence, enrollment, now, how)
    else:
        right_now = form.get("when") == "now"
        change = pace.next_now(session, sequence, enrollment, now, right_now, how)
    zone = pace.zone_of(enrollment, sequence)
    if change.due_at is None:
        return f"{change.said}. Come back to this page when you want the lessons again."
    return f"{change.said}. Your next lesson: {pace.when_local(change.due_at, zone)}."


def _state(
    enrollment: Enrollment, sequence: Sequence, choice: pace.Choice, now: datetime
) -> dict[str, object]:
    """What the page shows: the course, the reader's pace now, and the choice's details."""
    zone = pace.zone_of(enrollment, sequence)
    current = pace.pace_of(enrollment, now)
    opens = into_window(now, sequence.window, zone)
    return {
        "sequence": sequence,
        "choice": choice.value,
        "title": TITLES[choice],
        "running": enrollment.status == "active",
        "slower": current.slower,
        "held": current.held,
        "resumes": pace.when_local(current.resumes_at, zone) if current.resumes_at else None,
        "next": pace.when_local(enrollment.due_at, zone) if enrollment.due_at else None,
        "changed": current.slower or pace.paused_at(enrollment, now),
        "outside_window": opens > now,
        "window_opens": pace.when_local(opens, zone),
        "today": now.astimezone(zone).date().isoformat(),
        "lengths": pace.PAUSE_WORDS,
    }
