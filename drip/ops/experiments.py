"""What an experiment on a lesson shows its author: each variant's readers, how many of them
reached the goal, and the probability that each variant is the best.

The probability is the Beta-binomial posterior with a uniform prior: a variant whose `n`
readers brought `k` goals has a rate distributed Beta(1 + k, 1 + n - k). With two variants
P(b beats a) is the exact finite sum for integer parameters (Evan Miller's formula); with
three it is a Monte Carlo of the posteriors from a fixed seed, so a page shows the same
figure every time it is drawn for the same counts. No numpy: the standard library's
`math.lgamma` and `random.Random.betavariate` suffice.

The rule to call it (STOPPING_RULE) is shown beside the figures: best with 99% and at
least 100 readers each. 95% called one A/A test in ten at a single look (2 of 20 seeded runs
of 400 readers); 99% calls none of those 20, about 1 in 75 at one look and 1 in 25 looking
after every 50 readers, and still calls a doubled rate (30% against 15%) in 18 of 20 runs
at 400 readers and 20 of 20 at 800 (tests/ops/test_experiments.py). drip never promotes a
variant on its own, the author does (drip.studio.promote).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import cast

from sqlalchemy import ColumnElement, Table, and_, exists, false, func, select
from sqlalchemy.orm import Session

from drip.content.sequences import Lesson, Sequence
from drip.content.variants import arms
from drip.store.models import (
    Delivery,
    DeliveryStatus,
    Enrollment,
    LinkClick,
    Reply,
    SubscriberTag,
)

D = cast(Table, Delivery.__table__)
E = cast(Table, Enrollment.__table__)
CONFIDENCE = 0.99  # the probability of being best that calls an experiment
MIN_READERS = 100  # each variant's readers before it is called at all
DRAWS = 20_000  # Monte Carlo draws for three variants (the figure moves < 1 point)
SEED = 20261206
STOPPING_RULE = (
    f"Call it when one variant is best with {CONFIDENCE:.0%} probability and each has at "
    f"least {MIN_READERS} readers. Not 95%: between two equal variants luck alone reaches "
    "95% about one time in ten, 99% about one time in a hundred. Look as often as you like: "
    "the chance shown is always what the readers so far say, and the strict threshold keeps "
    "a lucky streak rare."
)
OPEN = -1  # LinkClick.link_index of an open, which is never a goal


@dataclass(frozen=True)
class Arm:
    """One variant's figures: who got it, how many reached the goal, P(it is the best)."""

    name: str
    subject: str
    readers: int
    goals: int
    best: float

    @property
    def rate(self) -> float:
        return self.goals / self.readers if self.readers else 0.0


@dataclass(frozen=True)
class Experiment:
    sequence: str
    lesson: Lesson
    arms: tuple[Arm, ...]
    winner: str | None  # the variant the stopping rule calls, if it calls one


def experiment(session: Session, sequence: Sequence, lesson: Lesson) -> Experiment:
    """The figures of `lesson`'s variants as the database has them now."""
    counts = goal_counts(session, sequence, lesson)
    choices = arms(lesson)
    pairs = [counts.get(arm.variant, (0, 0)) for arm in choices]
    best = probability_best(pairs)
    figures = tuple(
        Arm(arm.variant, arm.subject, readers, goals, chance)
        for arm, (readers, goals), chance in zip(choices, pairs, best, strict=True)
    )
    return Experiment(sequence.slug, lesson, figures, called(figures))


def called(figures: tuple[Arm, ...]) -> str | None:
    """The variant STOPPING_RULE calls: best with CONFIDENCE and every variant with at
    least MIN_READERS readers; None while it does not."""
    if len(figures) < 2 or any(arm.readers < MIN_READERS for arm in figures):
        return None
    top = max(figures, key=lambda arm: arm.best)
    return top.name if top.best >= CONFIDENCE else None


def goal_counts(session: Session, sequence: Sequence, lesson: Lesson) -> dict[str, tuple[int, int]]:
    """variant -> (readers who were sent it, those of them who reached the goal)."""
    reached = _goal_reached(sequence, lesson)
    rows = session.execute(
        select(D.c.variant, func.count(), func.count().filter(reached))
        .select_from(D.join(E, E.c.id == D.c.enrollment_id))
        .where(
            E.c.sequence == sequence.slug,
            D.c.lesson == lesson.key,
            D.c.status == DeliveryStatus.SENT,
            D.c.variant.is_not(None),
        )
        .group_by(D.c.variant)
    )
    return {variant: (int(readers), int(goals)) for variant, readers, goals in rows}


def _goal_reached(sequence: Sequence, lesson: Lesson) -> ColumnElement[bool]:
    """The condition, on a delivery row, that its reader reached the lesson's goal."""
    goal = lesson.goal
    if goal is None:
        return false()
    if goal.kind == "reply":  # a reply drip matched to this reader's copy of the lesson
        return exists().where(
            Reply.enrollment_id == D.c.enrollment_id,
            Reply.lesson == D.c.lesson,
            Reply.matched.is_(True),
        )
    if goal.kind == "click":  # a reader's click (not a scanner's, not an open) in this lesson
        return exists().where(
            LinkClick.enrollment_id == D.c.enrollment_id,
            LinkClick.lesson == D.c.lesson,
            LinkClick.link_index != OPEN,
            LinkClick.counted.is_(True),
        )
    if goal.kind == "tag":  # the tag came after this lesson went out
        return exists().where(
            SubscriberTag.subscriber_id == E.c.subscriber_id,
            SubscriberTag.tag == goal.tag,
            SubscriberTag.created_at > D.c.sent_at,
        )
    keys = [each.key for each in sequence.lessons]
    after = keys.index(lesson.key) + 1 if lesson.key in keys else len(keys)
    following = keys[after] if after < len(keys) else ""
    later = D.alias("later")  # next-lesson-kept: still there to be sent the next lesson
    return exists().where(
        and_(
            later.c.enrollment_id == D.c.enrollment_id,
            later.c.lesson == following,
            later.c.status == DeliveryStatus.SENT,
        )
    )


def probability_best(pairs: list[tuple[int, int]], seed: int = SEED) -> list[float]:
    """For each (readers, goals), the posterior probability that its rate is the highest
    (uniform prior): exact for two, a seeded Monte Carlo of DRAWS for more."""
    if len(pairs) < 2:
        return [1.0] * len(pairs)
    params = [(1 + goals, 1 + readers - goals) for readers, goals in pairs]
    if len(params) == 2:
        b_wins = beta_beats(params[1], params[0])
        return [1 - b_wins, b_wins]
    rng = random.Random(seed)
    wins = [0] * len(params)
    for _ in range(DRAWS):
        draws = [rng.betavariate(a, b) for a, b in params]
        wins[draws.index(max(draws))] += 1
    return [count / DRAWS for count in wins]


def beta_beats(first: tuple[int, int], second: tuple[int, int]) -> float:
    """P(X > Y) for X ~ Beta(first), Y ~ Beta(second), integer parameters: the finite sum
    P = sum_{i<a1} B(a2 + i, b1 + b2) / ((b1 + i) B(1 + i, b1) B(a2, b2))."""
    a1, b1 = first
    a2, b2 = second
    total = 0.0
    for i in range(a1):
        total += math.exp(
            _log_beta(a2 + i, b1 + b2) - math.log(b1 + i) - _log_beta(1 + i, b1) - _log_beta(a2, b2)
        )
    return min(1.0, max(0.0, total))


def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
