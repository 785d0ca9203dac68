"""`GET /metrics`: Prometheus text format, read from the database at scrape time.

With `DRIP_METRICS_TOKEN` set, a scrape must carry `Authorization: Bearer <token>` and gets
every count (deliveries by status, enrollments by sequence and status). Without a token,
anyone may scrape, so it shows only what no sign-up can move: the age of the last pass,
whether the scheduler is alive, the number of guardrail problems, whether a bounce or
complaint guardrail paused sending. (A pending count that
moves for a new address and not for a known one would tell a stranger who is subscribed.)

Each application gets its own CollectorRegistry (not prometheus-client's global one), so
several apps in one process (tests) never share or double-register collectors.
"""

from __future__ import annotations

import hmac
from collections import Counter
from collections.abc import Iterator

from flask import Flask, Response, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session

from drip.deliverability import guardrails
from drip.deliverability.sending_pause import event_counts, sending_paused
from drip.ops.stats import last_pass, scheduler_alive
from drip.services import Services
from drip.store.models import DeliveryStatus, EnrollmentStatus
from drip.store.queries import counts_by_sequence_and_status, deliveries_by_status


class DripCollector(Collector):
    """The age of the last dispatch pass and, with `counts`, counts by status; queried on
    each scrape."""

    def __init__(self, svc: Services, counts: bool) -> None:
        self.svc = svc
        self.counts = counts

    def collect(self) -> Iterator[Metric]:
        now = self.svc.clock()
        with self.svc.sessions() as session:
            beat = last_pass(session)
            paused = sending_paused(session)
            if self.counts:
                yield from self._counts(session)
        last = beat.last_pass_at if beat else None
        age = GaugeMetricFamily(
            "drip_last_pass_age_seconds",
            "Seconds since the newest dispatch pass (NaN before the first).",
        )
        age.add_metric([], (now - last).total_seconds() if last else float("nan"))
        yield age
        alive = GaugeMetricFamily(
            "drip_scheduler_alive", "1 while the last pass is younger than 3 dispatch intervals."
        )
        alive.add_metric(
            [], 1 if scheduler_alive(last, now, self.svc.settings.dispatch_interval) else 0
        )
        yield alive
        problems = GaugeMetricFamily(
            "drip_sending_problems", "Production guardrail problems (drip doctor lists them)."
        )
        problems.add_metric(
            [], len(guardrails.problems(self.svc.settings, self.svc.content.library()))
        )
        yield problems
        stopped = GaugeMetricFamily(
            "drip_sending_paused", "1 while a bounce or complaint guardrail pauses sending."
        )
        stopped.add_metric([], 1 if paused else 0)
        yield stopped

    def _counts(self, session: Session) -> Iterator[Metric]:
        deliveries = deliveries_by_status(session)  # both from the tallies
        enrollments = counts_by_sequence_and_status(session)
        bounces = event_counts(session)
        by_status = GaugeMetricFamily("drip_deliveries", "Deliveries by status.", labels=["status"])
        for status in DeliveryStatus:
            by_status.add_metric([status.value], deliveries[status.value])
        yield by_status
        readers = GaugeMetricFamily(
            "drip_enrollments", "Enrollments by sequence and status.", labels=["sequence", "status"]
        )
        for slug in sorted(set(enrollments) | set(self.svc.content.library().sequences)):
            found = enrollments.get(slug, Counter())
            for state in EnrollmentStatus:
                readers.add_metric([slug, state.value], found[state.value])
        yield readers
        events = GaugeMetricFamily(
            "drip_bounce_events",
            "Bounce and complaint events recorded, by kind and match (none: nothing matched).",
            labels=["kind", "matched_by"],
        )
        for (kind, matched_by), number in sorted(bounces.items()):
            events.add_metric([kind, matched_by], number)
        yield events


def _registry(svc: Services, counts: bool) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DripCollector(svc, counts))
    return registry


def init_app(app: Flask) -> None:
    svc: Services = app.extensions["drip"]
    public, full = _registry(svc, counts=False), _registry(svc, counts=True)

    def metrics() -> Response:
        token = svc.settings.metrics_token
        if not token:
            return Response(generate_latest(public), content_type=CONTENT_TYPE_LATEST)
        given = request.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(given, f"Bearer {token}".encode()):
            return Response(
                "/metrics needs Authorization: Bearer <DRIP_METRICS_TOKEN>\n",
                401,
                {"WWW-Authenticate": 'Bearer realm="drip metrics"'},
                mimetype="text/plain",
            )
        return Response(generate_latest(full), content_type=CONTENT_TYPE_LATEST)

    app.add_url_rule("/metrics", "metrics", metrics)
