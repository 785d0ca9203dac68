"""Segments: each field of a definition selects exactly the readers it says, on SQLite and
PostgreSQL, by one query the database answers with its indexes; a wrong definition says
which field is wrong; broadcasts and exports take a segment by name."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, insert, select, text, update

from drip.audience.segments import SegmentError, compile_segment, members, parse, save
from drip.audience.subscriptions import Consent, subscribe
from drip.audience.tags import add_tags
from drip.cli import cli
from drip.core.clock import FrozenClock
from drip.dispatch.broadcasts import BroadcastError, audience_count, parse_broadcast, schedule
from drip.services import Services, build_services
from drip.store.models import (
    BroadcastRecipient,
    Delivery,
    DeliveryStatus,
    Enrollment,
    EnrollmentStatus,
    LinkClick,
    Subscriber,
    SubscriberTag,
)
from tests.bulk import add_due_readers
from tests.conftest import courses_beside_tiny, make_settings

OTHER = """title: "Other course"
promise: "A second course."
sender: "Tiny Author <author@example.org>"
timezone: UTC
send_window: {start: "00:00", end: "23:59"}
"""


@pytest.fixture
def courses(tmp_path: Path) -> Path:
    return courses_beside_tiny(
        tmp_path,
        {
            "other": {
                "sequence.yaml": OTHER,
                "01-hi.md": '---\nsubject: "Other: hi"\ndelay: 0\n---\nHi.\n',
            }
        },
    )


@pytest.fixture
def svc(tmp_path: Path, backend_url: str, clock: FrozenClock, courses: Path) -> Iterator[Services]:
    services = build_services(make_settings(tmp_path, backend_url, sequences_dir=courses), clock)
    yield services
    services.engine.dispose()


def reader(
    svc: Services,
    email: str,
    slug: str = "tiny",
    *,
    confirmed: bool = True,
    answers: dict[str, Any] | None = None,
    tags: tuple[str, ...] = (),
) -> int:
    """A reader signed up to `slug` with these sign-up answers and tags; their id."""
    with svc.sessions() as session:
        enrollment = subscribe(
            session,
            svc.content.library(),
            slug,
            email,
            svc.clock(),
            consent=Consent(source="test", text="yes"),
            confirmed=confirmed,
            attributes=answers,
        )
        session.flush()
        subscriber = session.get(Subscriber, enrollment.subscriber_id)
        assert subscriber is not None
        if tags:
            add_tags(session, subscriber, list(tags), svc.clock(), "test")
        session.commit()
        return subscriber.id


@pytest.fixture
def readers(svc: Services, clock: FrozenClock) -> dict[str, int]:
    """Five readers, each different in every field a segment can ask about."""
    ids = {
        "ada": reader(
            svc,
            "ada@example.org",
            answers={"exam_date": "2026-05-10", "responsibilities": "0"},
            tags=("has-dates", "img"),
        ),
        "bo": reader(
            svc,
            "bo@example.org",
            answers={"exam_date": "2026-10-01", "responsibilities": "2+"},
            tags=("img",),
        ),
        "cy": reader(svc, "cy@example.org", "other", answers={"responsibilities": "1"}),
        "di": reader(svc, "di@example.org", confirmed=False, tags=("booked-a-call",)),
        "ed": reader(svc, "ed@example.org", answers={"exam_date": "2026-08-20"}),
    }
    now = clock()
    with svc.sessions() as session:
        session.execute(
            update(Enrollment)
            .where(Enrollment.subscriber_id == ids["bo"])
            .values(status=EnrollmentStatus.COMPLETED)
        )
        enrollment_of = {
            row.subscriber_id: row.id
            for row in session.execute(select(Enrollment.subscriber_id, Enrollment.id))
        }
        lessons = [("ada", 2), ("ed", 2), ("bo", 40)]  # got their last lesson so many days ago
        session.execute(
            insert(Delivery),
            [
                {
                    "enrollment_id": enrollment_of[ids[who]],
                    "lesson": "welcome",
                    "lesson_version": "v1",
                    "status": DeliveryStatus.SENT,
                    "attempts": 1,
                    "message_id": f"<{who}@drip.test>",
                    "created_at": now - timedelta(days=days),
                    "updated_at": now - timedelta(days=days),
                    "sent_at": now - timedelta(days=days),
                }
                for who, days in lessons
            ],
        )
        clicks = [
            ("ada", 3, True),  # a reader's click three days ago
            ("bo", 20, True),  # twenty days ago
            ("ed", 1, False),  # a mail scanner's fetch: not a click
        ]
        session.execute(
            insert(LinkClick),
            [
                {
                    "enrollment_id": enrollment_of[ids[who]],
                    "sequence": "tiny",
                    "lesson": "welcome",
                    "link_index": 0,
                    "url": "https://example.org/",
                    "at": now - timedelta(days=days),
                    "counted": counted,
                }
                for who, days, counted in clicks
            ],
        )
        session.commit()
    return ids


CASES = [
    ({}, {"ada", "bo", "cy", "di", "ed"}),
    ({"sequences": ["other"]}, {"cy"}),
    ({"status": ["completed"]}, {"bo"}),
    ({"sequences": ["tiny"], "status": ["active"]}, {"ada", "ed"}),
    ({"status": ["pending"]}, {"di"}),
    ({"tags": ["img"]}, {"ada", "bo"}),
    ({"tags": ["has-dates", "booked-a-call"]}, {"ada", "di"}),
    ({"without_tags": ["img"]}, {"cy", "di", "ed"}),
    ({"exam_before": "2026-09-01"}, {"ada", "ed"}),
    ({"exam_after": "2026-06-01"}, {"bo", "ed"}),
    ({"exam_after": "2026-06-01", "exam_before": "2026-09-01"}, {"ed"}),
    ({"responsibilities": ["1", "2+"]}, {"bo", "cy"}),
    ({"clicked_within_days": 7}, {"ada"}),
    ({"clicked_within_days": 30}, {"ada", "bo"}),
    ({"no_click_within_days": 7}, {"bo", "cy", "di", "ed"}),
    ({"lesson_within_days": 7}, {"ada", "ed"}),
    ({"no_lesson_within_days": 30}, {"bo", "cy", "di"}),
    ({"tags": ["img"], "exam_before": "2026-09-01", "lesson_within_days": 7}, {"ada"}),
]


@pytest.mark.parametrize(("definition", "expected"), CASES, ids=[json.dumps(c[0]) for c in CASES])
def test_each_field_selects_exactly_its_readers(
    svc: Services,
    readers: dict[str, int],
    clock: FrozenClock,
    definition: dict[str, Any],
    expected: set[str],
) -> None:
    names = {v: k for k, v in readers.items()}
    with svc.sessions() as session:
        query = compile_segment(parse(definition), session.get_bind().dialect.name, clock())
        got = {names[i] for i in session.scalars(query)}
        found = members(session, parse(definition), clock())
    assert got == expected
    assert found.count == len(expected)
    assert found.first == sorted(f"{n}@example.org" for n in expected)[:5]


def test_a_wrong_definition_names_each_wrong_field() -> None:
    with pytest.raises(SegmentError) as error:
        parse(
            {
                "tags": ["Not A Tag!"],
                "status": ["asleep"],
                "exam_before": "next week",
                "clicked_within_days": 0,
                "colour": "blue",
                "sequences": ["nope"],
            },
            frozenset({"tiny"}),
        )
    problems = error.value.problems
    assert any(p.startswith("colour: not a segment field") for p in problems)
    assert any(p.startswith("tags: 'Not A Tag!' is not a tag") for p in problems)
    assert any(p.startswith("status: 'asleep' is not a status") for p in problems)
    assert "exam_before: 'next week' is not a day such as 2026-09-15" in problems
    assert any(p.startswith("clicked_within_days: a whole number of days") for p in problems)
    assert "sequences: no sequence 'nope' (known: tiny)" in problems
    with pytest.raises(SegmentError, match="exam_after: must be before exam_before"):
        parse({"exam_after": "2026-09-01", "exam_before": "2026-06-01"})


def plan(svc: Services, sql: str) -> str:
    with svc.engine.connect() as conn:
        prefix = "EXPLAIN QUERY PLAN " if conn.dialect.name == "sqlite" else "EXPLAIN "
        rows = conn.execute(text(prefix + sql)).all()
    return "\n".join(" ".join(str(cell) for cell in row) for row in rows)


def test_the_database_answers_the_tag_and_exam_filters_from_their_indexes(
    svc: Services, clock: FrozenClock
) -> None:
    """Three thousand readers, three with a rare tag and a few with an exam in a narrow
    range: the plan for each filter reads the index, not every reader."""
    now = clock()
    add_due_readers(svc.engine, 3000, now)
    with svc.engine.begin() as conn:
        ids = list(conn.scalars(select(Subscriber.id).order_by(Subscriber.id)))
        conn.execute(
            insert(SubscriberTag),
            [
                {"subscriber_id": i, "tag": f"t{n % 50}" if n >= 3 else "rare", "created_at": now}
                for n, i in enumerate(ids)
            ],
        )
        for n, i in enumerate(ids):
            day = f"2026-{1 + n % 12:02d}-{1 + n % 28:02d}"
            conn.execute(
                update(Subscriber).where(Subscriber.id == i).values(attributes={"exam_date": day})
            )
        conn.execute(text("ANALYZE"))
    dialect = svc.engine.dialect.name

    def sql(definition: dict[str, Any]) -> str:
        query = compile_segment(parse(definition), dialect, clock())
        return str(query.compile(svc.engine, compile_kwargs={"literal_binds": True}))

    tag_plan = plan(svc, sql({"tags": ["rare"]}))
    exam_plan = plan(svc, sql({"exam_after": "2026-03-03", "exam_before": "2026-03-05"}))
    with svc.sessions() as session:
        rare = members(session, parse({"tags": ["rare"]}), clock())
    assert rare.count == 3
    assert "ix_subscriber_tags_tag" in tag_plan, tag_plan
    assert "ix_subscribers_exam_date" in exam_plan, exam_plan
    if dialect == "postgresql":
        assert "Seq Scan on subscriber_tags" not in tag_plan, tag_plan


def test_a_broadcast_to_a_segment_reaches_only_its_eligible_readers(
    svc: Services, readers: dict[str, int], clock: FrozenClock, tmp_path: Path
) -> None:
    library = svc.content.library()
    with svc.sessions() as session:
        save(session, "img-readers", {"tags": ["img"]}, clock(), "test")
        save(session, "exam-soon", {"exam_before": "2026-09-01"}, clock(), "test")
        session.commit()
    narrowed = parse_broadcast(
        '---\nsubject: "Hi"\nto: tiny\nsegment: img-readers\n---\nHello.\n',
        tmp_path / "narrowed.md",
        library,
    )
    everyone = parse_broadcast(
        '---\nsubject: "Hi"\nsegment: exam-soon\nreaders: active\n---\nHello.\n',
        tmp_path / "everyone.md",
        library,
    )
    unknown = parse_broadcast(
        '---\nsubject: "Hi"\nsegment: nobody\n---\nHello.\n', tmp_path / "unknown.md", library
    )
    with svc.sessions() as session:
        assert audience_count(session, narrowed, clock()) == (
            2,
            ["ada@example.org", "bo@example.org"],
        )
        assert audience_count(session, everyone, clock()) == (
            2,
            ["ada@example.org", "ed@example.org"],
        )
        with pytest.raises(BroadcastError, match="no segment named 'nobody'"):
            audience_count(session, unknown, clock())
        sent = schedule(session, library, everyone, clock(), clock())
        got = session.scalars(
            select(BroadcastRecipient.subscriber_id).where(
                BroadcastRecipient.broadcast_id == sent.id
            )
        ).all()
    assert sorted(got) == sorted([readers["ada"], readers["ed"]])


def drip(svc: Services, *args: str) -> Result:
    env = {
        "DRIP_DATABASE_URL": svc.settings.resolved_database_url,
        "DRIP_DATA_DIR": str(svc.settings.data_dir),
        "DRIP_SECRET_KEY": "k",
        "DRIP_SEQUENCES_DIR": str(svc.settings.sequences_dir),
    }
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def test_the_segment_commands_create_list_show_and_export_a_segment(
    svc: Services, readers: dict[str, int], tmp_path: Path
) -> None:
    made = drip(svc, "segment", "create", "img-soon", "--tag", "img", "--exam-before", "2026-09-01")
    wrong = drip(svc, "segment", "create", "bad", "--status", "asleep", "--exam-after", "soon")
    listed = drip(svc, "segment", "list")
    shown = drip(svc, "segment", "show", "img-soon")
    exported = drip(svc, "export", "--segment", "img-soon")
    missing = drip(svc, "export", "--segment", "nope")
    news = tmp_path / "news.md"
    news.write_text('---\nsubject: "Hi"\nsegment: img-soon\n---\nHello.\n')
    dry_run = drip(svc, "broadcast", "send", str(news), "--dry-run")

    assert made.exit_code == 0 and "segment img-soon: 1 readers now" in made.output
    assert wrong.exit_code == 1
    assert "status: 'asleep' is not a status" in wrong.output
    assert "exam_after: 'soon' is not a day" in wrong.output
    assert "img-soon: 1 readers (exam_before: 2026-09-01; tags: img)" in listed.output
    assert "1 readers, e.g. ada@example.org" in shown.output
    lines = exported.output.splitlines()
    assert lines[0].startswith("email,") and [line.split(",")[0] for line in lines[1:]] == [
        "ada@example.org"
    ]
    assert missing.exit_code == 1 and "no segment named 'nope' (known: img-soon)" in missing.output
    assert dry_run.output.strip() == "news: 1 readers would get it, e.g. ada@example.org"
    with svc.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Subscriber)) == 5
