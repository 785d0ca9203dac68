"""The USMLE kit's study schedule: the article's rules turned into dates for one reader."""

from __future__ import annotations

from datetime import date

import pytest

from drip.content.study_plan import (
    SCHEDULE_MARKER,
    StudyPlan,
    months_before,
    plan_for,
    plan_from_attributes,
    replace_schedule,
    schedule_markdown,
)

TODAY = date(2026, 11, 23)


def spans(plan: StudyPlan) -> list[tuple[str, date, date]]:
    return [(phase.name, phase.start, phase.end) for phase in plan.phases]


def test_six_months_with_no_other_responsibility_end_with_a_review_week_and_a_day_off() -> None:
    plan = plan_from_attributes({"exam_date": "2027-06-15", "responsibilities": "0"}, TODAY)

    assert plan is not None and plan.months == 6 and not plan.compressed
    assert spans(plan) == [
        ("Theory: first read", date(2026, 12, 15), date(2027, 1, 17)),
        ("Theory: second read", date(2027, 1, 18), date(2027, 2, 7)),
        ("Question banks: subject-wise half", date(2027, 2, 8), date(2027, 4, 19)),
        ("Question banks: mixed half", date(2027, 4, 20), date(2027, 6, 7)),
        ("Last week", date(2027, 6, 8), date(2027, 6, 13)),
        ("Last day", date(2027, 6, 14), date(2027, 6, 14)),
    ]


def test_one_responsibility_gives_seven_months() -> None:
    plan = plan_from_attributes({"exam_date": "2027-09-01", "responsibilities": "1"}, TODAY)

    assert plan is not None and plan.months == 7
    assert plan.start == date(2027, 2, 1)
    assert spans(plan)[0] == ("Theory: first read", date(2027, 2, 1), date(2027, 3, 12))
    assert spans(plan)[2] == (
        "Question banks: subject-wise half",
        date(2027, 4, 6),
        date(2027, 6, 27),
    )
    assert plan.phases[-1].start == date(2027, 8, 31)


@pytest.mark.parametrize("answer", ["2", "2+"])
def test_two_or_more_responsibilities_take_the_top_of_the_eight_to_nine_month_range(
    answer: str,
) -> None:
    plan = plan_from_attributes({"exam_date": "2027-10-31", "responsibilities": answer}, TODAY)

    assert plan is not None and plan.months == 9
    assert plan.start == date(2027, 1, 31)
    assert spans(plan)[3] == ("Question banks: mixed half", date(2027, 8, 9), date(2027, 10, 23))


@pytest.mark.parametrize(
    ("exam", "answer"),
    [
        (date(2027, 6, 15), 0),
        (date(2027, 9, 1), 1),
        (date(2027, 10, 31), 2),
        (date(2028, 3, 31), 1),
        (date(2027, 7, 1), None),
    ],
)
def test_every_plan_follows_the_rules(exam: date, answer: int | None) -> None:
    plan = plan_for(exam, answer, TODAY)
    first, second, subject, mixed, last, off = plan.phases

    assert plan.start == months_before(exam, {None: 6, 0: 6, 1: 7, 2: 9}[answer])
    for before, after in zip(plan.phases, plan.phases[1:], strict=False):
        assert (after.start - before.end).days == 1  # no gap, no overlap
    assert off.start == off.end == date.fromordinal(exam.toordinal() - 1)
    assert last.days == 6
    theory = first.days + second.days
    assert abs(theory / plan.days - 0.30) < 0.01
    assert second.days < first.days  # the second read is quicker
    assert mixed.days < subject.days  # the mixed half takes less time
    assert sum(phase.days for phase in plan.phases) == plan.days


def test_an_exam_too_close_for_the_full_plan_compresses_every_phase_from_today() -> None:
    plan = plan_for(date(2027, 2, 1), 1, TODAY)

    assert plan.compressed and plan.full_start == date(2026, 7, 1)
    assert plan.start == TODAY and plan.days == 70
    assert [phase.days for phase in plan.phases] == [13, 8, 25, 17, 6, 1]
    text = schedule_markdown(plan)
    assert "Your plan is shortened" in text and "Wed 1 Jul 2026" in text
    assert plan.earliest_full_exam == date(2027, 6, 23)  # seven months from today
    assert "warns against giving an exam too little time" in text
    assert "think about moving it to Wed 23 Jun 2027 or later" in text


def test_a_plan_with_its_full_months_carries_no_warning() -> None:
    plan = plan_for(date(2027, 6, 23), 1, TODAY)

    assert not plan.compressed and plan.start == TODAY
    assert "too little time" not in schedule_markdown(plan)


def test_under_two_weeks_left_the_warning_is_there_too() -> None:
    text = schedule_markdown(plan_for(date(2026, 12, 1), 0, TODAY))

    assert "only room for your marked questions" in text
    assert "think about moving it to Sun 23 May 2027 or later" in text


def test_under_two_weeks_left_only_the_review_and_the_day_off_remain() -> None:
    plan = plan_for(date(2026, 12, 1), 0, TODAY)

    assert spans(plan) == [
        ("Marked questions and highlights", TODAY, date(2026, 11, 29)),
        ("Last day", date(2026, 11, 30), date(2026, 11, 30)),
    ]


@pytest.mark.parametrize(
    "attributes",
    [
        {},
        {"responsibilities": "1"},
        {"exam_date": "not a date"},
        {"exam_date": "2026-11-23"},
        {"exam_date": "2025-01-01", "responsibilities": "0"},
    ],
)
def test_no_plan_without_a_future_exam_date(attributes: dict[str, str]) -> None:
    assert plan_from_attributes(attributes, TODAY) is None


def test_months_before_keeps_the_day_or_falls_back_to_the_months_last_day() -> None:
    assert months_before(date(2027, 10, 31), 9) == date(2027, 1, 31)
    assert months_before(date(2027, 8, 31), 6) == date(2027, 2, 28)
    assert months_before(date(2027, 3, 15), 7) == date(2026, 8, 15)


def test_the_computed_table_replaces_only_the_template_table() -> None:
    source = (
        f"## Your study schedule\n\n{SCHEDULE_MARKER}\n\n| A | B |\n| --- | --- |\n"
        "| template | row |\n\n**How the lengths are set.** Kept.\n"
    )
    plan = plan_for(date(2027, 6, 15), 0, TODAY)

    result = replace_schedule(source, schedule_markdown(plan))

    assert "template" not in result
    assert "| Theory: first read | Tue 15 Dec 2026 – Sun 17 Jan 2027 |" in result.replace(
        "\u00a0", " "
    )
    assert result.endswith("\n**How the lengths are set.** Kept.\n")
    assert result.startswith(f"## Your study schedule\n\n{SCHEDULE_MARKER}\n\n**Your exam: ")
